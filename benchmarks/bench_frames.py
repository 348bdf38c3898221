"""Throughput of Hide-and-Seek in time (``hide_frames``) on clips and snippet features (CPU).

Run: ``PYTHONPATH=src python -m pytest benchmarks/bench_frames.py --benchmark-only``

Groups: ``frames-clips-8x16x3x112x112-fp32`` and ``frames-features-16x320x2048-fp32``, each
with ``x.clone()`` as the read + write yardstick, ``hide_frames`` out of place and in place
(segments of 4 / 8 steps, per-video mean fill, which reads the input once more).
"""

from __future__ import annotations

import pytest
import torch

from hideseek.augment import hide_frames

CLIPS = (8, 16, 3, 112, 112)
FEATURES = (16, 320, 2048)


@pytest.fixture(scope="module")
def clips() -> torch.Tensor:
    return torch.randn(CLIPS, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def features() -> torch.Tensor:
    return torch.randn(FEATURES, generator=torch.Generator().manual_seed(1))


@pytest.mark.benchmark(group="frames-clips-8x16x3x112x112-fp32")
def test_clips_clone(benchmark, clips):
    benchmark(clips.clone)


@pytest.mark.benchmark(group="frames-clips-8x16x3x112x112-fp32")
def test_clips_hide(benchmark, clips):
    out = benchmark(hide_frames, clips, 4)
    assert out.shape == clips.shape


@pytest.mark.benchmark(group="frames-clips-8x16x3x112x112-fp32")
def test_clips_hide_in_place(benchmark, clips):
    work = clips.clone()
    benchmark(hide_frames, work, 4, inplace=True)


@pytest.mark.benchmark(group="frames-features-16x320x2048-fp32")
def test_features_clone(benchmark, features):
    benchmark(features.clone)


@pytest.mark.benchmark(group="frames-features-16x320x2048-fp32")
def test_features_hide(benchmark, features):
    out = benchmark(hide_frames, features, 8)
    assert out.shape == features.shape


@pytest.mark.benchmark(group="frames-features-16x320x2048-fp32")
def test_features_hide_in_place(benchmark, features):
    work = features.clone()
    benchmark(hide_frames, work, 8, inplace=True)
