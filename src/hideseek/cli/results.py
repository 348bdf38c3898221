"""``hideseek results``: tables from result records."""

from __future__ import annotations

import argparse

from hideseek.cli.common import user_errors, write_or_print
from hideseek.results.choices import FORMATS


def _table(args) -> int:
    from hideseek.results.records import RecordError, read_records
    from hideseek.results.report import published_comparison, records_frame, summary_table
    from hideseek.results.tables import render_table

    where = dict(pair.partition("=")[::2] for pair in args.where)
    with user_errors(RecordError, ValueError):
        frame = records_frame(read_records(args.records))
        if args.published:
            table = published_comparison(frame, where=where)
        else:
            table = summary_table(frame, rows=args.rows, cols=args.cols, metrics=args.metrics, where=where)
    text = render_table(table, args.format, digits=args.digits, caption=args.caption, label=args.label,
                        bold_best=not args.published)
    write_or_print(text, args.output)
    return 0


def add_parser(rooms) -> None:
    room = rooms.add_parser("results", help="result records and tables", description="Tables from result records.")
    verbs = room.add_subparsers(dest="verb", metavar="VERB", required=True)
    table = verbs.add_parser(
        "table",
        help="CSV / Markdown / LaTeX table from result records (mean ± std over seeds)",
        description=(
            "Tabulate result records: rows by a record field (augmentation, backbone, dataset, "
            "policy, ...), columns by metric, mean ± std over the runs in each cell. "
            "--published puts reproduced numbers beside the published registry instead."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    table.add_argument("--records", default="runs/records.jsonl", help="result store (JSON lines)")
    table.add_argument("--format", default="markdown", choices=FORMATS)
    table.add_argument("--rows", default="augmentation", help="record field for the rows")
    table.add_argument("--cols", default="metric", help="record field for the columns")
    table.add_argument("--metrics", nargs="+", help="metrics (columns) to show, in order")
    table.add_argument("--where", nargs="+", default=["split=test", "policy=oracle"], metavar="FIELD=VALUE",
                       help="keep records whose field has this value")
    table.add_argument("--published", action="store_true", help="reproduced vs published values, with the difference")
    table.add_argument("--digits", type=int, default=1)
    table.add_argument("--caption", help="LaTeX caption")
    table.add_argument("--label", help="LaTeX label")
    table.add_argument("--output", help="write the table here instead of printing it")
    table.set_defaults(handler=_table)
