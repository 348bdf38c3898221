"""Synthetic inputs for kernel benchmarks and equivalence tests."""

from __future__ import annotations

import numpy as np

__all__ = ["upsample_bilinear", "cam_like_map", "temporal_detection_workload"]


def upsample_bilinear(low: np.ndarray, size: int) -> np.ndarray:
    """Bilinear upsampling of a 2-D map to ``size`` x ``size`` (pixel centres aligned), as
    CAMs are resized to the input."""
    h, w = low.shape
    ys = (np.arange(size) + 0.5) * h / size - 0.5
    xs = (np.arange(size) + 0.5) * w / size - 0.5
    rows = np.stack([np.interp(xs, np.arange(w), row) for row in low])
    return np.stack([np.interp(ys, np.arange(h), col) for col in rows.T], axis=1)


def cam_like_map(rng: np.random.Generator, size: int = 224) -> np.ndarray:
    """A smooth CAM-like score map in [0, 1]: 1-3 Gaussian blobs on a low-resolution
    (7, 14 or 28 cells) random field, upsampled bilinearly and min-max normalised."""
    res = int(rng.choice([7, 14, 28]))
    low = rng.random((res, res)) ** 3
    yy, xx = np.mgrid[0:res, 0:res] / res
    for _ in range(rng.integers(1, 4)):
        cy, cx = rng.random(2)
        sy, sx = rng.uniform(0.05, 0.3, size=2)
        low += rng.uniform(1, 3) * np.exp(-((yy - cy) ** 2 / (2 * sy**2) + (xx - cx) ** 2 / (2 * sx**2)))
    s = upsample_bilinear(low, size)
    return (s - s.min()) / (s.max() - s.min())


def temporal_detection_workload(seed: int = 0, n_videos: int = 200, n_classes: int = 20,
                                preds_per_video: int = 60) -> tuple[dict, dict]:
    """Ground truth and predictions in the ActivityNet JSON layout, for timing the
    temporal-mAP evaluators.

    Each video (60-300 s) has 1-6 annotations of 1-2 classes; each prediction is either a
    jittered copy of one of its video's annotations (about half, labelled with the true
    class 80% of the time) or a random segment with a random class. Scores are continuous,
    so no two predictions of a class tie.
    """
    rng = np.random.default_rng(seed)
    classes = [f"class_{k:02d}" for k in range(n_classes)]
    database, results = {}, {}
    for v in range(n_videos):
        vid = f"video_{v:05d}"
        duration = float(rng.uniform(60, 300))
        own = rng.choice(n_classes, size=int(rng.integers(1, 3)), replace=False)
        anns = []
        for _ in range(int(rng.integers(1, 7))):
            length = float(rng.uniform(2, 30))
            start = float(rng.uniform(0, duration - length))
            anns.append({"segment": [round(start, 3), round(start + length, 3)],
                         "label": classes[int(rng.choice(own))]})
        database[vid] = {"subset": "test", "duration": duration, "annotations": anns}
        preds = []
        for _ in range(preds_per_video):
            if rng.random() < 0.5:
                ann = anns[int(rng.integers(len(anns)))]
                s, e = ann["segment"]
                jitter = rng.normal(0, 0.25 * (e - s), size=2)
                s, e = max(0.0, s + jitter[0]), e + jitter[1]
                if e <= s + 0.1:
                    e = s + 0.1 + abs(jitter[1])
                label = ann["label"] if rng.random() < 0.8 else classes[int(rng.integers(n_classes))]
            else:
                length = float(rng.uniform(1, 40))
                s = float(rng.uniform(0, max(duration - length, 1.0)))
                e = s + length
                label = classes[int(rng.integers(n_classes))]
            preds.append({"segment": [float(s), float(e)], "label": label,
                          "score": float(rng.random())})
        results[vid] = preds
    return {"database": database}, {"results": results}
