"""``hideseek results``: tables from result records, threshold-curve figures from evaluation JSON."""

from __future__ import annotations

import argparse

from hideseek.cli.common import check_output, user_errors, write_or_print
from hideseek.results.choices import BOX_CURVES, FORMATS, PLOT_FORMATS


def _digits(text: str) -> int:
    """``--digits``: a whole number of decimals >= 0 (argparse prints the refusal as one line, exit 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of decimals >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number of decimals >= 0, got {value}")
    return value


def _field_value(text: str) -> tuple[str, str]:
    """``--where FIELD=VALUE``."""
    field, sep, value = text.partition("=")
    if not sep or not field.strip():
        raise argparse.ArgumentTypeError(f"expected FIELD=VALUE (e.g. split=test), got {text!r}")
    return field.strip(), value


def _table(args) -> int:
    from hideseek.results.records import RecordError, read_records
    from hideseek.results.report import load_published, published_comparison, records_frame, summary_table
    from hideseek.results.tables import render_table

    with user_errors(RecordError, ValueError):
        if args.registry and not args.published:
            raise ValueError("--registry is the published-number registry of --published; give both or neither")
        check_output(args.output)
        where = dict(pair if isinstance(pair, tuple) else _field_value(pair) for pair in args.where)
        frame = records_frame(read_records(args.records, locations=True))
        if args.published:
            table = published_comparison(frame, load_published(args.registry), where=where)
        else:
            table = summary_table(frame, rows=args.rows, cols=args.cols, metrics=args.metrics, where=where)
        text = render_table(table, args.format, digits=args.digits, caption=args.caption, label=args.label,
                            bold_best=not args.published)
    write_or_print(text, args.output)
    return 0


def _box_curve(text: str) -> str:
    """``--curve``: one of the box curve families (checked here: the choice list is the plot's own)."""
    if text not in BOX_CURVES:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(BOX_CURVES)}, got {text!r}")
    return text


def _plot(args) -> int:
    from pathlib import Path

    from hideseek.inputs import InputError
    from hideseek.results.plots import load_curves, plot_curves

    with user_errors(InputError):
        if args.labels is not None and len(args.labels) != len(args.results):
            raise InputError(f"--labels: {len(args.labels)} labels for {len(args.results)} files; give one per file")
        suffix = Path(args.output).suffix.lower().lstrip(".")
        if suffix not in PLOT_FORMATS:
            raise InputError(f"{args.output}: --output must end in {', '.join('.' + f for f in PLOT_FORMATS)}")
        check_output(args.output)
        labels = args.labels or _default_labels(args.results)
        runs = [load_curves(path, label, args.split) for path, label in zip(args.results, labels)]
        written = plot_curves(runs, args.output, curve=args.curve, title=args.title)
    print(f"wrote {written}")
    return 0


def _default_labels(paths: list[str]) -> list[str]:
    """File names without ``.json``; the paths as given where two names are the same."""
    from pathlib import Path

    stems = [Path(p).stem for p in paths]
    return [stem if stems.count(stem) == 1 else str(Path(p).with_suffix("")) for stem, p in zip(stems, paths)]


def add_parser(rooms) -> None:
    room = rooms.add_parser("results", help="result records, tables and threshold-curve figures",
                            description="Tables from result records; threshold-curve figures from evaluation JSON.")
    verbs = room.add_subparsers(dest="verb", metavar="VERB", required=True)
    table = verbs.add_parser(
        "table",
        help="CSV / Markdown / LaTeX table from result records (mean ± std over seeds)",
        description=(
            "Tabulate result records: rows by a record field (augmentation, backbone, dataset, "
            "method, policy, ...), columns by metric, mean ± std over the runs in each cell. "
            "Only the latest record of each (run, evaluation, dataset, split, policy) counts: a "
            "checkpoint evaluated again replaces its training run's records. Datasets, splits and "
            "policies left several after --where get rows of their own. "
            "--published puts reproduced numbers beside the published registry instead."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    table.add_argument("--records", default="runs/records.jsonl", help="result store (JSON lines)")
    table.add_argument("--format", default="markdown", choices=FORMATS)
    table.add_argument("--rows", default="augmentation", help="record field for the rows")
    table.add_argument("--cols", default="metric",
                       help="record field for the columns (another field than metric needs one --metrics)")
    table.add_argument("--metrics", nargs="+", help="metrics (columns) to show, in order")
    table.add_argument("--where", nargs="+", type=_field_value, default=["split=test", "policy=oracle"],
                       metavar="FIELD=VALUE", help="keep records whose field has this value")
    table.add_argument("--published", action="store_true", help="reproduced vs published values, with the difference")
    table.add_argument("--registry", help="published-number registry CSV for --published (default: the packaged "
                       "hideseek/results/data/published.csv)")
    table.add_argument("--digits", type=_digits, default=1, help="decimals shown (Markdown, LaTeX)")
    table.add_argument("--caption", help="LaTeX caption")
    table.add_argument("--label", help="LaTeX label")
    table.add_argument("--output", help="write the table here instead of printing it")
    table.set_defaults(handler=_table)

    plot = verbs.add_parser(
        "plot",
        help="BoxAcc(tau) and PxAP precision-recall curves of evaluation JSON files (PNG, PDF, SVG)",
        description=(
            "Draw the threshold curves that 'loc evaluate --output X.json' keeps (curves): one panel per IoU "
            "threshold of the box curve family (--curve: BoxAccV2, the all-contour curves at IoU 30/50/70 of "
            "MaxBoxAccV2; BoxAcc, the MaxBoxAcc curves at the evaluation's IoU thresholds; BoxAccV1, IoU 50, "
            "largest contour) and, where a file has one, the PxAP precision-recall panel. One line per file, "
            "the policy's threshold marked. --checkpoint output holds one result per split: --split picks one "
            "(default test)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    plot.add_argument("results", nargs="+", metavar="RESULT.json", help="evaluation JSON files (loc evaluate --output)")
    plot.add_argument("--output", required=True, help="figure to write (.png, .pdf or .svg)")
    plot.add_argument("--labels", nargs="+", help="one legend label per file (default: the file names)")
    plot.add_argument("--curve", type=_box_curve, default="BoxAccV2", metavar="{" + ",".join(BOX_CURVES) + "}",
                      help="box curve family")
    plot.add_argument("--split", help="split of a --checkpoint result (default: test, or its only split)")
    plot.add_argument("--title", help="figure title")
    plot.set_defaults(handler=_plot)
