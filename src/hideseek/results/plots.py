"""Threshold-curve figures from evaluation JSON files: BoxAcc(tau) and the PxAP PR curve.

``hideseek loc evaluate --output X.json`` keeps the curves its numbers are read from under
``curves`` (``--checkpoint`` under each split's result): ``thresholds`` (the CAM threshold
grid) with ``BoxAcc`` (per IoU threshold of ``MaxBoxAcc``), ``BoxAccV2`` (IoU 30/50/70, all
contours) and ``BoxAccV1`` (IoU 50, largest contour) in percent, and on mask splits
``PxAP`` (``thresholds``, ``precision``, ``recall``). :func:`plot_curves` draws one panel per
IoU threshold of the chosen box curve and one precision-recall panel, one line per file,
with the point each file's threshold policy reported marked.

matplotlib is used without pyplot (a :class:`~matplotlib.figure.Figure` on the Agg canvas):
nothing global is set, and no display is needed.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from hideseek.inputs import InputError, read_json
from hideseek.results.choices import BOX_CURVES, PLOT_FORMATS

__all__ = ["CurveError", "RunCurves", "load_curves", "plot_curves"]


class CurveError(InputError):
    """An evaluation JSON without usable curves; the message names the file."""


@dataclass(frozen=True)
class RunCurves:
    """One evaluation's curves, checked, and the numbers its policy reported."""

    label: str
    source: str
    result: Mapping  # the evaluation result holding ``curves``

    @property
    def curves(self) -> Mapping:
        return self.result["curves"]


def _numbers(values, where: str, length: int | None, allow_null: bool = False) -> list:
    if not isinstance(values, list) or (length is not None and len(values) != length):
        wanted = f"{length} numbers (one per threshold)" if length is not None else "a list of numbers"
        got = f"{len(values)} values" if isinstance(values, list) else type(values).__name__
        raise CurveError(f"{where}: expected {wanted}, got {got}")
    for value in values:
        if value is None and allow_null:
            continue
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
            raise CurveError(f"{where}: expected finite numbers, found {value!r}")
    return values


def _check(curves, where: str) -> None:
    if not isinstance(curves, dict):
        raise CurveError(f"{where}: expected an object, found {type(curves).__name__}")
    n = None
    if "thresholds" in curves:
        n = len(_numbers(curves["thresholds"], f"{where}.thresholds", None))
    for name in BOX_CURVES:
        if name not in curves:
            continue
        if n is None:
            raise CurveError(f"{where}: {name} curves without their 'thresholds'")
        table = curves[name]
        if not isinstance(table, dict) or not table:
            raise CurveError(f"{where}.{name}: expected an object of IoU threshold -> curve")
        for iou, values in table.items():
            if not iou.isdigit():
                raise CurveError(f"{where}.{name}: expected IoU thresholds in percent as keys, found {iou!r}")
            _numbers(values, f"{where}.{name}.{iou}", n)
    if "PxAP" in curves:
        pr = curves["PxAP"]
        if not isinstance(pr, dict) or not {"precision", "recall"} <= set(pr):
            raise CurveError(f"{where}.PxAP: expected an object with 'precision' and 'recall'")
        recall = _numbers(pr["recall"], f"{where}.PxAP.recall", None)
        _numbers(pr["precision"], f"{where}.PxAP.precision", len(recall), allow_null=True)


def load_curves(path: str | os.PathLike, label: str | None = None, split: str | None = None) -> RunCurves:
    """The curves of an evaluation JSON: ``loc evaluate --scoremaps`` output (curves at the
    top), or ``--checkpoint`` output (a result per split: ``split``, else ``test``, else the
    only split with curves). Raises :class:`CurveError` naming the file."""
    path = Path(path)
    data = read_json(path, dict, "evaluation JSON")
    if "curves" in data:
        if split is not None:
            raise CurveError(f"{path}: one evaluation (no splits); --split {split} applies to "
                             "'loc evaluate --checkpoint' output")
        result, where = data, f"{path}: curves"
    else:
        splits = [key for key, value in data.items() if isinstance(value, dict) and "curves" in value]
        if split is not None:
            if split not in splits:
                raise CurveError(f"{path}: no split {split!r} with curves (has {splits or 'none'})")
        elif "test" in splits:
            split = "test"
        elif len(splits) == 1:
            split = splits[0]
        elif splits:
            raise CurveError(f"{path}: several splits with curves ({', '.join(splits)}); choose one with --split")
        else:
            raise CurveError(f"{path}: no threshold curves (no 'curves' key): written before 'loc evaluate' "
                             "kept them, or not an evaluation result; evaluate again with --output")
        result, where = data[split], f"{path}: {split}.curves"
    _check(result["curves"], where)
    if not any(name in result["curves"] for name in (*BOX_CURVES, "PxAP")):
        raise CurveError(f"{where}: holds no BoxAcc or PxAP curve")
    return RunCurves(label if label is not None else path.stem, str(path), result)


