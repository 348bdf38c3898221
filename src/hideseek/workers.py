"""Pure jobs over worker processes: the data generators' one parallel loop.

Kept apart from the rooms (it imports neither torch nor any room) so every generator,
images, scenes and videos, uses the same one.
"""

from __future__ import annotations

import os

__all__ = ["default_workers", "run_chunks"]


def default_workers() -> int:
    """The usable cores, at most 8."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 8))


def run_chunks(jobs: list[tuple], work, workers: int | None, desc: str | None, unit: str = "img") -> dict:
    """``{job[:2]: work(*job)}`` for every job ``(split, start, stop, ...)``, in ``workers``
    processes (default: the usable cores, at most 8), with a tqdm bar counting
    ``stop - start`` images per job when ``desc`` is given. Results do not depend on
    ``workers``: each job is a pure function of its arguments."""
    results: dict = {}
    bar = None
    if desc is not None:
        from tqdm.auto import tqdm

        bar = tqdm(total=sum(job[2] - job[1] for job in jobs), desc=desc, unit=unit)
    workers = default_workers() if workers is None else max(1, int(workers))
    try:
        if workers == 1 or len(jobs) <= 1:
            for job in jobs:
                results[job[0], job[1]] = work(*job)
                if bar is not None:
                    bar.update(job[2] - job[1])
        else:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor, as_completed

            methods = multiprocessing.get_all_start_methods()
            context = multiprocessing.get_context("fork" if "fork" in methods else None)
            with ProcessPoolExecutor(workers, mp_context=context) as pool:
                futures = {pool.submit(work, *job): job for job in jobs}
                for future in as_completed(futures):
                    job = futures[future]
                    results[job[0], job[1]] = future.result()
                    if bar is not None:
                        bar.update(job[2] - job[1])
    finally:
        if bar is not None:
            bar.close()
    return results
