"""``hideseek bench``: the throughput suite on one device, and ``bench report`` tables from its result files."""

from __future__ import annotations

import argparse
import json

from hideseek.bench.choices import DEFAULT_GROUPS, DEVICES, GROUPS, REPORT_FORMATS, SIZE_NAMES
from hideseek.cli.common import user_errors, write_json, write_or_print


def _run(args) -> int:
    from hideseek.bench.suite import run_suite
    from hideseek.threads import torch_threads

    # --threads for the suite only: main() called in-process leaves the caller's count alone
    with user_errors(RuntimeError, ValueError), torch_threads(args.threads or None):
        doc = run_suite(args.device, size=args.size, groups=args.groups)
    if args.output:
        write_json(doc, args.output)
        print(f"wrote {args.output}")
    for row in doc["rows"]:
        gbs = f"{row['gb_per_s']:8.2f} GB/s" if row.get("gb_per_s") is not None else " " * 13
        print(f"{row['group']:<10} {row['name']:<24} {row['median_s'] * 1e3:10.3f} ms {gbs}")
    print("checks " + json.dumps(doc["checks"]))
    print(f"load average before {doc['loadavg_before']}, after {doc['loadavg_after']}")
    return 0


def _report(args) -> int:
    from hideseek.bench.report import load_results, render

    with user_errors(OSError, ValueError):
        text = render(load_results(args.files), args.format)
    write_or_print(text, args.output)
    return 0


def add_parser(rooms) -> None:
    room = rooms.add_parser(
        "bench", help="throughput benchmarks: kernels, evaluators, training-step overhead, roofline",
        description=("Run the benchmark suite on one device and write one JSON with machine and software "
                     "info ('hideseek bench --device cpu --output FILE.json'), or make the report table "
                     "from result files ('hideseek bench report FILES...')."),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    room.add_argument("--device", default="cpu", choices=DEVICES)
    room.add_argument("--output", help="write the result JSON here")
    room.add_argument("--size", default="full", choices=SIZE_NAMES,
                      help="workload size: 'full' (the published shapes) or 'tiny' (smoke run)")
    room.add_argument("--groups", nargs="+", default=list(DEFAULT_GROUPS), choices=GROUPS,
                      help="benchmark groups to run; 'cams' (time per image of each CAM method, as a ratio "
                           "to vanilla CAM, resnet50 and tf_efficientnet_lite0 at 224 px) only when named")
    room.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    room.set_defaults(handler=_run)
    verbs = room.add_subparsers(dest="verb", metavar="VERB")
    rep = verbs.add_parser("report", help="report table from result JSON files",
                           description="Tables with every figure as a ratio to clone/fill and to the peers.",
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    rep.add_argument("files", nargs="+", help="result JSON files written by 'hideseek bench'")
    rep.add_argument("--format", default="markdown", choices=REPORT_FORMATS)
    rep.add_argument("--output", help="write the table here instead of stdout")
    rep.set_defaults(handler=_report)
