"""CAM threshold grids and threshold policies: how the threshold behind a number is chosen.

Every room that thresholds a score map (WSOL boxes and masks, segmentation background
scores) reports the policy with the number: ``oracle`` (best threshold on the evaluated
split, the public WSOL benchmark's behaviour), ``fixed`` (one given threshold, the classic
CAM / Hide-and-Seek protocol) or ``calibrated`` (chosen on another split, normally val).

The oracle and calibrated policies choose among the benchmark's grid ``np.arange(0, 1,
interval)``. A fixed threshold is the literal ``tau`` it was given, not the nearest grid
value: ``np.arange(0, 1, 0.01)[70]`` is 0.7000000000000001, and ``int(tau * max)`` of the
reference's box rule moves one quantisation level at that difference (maps whose uint8
maximum is 90, 170 or 180). A metric therefore evaluates the grid plus the literal
thresholds its fixed policies need (:meth:`ThresholdPolicy.literal_thresholds`), and
:meth:`ThresholdPolicy.column` picks a policy's column among them.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from hideseek.cam.choices import CALIBRATED, FIXED, ORACLE

__all__ = ["Calibrated", "Fixed", "Oracle", "ThresholdPolicy", "cam_thresholds", "evaluated_thresholds", "grid_index",
           "literal_thresholds"]


def cam_thresholds(interval: float = 0.01) -> np.ndarray:
    """CAM thresholds ``[0, interval, 2*interval, ...) < 1`` as the reference builds them."""
    if not 0 < interval < 1:
        raise ValueError(f"cam_curve_interval must be in (0, 1), got {interval}")
    return np.arange(0, 1, interval)


def literal_thresholds(policies: Sequence[ThresholdPolicy]) -> tuple[float, ...]:
    """The literal thresholds ``policies`` need evaluated besides a grid (each once, in order)."""
    out: list[float] = []
    for policy in policies:
        out.extend(tau for tau in policy.literal_thresholds() if tau not in out)
    return tuple(out)


def evaluated_thresholds(grid: np.ndarray, extra: Sequence[float] = ()) -> np.ndarray:
    """``grid`` followed by each threshold of ``extra`` that is not bitwise one of its values:
    the thresholds a metric evaluates (its first ``len(grid)`` columns are the grid)."""
    grid = np.asarray(grid, dtype=np.float64)
    added: list[float] = []
    for tau in extra:
        tau = float(tau)
        if not (grid == tau).any() and tau not in added:
            added.append(tau)
    return np.concatenate([grid, np.array(added, dtype=np.float64)])


def grid_index(thresholds: np.ndarray, tau: float, what: str) -> int:
    hits = np.flatnonzero(np.isclose(thresholds, tau, rtol=0, atol=1e-9))
    if hits.size == 0:
        step = thresholds[1] - thresholds[0] if thresholds.size > 1 else float("nan")
        raise ValueError(
            f"{what}: threshold {tau} is not on the CAM threshold grid "
            f"(0 to {thresholds[-1]:.4g} in steps of {step:.4g}); choose a grid that contains it"
        )
    return int(hits[0])


@dataclass(frozen=True)
class ThresholdPolicy(ABC):
    """How the CAM threshold behind a reported number is chosen."""

    name: str = field(init=False, default="")

    @abstractmethod
    def index(self, metric: str, key: str, accuracies: np.ndarray, thresholds: np.ndarray) -> int:
        """Index into ``thresholds`` of the threshold for ``metric`` at IoU ``key``."""

    def literal_thresholds(self) -> tuple[float, ...]:
        """Thresholds this policy needs evaluated as given, besides the grid (none: it
        chooses among the grid's)."""
        return ()

    def column(self, metric: str, key: str, accuracies: np.ndarray, thresholds: np.ndarray, grid: int) -> int:
        """Column of ``thresholds`` (every threshold a metric evaluated, the grid first:
        ``thresholds[:grid]``) this policy picks for ``metric`` at ``key``. The default
        chooses among the grid's columns only."""
        return self.index(metric, key, np.asarray(accuracies)[:grid], np.asarray(thresholds)[:grid])

    def describe(self) -> dict:
        return {"name": self.name}


@dataclass(frozen=True)
class Oracle(ThresholdPolicy):
    """Best threshold on the split being reported (the public benchmark's behaviour).

    This peeks at the evaluation labels; report it as such, or use :class:`Calibrated`.
    """

    name: str = field(init=False, default=ORACLE)

    def index(self, metric, key, accuracies, thresholds):
        return int(np.argmax(accuracies))


@dataclass(frozen=True)
class Fixed(ThresholdPolicy):
    """One threshold for every metric (the classic CAM / HaS protocol, e.g. 0.2 or 0.3).

    ``tau`` is used literally (``int(tau * max)`` of the reference's rule with this very
    float), never snapped to a grid; it must lie in [0, 1)."""

    tau: float
    name: str = field(init=False, default=FIXED)

    def __post_init__(self):
        try:
            tau = float(self.tau)
        except (TypeError, ValueError):
            tau = math.nan
        if not 0.0 <= tau < 1.0:  # also refuses NaN
            raise ValueError(f"policy fixed: tau must lie in [0, 1), got {self.tau}")
        object.__setattr__(self, "tau", tau)

    def literal_thresholds(self):
        return (self.tau,)

    def index(self, metric, key, accuracies, thresholds):
        hits = np.flatnonzero(np.asarray(thresholds, dtype=np.float64) == self.tau)
        if hits.size == 0:
            raise ValueError(
                f"policy fixed, {metric}: threshold {self.tau} was not evaluated; build the metric "
                f"with it (extra_thresholds) to score it literally"
            )
        return int(hits[0])

    def column(self, metric, key, accuracies, thresholds, grid):
        return self.index(metric, key, accuracies, thresholds)

    def describe(self):
        return {"name": self.name, "tau": self.tau}


@dataclass(frozen=True)
class Calibrated(ThresholdPolicy):
    """Thresholds chosen on another split (normally val) and applied unchanged here.

    ``thresholds`` maps a metric name (``"MaxBoxAcc"``, ``"MaxBoxAccV2"``, ``"loc"``) to
    either one threshold or a mapping from IoU threshold (as a string) to threshold.
    """

    thresholds: Mapping[str, float | Mapping[str, float]]
    source: str = "val"
    name: str = field(init=False, default=CALIBRATED)

    @classmethod
    def from_result(cls, result: Mapping, source: str | None = None) -> Calibrated:
        """Take the thresholds an oracle evaluation (a result dict or JSON) reported."""
        table: dict[str, float | dict[str, float]] = {}
        if "best_threshold" in result:
            table["MaxBoxAcc"] = dict(result["best_threshold"])
        if "best_threshold_v2" in result:
            table["MaxBoxAccV2"] = dict(result["best_threshold_v2"])
        if "loc_threshold" in result:
            table["loc"] = float(result["loc_threshold"])
        if not table:
            raise ValueError(
                "calibration result has none of 'best_threshold', 'best_threshold_v2', "
                "'loc_threshold'"
            )
        return cls(table, source=source or str(result.get("split", "val")))

    def index(self, metric, key, accuracies, thresholds):
        if metric not in self.thresholds:
            raise ValueError(
                f"policy calibrated: no threshold for {metric!r} in the calibration "
                f"(has {sorted(self.thresholds)})"
            )
        entry = self.thresholds[metric]
        if isinstance(entry, Mapping):
            if key not in entry:
                raise ValueError(
                    f"policy calibrated: no threshold for {metric}@{key} "
                    f"(has {sorted(entry)})"
                )
            entry = entry[key]
        return grid_index(thresholds, float(entry), f"policy calibrated, {metric}@{key}")

    def describe(self):
        return {"name": self.name, "source": self.source, "thresholds": dict(self.thresholds)}


