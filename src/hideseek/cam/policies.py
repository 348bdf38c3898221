"""CAM threshold grids and threshold policies: how the threshold behind a number is chosen.

Every room that thresholds a score map (WSOL boxes and masks, segmentation background
scores) reports the policy with the number: ``oracle`` (best threshold on the evaluated
split, the public WSOL benchmark's behaviour), ``fixed`` (one given threshold, the classic
CAM / Hide-and-Seek protocol) or ``calibrated`` (chosen on another split, normally val).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from hideseek.cam.choices import CALIBRATED, FIXED, ORACLE

__all__ = ["Calibrated", "Fixed", "Oracle", "ThresholdPolicy", "cam_thresholds", "grid_index"]


def cam_thresholds(interval: float = 0.01) -> np.ndarray:
    """CAM thresholds ``[0, interval, 2*interval, ...) < 1`` as the reference builds them."""
    if not 0 < interval < 1:
        raise ValueError(f"cam_curve_interval must be in (0, 1), got {interval}")
    return np.arange(0, 1, interval)




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
    """One threshold for every metric (the classic CAM / HaS protocol, e.g. 0.2 or 0.3)."""

    tau: float
    name: str = field(init=False, default=FIXED)

    def index(self, metric, key, accuracies, thresholds):
        return grid_index(thresholds, self.tau, f"policy fixed, {metric}")

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