def _policy_point(run: RunCurves, curve: str, iou: str) -> float | None:
    """The threshold the run's policy reported for ``curve`` at ``iou``, if the result names it."""
    key = {"BoxAcc": "best_threshold", "BoxAccV2": "best_threshold_v2"}.get(curve)
    if key is not None:
        value = run.result.get(key, {})
        value = value.get(iou) if isinstance(value, dict) else None
    else:
        value = run.result.get("loc_threshold")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _policy_name(run: RunCurves) -> str:
    policy = run.result.get("policy")
    return str(policy.get("name")) if isinstance(policy, dict) and policy.get("name") else "reported"


def plot_curves(runs: Sequence[RunCurves], output: str | os.PathLike, curve: str = "BoxAccV2",
                title: str | None = None) -> Path:
    """Draw the ``curve`` panels (one per IoU threshold) and the PxAP PR panel of ``runs``
    into ``output`` (``.png`` at 150 dpi, ``.pdf`` or ``.svg``); returns its path.

    Each line is labelled with its run's value at the policy's threshold (``MaxBoxAcc``
    under the oracle), marked on the line; a threshold off the grid (a fixed tau) is not
    marked. The file is written through a temporary file and a rename."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if curve not in BOX_CURVES:
        raise ValueError(f"curve must be one of {BOX_CURVES}, got {curve!r}")
    output = Path(output)
    fmt = output.suffix.lower().lstrip(".")
    if fmt not in PLOT_FORMATS:
        raise CurveError(f"{output}: expected a figure file ending in {', '.join('.' + f for f in PLOT_FORMATS)}")
    ious = sorted({iou for run in runs for iou in run.curves.get(curve, {})}, key=int)
    with_pr = [run for run in runs if "PxAP" in run.curves]
    if not ious and not with_pr:
        raise CurveError(f"{runs[0].source}: none of the files holds {curve} or PxAP curves")
    panels = len(ious) + (1 if with_pr else 0)
    figure = Figure(figsize=(3.6 * panels, 3.4), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, panels, squeeze=False)[0]
    colors = [f"C{i % 10}" for i in range(len(runs))]
    contours = {"BoxAcc": "", "BoxAccV2": ", all contours", "BoxAccV1": ", largest contour"}[curve]
    for ax, iou in zip(axes, ious):
        for run, color in zip(runs, colors):
            values = run.curves.get(curve, {}).get(iou)
            if values is None:
                continue
            thresholds = run.curves["thresholds"]
            tau = _policy_point(run, curve, iou)
            index = thresholds.index(tau) if tau in thresholds else None
            label = run.label
            if index is not None:
                label += f" ({values[index]:.1f}, {_policy_name(run)} τ={tau:.2f})"
            ax.plot(thresholds, values, color=color, linewidth=1.4, label=label)
            if index is not None:
                ax.plot([tau], [values[index]], "o", color=color, markersize=4)
        ax.set_title(f"{curve} at IoU ≥ {int(iou) / 100:.2f}{contours}", fontsize=9)
        ax.set_xlabel("CAM threshold τ")
        ax.set_ylabel("BoxAcc (%)")
        ax.set_xlim(0, 1)
        ax.set_ylim(-2, 102)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    if with_pr:
        ax = axes[-1]
        for run, color in zip(runs, colors):
            if "PxAP" not in run.curves:
                continue
            pr = run.curves["PxAP"]
            points = [(r, p) for r, p in zip(pr["recall"], pr["precision"]) if p is not None]
            label = run.label
            if isinstance(run.result.get("PxAP"), int | float):
                label += f" (PxAP {run.result['PxAP']:.1f})"
            ax.plot([r for r, _ in points], [p for _, p in points], color=color, linewidth=1.4, label=label)
        ax.set_title("PxAP precision-recall (pixels)", fontsize=9)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    if title:
        figure.suptitle(title, fontsize=10)
    tmp = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(tmp, format=fmt, dpi=150)
        os.replace(tmp, output)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise CurveError(f"{output}: cannot write the figure ({error.strerror or error})") from None
    return output
