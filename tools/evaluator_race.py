"""``hideseek loc evaluate`` on saved score maps against the public WSOL benchmark's own evaluator.

    python tools/evaluator_race.py /path/to/wsolevaluation [--maps 500] [--intervals 0.01 0.001]

Writes a CUB-layout test split of ``--maps`` images (``metadata/CUB/test``: ids, labels,
sizes, 1-3 GT boxes each) and one CAM-like 224 x 224 score map per image
(``<scoremaps>/<image id>.npy``, what the reference's ``evaluation.py`` reads), then runs, as
separate processes under ``/usr/bin/time``, both evaluators on the same files at each
interval, in alternating order: the reference's ``python evaluation.py
--multi_contour_eval --multi_iou_eval`` (MaxBoxAccV2) and ``hideseek loc evaluate``. Prints
wall time and peak resident memory (GNU time's maximum RSS; the reference also forks 4
DataLoader workers, whose memory is not in its figure) and checks that both report the
same MaxBoxAccV2. The reference needs ``opencv-python``, ``munch``, ``torch`` and
``torchvision`` importable; the checkout is only read (numpy's removed alias ``np.float``,
which it uses, is restored as the builtin ``float`` before it runs).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from hideseek.bench.workloads import cam_like_map
from hideseek.localization.data.ilsvrc import write_metadata
from hideseek.localization.data.metadata import WSOLMetadata

# numpy >= 1.24 removed the alias ``np.float`` the reference's util.t2n uses; restoring it
# (np.float was the builtin float) is the only change to the reference's run
SHIM = ("import sys, runpy, numpy; numpy.float = float; sys.argv[0] = 'evaluation.py'; "
        "runpy.run_path('evaluation.py', run_name='__main__')")


def write_split(root: Path, n: int, seed: int = 0) -> tuple[Path, Path]:
    """CUB-layout metadata for ``n`` images and their score maps; returns (metadata_root, maps)."""
    rng = np.random.default_rng(seed)
    maps = root / "scoremaps"
    meta = WSOLMetadata(root=root / "metadata" / "CUB" / "test", image_ids=[], class_labels={})
    for i in range(n):
        image_id = f"{i % 20:03d}.class/img_{i:05d}.jpg"
        width, height = int(rng.integers(200, 500)), int(rng.integers(200, 500))
        meta.image_ids.append(image_id)
        meta.class_labels[image_id] = i % 20
        meta.image_sizes[image_id] = (width, height)
        meta.boxes[image_id] = []
        for _ in range(int(rng.integers(1, 4))):
            x0, y0 = int(rng.integers(0, width // 2)), int(rng.integers(0, height // 2))
            x1 = min(width - 1, x0 + int(rng.integers(width // 8, width // 2)))
            y1 = min(height - 1, y0 + int(rng.integers(height // 8, height // 2)))
            meta.boxes[image_id].append((x0, y0, x1, y1))
        path = maps / (image_id + ".npy")  # the reference reads <scoremap_root>/<image_id>.npy
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, cam_like_map(rng, 224).astype(np.float32))
    write_metadata(meta, meta.root)
    return root / "metadata", maps


def timed(command: list[str], cwd: Path | None = None, env: dict | None = None) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MB, stdout) of ``command`` under GNU time."""
    out = subprocess.run(["/usr/bin/time", "-f", "TIME %e %M", *command], cwd=cwd, env=env,
                         capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{out.stderr[-2000:]}")
    wall, rss = re.findall(r"TIME ([\d.]+) (\d+)", out.stderr)[-1]
    return float(wall), int(rss) / 1024, out.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reference", type=Path, help="a checkout of github.com/clovaai/wsolevaluation")
    parser.add_argument("--maps", type=int, default=500)
    parser.add_argument("--intervals", type=float, nargs="+", default=[0.01, 0.001])
    parser.add_argument("--repeats", type=int, default=2, help="runs of each evaluator per interval")
    args = parser.parse_args()
    if not (args.reference / "evaluation.py").is_file():
        print(f"{args.reference}: not a wsolevaluation checkout (no evaluation.py)", file=sys.stderr)
        return 2
    load = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        metadata, maps = write_split(Path(tmp), args.maps)
        env = dict(os.environ, PYTHONPATH=str(args.reference.resolve()))
        for interval in args.intervals:
            reference_cmd = [sys.executable, "-c", SHIM, "--scoremap_root", str(maps), "--metadata_root",
                             str(metadata), "--dataset_name", "CUB", "--split", "test", "--cam_curve_interval",
                             str(interval), "--multi_contour_eval", "true", "--multi_iou_eval", "true"]
            ours_cmd = [sys.executable, "-m", "hideseek", "loc", "evaluate", "--metadata",
                        str(metadata / "CUB" / "test"), "--scoremaps", str(maps), "--cam-curve-interval",
                        str(interval), "--output",
                        str(Path(tmp) / "ours.json")]
            for repeat in range(args.repeats):
                order = [("reference", reference_cmd), ("hideseek", ours_cmd)]
                for name, command in order if repeat % 2 == 0 else order[::-1]:
                    wall, rss, stdout = timed(command, cwd=args.reference if name == "reference" else None, env=env)
                    if name == "reference":
                        value = float(re.findall(r"localization: ([\d.eE+-]+)", stdout)[-1])  # percent
                    else:
                        value = json.loads((Path(tmp) / "ours.json").read_text())["MaxBoxAccV2"]
                    rows.append(dict(evaluator=name, interval=interval, repeat=repeat, wall_s=wall, peak_mb=rss,
                                     maxboxacc_v2=value))
    print(f"{args.maps} maps of 224 x 224, CUB layout; load average before {load[0]:.2f}, after "
          f"{os.getloadavg()[0]:.2f}; {os.cpu_count()} CPUs")
    print("| evaluator | interval | wall s (each run) | peak RSS MB | MaxBoxAccV2 |")
    print("|---|---:|---:|---:|---:|")
    for interval in args.intervals:
        for name in ("reference", "hideseek"):
            mine = [r for r in rows if r["evaluator"] == name and r["interval"] == interval]
            walls = ", ".join(f"{r['wall_s']:.2f}" for r in mine)
            print(f"| {name} | {interval} | {walls} | {max(r['peak_mb'] for r in mine):.0f} | "
                  f"{mine[0]['maxboxacc_v2']:.4f} |")
        values = {round(r["maxboxacc_v2"], 6) for r in rows if r["interval"] == interval}
        if len(values) != 1:
            print(f"MISMATCH at interval {interval}: {sorted(values)}")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
