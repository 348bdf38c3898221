"""``hideseek demo``: every room's demo in one go; also the handler of ``seg demo`` and ``action demo``."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

DEMO_ROOMS = {
    # room: (module, function, output-folder suffix, what it shows)
    "image": ("hideseek.localization.demo", "run_demo", "",
              "CAM vs Hide-and-Seek, weakly-supervised object localization"),
    "seg": ("hideseek.segmentation.demo", "run_seg_demo", "-seg",
            "CAM vs Hide-and-Seek pseudo-masks, weakly-supervised semantic segmentation"),
    "action": ("hideseek.action.demo", "run_action_demo", "-action",
               "temporal CAM with and without frame hiding, temporal action localization"),
}


def run_demo(room: str, output: str | Path, args) -> dict:
    """Run one room's demo (imported lazily) into ``output``."""
    module, function = DEMO_ROOMS[room][:2]
    run = getattr(importlib.import_module(module), function)
    return run(output, quick=args.quick, progress=not args.no_progress, workers=getattr(args, "workers", None))


def print_demo(out: dict) -> None:
    """A demo's table, the files it wrote and its wall time (every room's demo returns these)."""
    print(out["markdown"])
    for kind, path in out["files"].items():
        print(f"{kind:>8}: {path}")
    print(f"wall time: {out['seconds']:.0f} s")
    if out.get("facts"):
        print(out["facts"])


def room_demo(args) -> int:
    """``hideseek seg demo`` / ``hideseek action demo``: one room's demo."""
    out = run_demo(args.demo_room, args.output, args)
    print()
    print_demo(out)
    return 0


def _demo(args) -> int:
    import os
    import time

    base = Path(args.output)
    start, load = time.perf_counter(), os.getloadavg()
    for room in args.rooms:
        suffix, title = DEMO_ROOMS[room][2:]
        out = run_demo(room, base.with_name(base.name + suffix), args)
        print(f"\n== {room}: {title}\n")
        print_demo(out)
    if len(args.rooms) > 1:
        print(f"\ntotal wall time: {time.perf_counter() - start:.0f} s (load average {load[0]:.2f} before, "
              f"{os.getloadavg()[0]:.2f} after, {os.cpu_count()} CPU(s))")
    return 0


def _at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def add_parser(rooms) -> None:
    demo = rooms.add_parser(
        "demo",
        help="Hide-and-Seek against its baseline in every room, on the embedded synthetic benchmarks",
        description=(
            "The main job, on CPU: for images, train a baseline CAM model and a Hide-and-Seek model on the "
            "synthetic WSOL benchmark and score Top-1 Cls, Top-1 Loc, GT-known Loc, MaxBoxAccV2 and PxAP; for "
            "video, train temporal CAMs with and without frame hiding on the synthetic video benchmark and score "
            "mAP per tIoU under every protocol (ActivityNet, both THUMOS14 kits, W-TALC); for segmentation, CAM "
            "pseudo-masks with and without hiding on "
            "synthetic multi-object scenes, scored with mIoU. Each room in --rooms prints its "
            "table and writes csv/md/tex tables, a figure and its run records under its own folder: OUTPUT for "
            "images, OUTPUT-<room> for the others (results/demo, results/demo-seg, results/demo-action)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    demo.add_argument("--quick", action="store_true", help="tiny version (well under a minute), for tests")
    demo.add_argument("--output", default="results/demo", help="image demo folder; other rooms go to OUTPUT-<room>")
    demo.add_argument("--rooms", nargs="+", choices=list(DEMO_ROOMS), default=list(DEMO_ROOMS),
                      help="which rooms' demos to run, in this order")
    demo.add_argument("--no-progress", action="store_true", help="no progress bars")
    demo.add_argument("--workers", type=_at_least_one,
                      help="training runs at a time, each in its own process with CPUs/WORKERS torch threads "
                           "(default: one per CPU core, at most the number of runs)")
    demo.set_defaults(handler=_demo)
