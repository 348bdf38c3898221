"""The compiled CPU writer behind hide_patches on large batches gives the same bits as the
eager bitwise path, for every element size, layout and fill (NaN included)."""

from __future__ import annotations

import math

import pytest
import torch

from hideseek.augment import _cpu_masking, cutout, hide_patches

pytestmark = pytest.mark.usefixtures("one_thread")


def _eager(monkeypatch, fn):
    with monkeypatch.context() as m:
        m.setattr(_cpu_masking, "MIN_ELEMENTS", math.inf)
        return fn()


def _bits(t):
    return t.view({1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[t.element_size()])


@pytest.mark.parametrize("dtype, fill", [
    (torch.float32, (float("nan"), -0.0, 2.5)),
    (torch.bfloat16, 0.0),
    (torch.float64, (1.0, float("inf"), -3.0)),
    (torch.uint8, (0, 128, 255)),
])
def test_compiled_writer_matches_eager_path(monkeypatch, dtype, fill):
    g = torch.Generator().manual_seed(0)
    x = (torch.rand((6, 3, 70, 90), generator=g) * 200).to(dtype)
    x.view(-1)[::97] = float("nan") if dtype.is_floating_point else 7  # odd values survive as bits
    assert x.numel() >= _cpu_masking.MIN_ELEMENTS
    kw = dict(grid_sizes=(0, 16, 25), fill=fill, seed=4, epoch=2, sample_ids=[3, 1, 4, 1, 5, 9])
    fast = hide_patches(x, **kw)
    slow = _eager(monkeypatch, lambda: hide_patches(x, **kw))
    assert torch.equal(_bits(fast), _bits(slow))
    a, b = x.clone(), x.clone()
    assert hide_patches(a, inplace=True, **kw) is a
    _eager(monkeypatch, lambda: hide_patches(b, inplace=True, **kw))
    assert torch.equal(_bits(a), _bits(slow)) and torch.equal(_bits(b), _bits(slow))


def test_channels_last_input_and_cutout(monkeypatch):
    x = torch.randn((4, 3, 96, 96), generator=torch.Generator().manual_seed(1))
    cl = x.contiguous(memory_format=torch.channels_last)
    assert torch.equal(hide_patches(cl), _eager(monkeypatch, lambda: hide_patches(x)))
    work = cl.clone(memory_format=torch.channels_last)
    hide_patches(work, inplace=True)
    assert torch.equal(work, hide_patches(x))
    assert torch.equal(cutout(x, size=30), _eager(monkeypatch, lambda: cutout(x, size=30)))
    assert torch.equal(x, torch.randn((4, 3, 96, 96), generator=torch.Generator().manual_seed(1)))
