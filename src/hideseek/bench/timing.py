"""Wall-clock measurement that is honest on CPU and CUDA, and the machine/software record
every benchmark result carries.

CPU: each round is one call timed with ``perf_counter``. CUDA: kernels are asynchronous
and a single 150 MB copy takes tens of microseconds, so each round times ``k`` back-to-back
calls between two CUDA events (``k`` calibrated so a round lasts about a millisecond or
more) and the per-call time is the round time over ``k``. Rounds continue until both a
minimum count and a minimum total time are reached; the median is the headline figure.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

__all__ = ["measure", "machine_info", "loadavg"]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(fn: Callable[[], Any], device: torch.device | str = "cpu", *,
            min_rounds: int = 5, max_rounds: int = 200, min_time: float = 0.25,
            warmup: int = 1, max_time: float | None = None) -> dict[str, float]:
    """Time ``fn()``: ``{"median_s", "min_s", "mean_s", "q1_s", "q3_s", "rounds",
    "calls_per_round"}``, all per call.

    ``max_time`` (seconds) stops early after at least one round, for slow references.
    """
    device = torch.device(device)
    for _ in range(warmup):
        fn()
    _sync(device)
    per_call = []
    calls = 1
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        # Calibrate: enough calls per round that the round is >= 1 ms of GPU time.
        while True:
            start.record()
            for _ in range(calls):
                fn()
            end.record()
            end.synchronize()
            if start.elapsed_time(end) >= 1.0 or calls >= 1024:
                break
            calls *= 4
    t_begin = time.perf_counter()
    while True:
        if device.type == "cuda":
            start.record()
            for _ in range(calls):
                fn()
            end.record()
            end.synchronize()
            per_call.append(start.elapsed_time(end) / 1e3 / calls)
        else:
            t0 = time.perf_counter()
            fn()
            per_call.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - t_begin
        n = len(per_call)
        if n >= max_rounds or (max_time is not None and elapsed >= max_time):
            break
        if n >= min_rounds and elapsed >= min_time:
            break
    q = statistics.quantiles(per_call, n=4) if len(per_call) >= 2 else [per_call[0]] * 3
    return {"median_s": statistics.median(per_call), "min_s": min(per_call),
            "mean_s": statistics.fmean(per_call), "q1_s": q[0], "q3_s": q[2],
            "rounds": len(per_call), "calls_per_round": calls}


def loadavg() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (``/proc/loadavg``), or None off Linux."""
    try:
        return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]
    except (OSError, ValueError):
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=here, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def _version(module: str) -> str | None:
    try:
        mod = __import__(module)
    except Exception:  # noqa: BLE001 - an optional package that fails to import is "absent"
        return None
    return getattr(mod, "__version__", None)


def _native_bf16() -> bool:
    """Whether the CPU has native bf16 (a bf16 figure means something else with and without it)."""
    from hideseek.engine import cpu_has_native_bf16

    return cpu_has_native_bf16()


def machine_info(device: torch.device | str = "cpu") -> dict[str, Any]:
    """Machine and software facts a benchmark figure is meaningless without."""
    import numpy

    device = torch.device(device)
    info: dict[str, Any] = {
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "commit": _commit(),
        "host": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_native_bf16": _native_bf16(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "device": device.type,
        "versions": {"torch": torch.__version__, "numpy": numpy.__version__,
                     "timm": _version("timm"), "torchvision": _version("torchvision"),
                     "triton": _version("triton"), "numba": _version("numba"),
                     "pandas": _version("pandas")},
        "gpu": None,
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info["gpu"] = {"name": props.name, "capability": f"{props.major}.{props.minor}",
                       "memory_gib": round(props.total_memory / 2**30, 1),
                       "cuda": torch.version.cuda, "driver_count": torch.cuda.device_count()}
    return info
