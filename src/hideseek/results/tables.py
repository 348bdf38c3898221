"""Result tables from records or data frames: CSV, Markdown and LaTeX (booktabs).

Numbers are formatted once, here, so every format shows the same digits. A cell may hold
a float, or a ``(mean, std)`` pair shown as ``mean ± std`` (``\\pm`` in LaTeX).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from hideseek.results.choices import FORMATS

__all__ = ["FORMATS", "format_cell", "render_table", "mean_std_table"]

COUNT_COLUMNS = ("runs", "seeds", "num_images")  # never set in bold as "best"


def format_cell(value, digits: int = 1, latex: bool = False) -> str:
    """``mean ± std`` for a ``(mean, std)`` pair (just the mean when std is NaN: one run),
    ``NaN`` for a pair whose mean is NaN (a run's value is undefined), ``–`` for a cell with
    no value (``None``, or a bare float NaN)."""
    if value is None:
        return "–"
    if digits < 0:
        raise ValueError(f"digits must be >= 0, got {digits}")
    if isinstance(value, tuple):
        mean, std = value
        if isinstance(mean, float) and math.isnan(mean):
            return "NaN"
        if std is None or (isinstance(std, float) and math.isnan(std)):
            return format_cell(mean, digits, latex)
        sep = " \\pm " if latex else " ± "
        text = f"{mean:.{digits}f}{sep}{std:.{digits}f}"
        return f"${text}$" if latex else text
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.{digits}f}"
    return _latex_escape(str(value)) if latex else str(value)


def _latex_escape(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"), ("±", r"$\pm$")):
        text = text.replace(a, b)
    return text


def _best_rows(frame: pd.DataFrame) -> dict[str, set]:
    """Per numeric column, the row labels holding its maximum (ties all count)."""
    best = {}
    for column in frame.columns:
        if column in COUNT_COLUMNS:
            continue
        values = [v[0] if isinstance(v, tuple) else v for v in frame[column]]
        numbers = [v for v in values if isinstance(v, float | int) and not isinstance(v, bool) and not math.isnan(v)]
        if numbers:
            top = max(numbers)
            best[column] = {label for label, v in zip(frame.index, values) if v == top}
    return best


def _is_nan(value) -> bool:
    return isinstance(value, float) and math.isnan(value)


def render_table(frame: pd.DataFrame, fmt: str, *, digits: int = 1, caption: str | None = None,
                 label: str | None = None, bold_best: bool = True) -> str:
    """Render ``frame`` (index = row labels) as ``csv``, ``markdown`` or ``latex``.

    CSV keeps full precision (means and stds as separate columns); Markdown and LaTeX show
    ``digits`` decimals, and LaTeX sets the best value of each column in bold.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown table format {fmt!r}; valid choices: {', '.join(FORMATS)}")
    if isinstance(digits, bool) or not isinstance(digits, int) or digits < 0:
        raise ValueError(f"digits must be a whole number >= 0, got {digits!r}")
    if fmt == "csv":
        flat = pd.DataFrame(index=frame.index)
        for column in frame.columns:
            if any(isinstance(v, tuple) for v in frame[column]):
                # an undefined mean (a run's value is NaN) reads "NaN"; a cell with no value stays empty
                flat[column] = pd.Series([("NaN" if _is_nan(v[0]) else v[0]) if isinstance(v, tuple) else v
                                          for v in frame[column]], index=frame.index, dtype=object)
                flat[f"{column} std"] = [v[1] if isinstance(v, tuple) else float("nan") for v in frame[column]]
            else:
                flat[column] = frame[column]
        return flat.to_csv(index_label=frame.index.name or "")
    index_name = frame.index.name or ""
    if fmt == "markdown":
        header = [index_name, *map(str, frame.columns)]
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * len(frame.columns)) + "|"]
        for label_, row in frame.iterrows():
            cells = [str(label_), *(format_cell(v, digits) for v in row)]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"
    best = _best_rows(frame) if bold_best else {}
    cols = "l" + "r" * len(frame.columns)
    out = ["\\begin{table}[t]", "\\centering"]
    if caption:
        out.append(f"\\caption{{{_latex_escape(caption)}}}")
    if label:
        out.append(f"\\label{{{label}}}")
    out += [f"\\begin{{tabular}}{{{cols}}}", "\\toprule"]
    out.append(" & ".join([_latex_escape(index_name), *(_latex_escape(str(c)) for c in frame.columns)]) + " \\\\")
    out.append("\\midrule")
    for label_, row in frame.iterrows():
        cells = [_latex_escape(str(label_))]
        for column, value in zip(frame.columns, row):
            text = format_cell(value, digits, latex=True)
            if label_ in best.get(column, ()):
                text = f"\\textbf{{{text}}}" if not text.startswith("$") else f"$\\mathbf{{{text[1:-1]}}}$"
            cells.append(text)
        out.append(" & ".join(cells) + " \\\\")
    out += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
    return "\n".join(out) + "\n"


def mean_std_table(rows: pd.DataFrame, by: str, metrics: Sequence[str]) -> pd.DataFrame:
    """Group long-form ``rows`` by ``by``; each metric cell becomes ``(mean, std)`` over the
    group (std NaN for a single run), plus a ``runs`` count column."""
    grouped = rows.groupby(by, sort=False)
    table = pd.DataFrame(index=pd.Index(list(grouped.groups), name=by))
    for metric in metrics:
        table[metric] = [
            (float(g[metric].mean()), float(g[metric].std(ddof=1)) if len(g) > 1 else float("nan"))
            for _, g in grouped
        ]
    table["runs"] = [len(g) for _, g in grouped]
    return table
