"""``hideseek reproduce``: one leaderboard row from configs/, beside its published value."""

from __future__ import annotations

import argparse
from pathlib import Path

from hideseek.cli.common import user_errors, write_json


def _reproduce(args) -> int:
    from hideseek.localization.reproduce import reproduce

    overrides = {}
    if args.pretrained_file:
        overrides["pretrained_file"] = str(Path(args.pretrained_file).resolve())
    if args.epochs is not None:
        overrides["epochs"] = args.epochs
    if args.device:
        overrides["device"] = args.device
    with user_errors(FileNotFoundError, ValueError):
        out = reproduce(args.config, data_root=args.data_root, records=args.records, output=args.output,
                        overrides=overrides)
    target = out["target"]
    print(f"{target['dataset']} {target['split']} {target['backbone']} {target['method']} {out['metric']}")
    print(f"  reproduced (oracle threshold)    {out['reproduced']:.2f}")
    if out["reproduced_calibrated"] is not None:
        print(f"  reproduced (val-calibrated)      {out['reproduced_calibrated']:.2f}")
    verified = "verified" if out["verified"] else "not yet verified against its source"
    print(f"  published                        {out['published']:.2f}  ({out['source']}; {verified})")
    print(f"  difference (oracle - published)  {out['diff']:+.2f}")
    write_json(out, args.json)
    return 0


def add_parser(rooms) -> None:
    rep = rooms.add_parser(
        "reproduce",
        help="train, evaluate and record one leaderboard row from configs/, beside its published value",
        description=("Run a leaderboard-row config (configs/*.toml) and print the reproduced value beside the "
                     "published one."),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    rep.add_argument("config", help="a TOML file from configs/")
    rep.add_argument("--data-root", help="folder the config's relative data paths are resolved against")
    rep.add_argument("--pretrained-file", help="local ImageNet weights for the backbone (overrides the config)")
    rep.add_argument("--epochs", type=int, help="override the schedule's epochs (e.g. a smoke run)")
    rep.add_argument("--device", help="cpu, cuda, ...")
    rep.add_argument("--records", default="runs/records.jsonl", help="result store to append to")
    rep.add_argument("--output", help="run folder (default runs/<config name>)")
    rep.add_argument("--json", help="write the comparison as JSON here")
    rep.set_defaults(handler=_reproduce)
