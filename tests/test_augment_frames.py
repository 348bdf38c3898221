"""Temporal Hide-and-Seek: segment structure, fills and determinism."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hideseek.augment import HideFrames, frame_mask, hide_frames

FAST = settings(max_examples=25, deadline=None)


# small tensors: one intra-op thread keeps timings stable on busy machines
pytestmark = pytest.mark.usefixtures("one_thread")


def _features(b=4, t=23, d=6, seed=0):
    return torch.randn(b, t, d, generator=torch.Generator().manual_seed(seed))


@given(b=st.integers(1, 6), t=st.integers(1, 60), seg=st.integers(1, 25),
       p=st.sampled_from([0.0, 0.3, 0.5, 1.0]), seed=st.integers(0, 10**6))
@FAST
def test_segments_start_at_zero_and_are_all_or_nothing(b, t, seg, p, seed):
    x = torch.zeros(b, t, 3)
    mask = frame_mask(x, seg, p_hide=p, seed=seed)
    assert mask.shape == (b, t) and mask.dtype == torch.bool
    for row in mask:
        for k in range(math.ceil(t / seg)):
            part = row[k * seg:(k + 1) * seg]  # the last segment may be partial
            assert bool(part.all()) or not bool(part.any())
    if p == 0.0:
        assert not mask.any()
    if p == 1.0:
        assert mask.all()


def test_hidden_fraction():
    # 2000 videos x 20 segments, p = 0.5: the fraction of hidden segments has sd
    # sqrt(0.25 / 40000) = 0.0025; 0.02 is eight sds.
    mask = frame_mask(torch.zeros(2000, 200, 1), 10, seed=1)
    assert abs(mask.float().mean().item() - 0.5) < 0.02


def test_default_fill_is_per_video_mean_feature():
    x = _features()
    out = hide_frames(x, 5, seed=2)
    mask = frame_mask(x, 5, seed=2)
    assert mask.any() and (~mask).any()
    mean = x.mean(dim=1)  # (B, D), over all T before hiding
    for b in range(x.shape[0]):
        hidden = out[b][mask[b]]
        assert torch.allclose(hidden, mean[b].expand_as(hidden))
        assert torch.equal(out[b][~mask[b]], x[b][~mask[b]])


def test_default_fill_for_clips_is_mean_pixel_per_channel():
    x = torch.rand(3, 8, 3, 5, 7, generator=torch.Generator().manual_seed(0))
    out = hide_frames(x, 2, seed=4)
    mask = frame_mask(x, 2, seed=4)
    mean = x.mean(dim=(1, 3, 4))  # (B, C)
    for b in range(3):
        for t in range(8):
            if mask[b, t]:
                assert torch.allclose(out[b, t], mean[b][:, None, None].expand(3, 5, 7))
            else:
                assert torch.equal(out[b, t], x[b, t])
    xu = (x * 255).to(torch.uint8)
    outu = hide_frames(xu, 2, seed=4)
    assert outu.dtype == torch.uint8
    assert torch.equal(outu[mask], xu.double().mean(dim=(1, 3, 4)).round().to(torch.uint8)[
        :, None, :, None, None].expand_as(xu)[mask])


def test_given_fill_scalar_and_vector():
    x = _features(d=3)
    mask = frame_mask(x, 4, seed=0)
    out = hide_frames(x, 4, fill=-7.0, seed=0)
    assert bool((out[mask] == -7.0).all())
    vec = torch.tensor([1.0, 2.0, 3.0])
    out = hide_frames(x, 4, fill=vec, seed=0)
    assert torch.equal(out[mask], vec.expand(int(mask.sum()), 3))
    with pytest.raises(ValueError, match="feature dimension"):
        hide_frames(x, 4, fill=[1.0, 2.0])


@given(b=st.integers(2, 10), seed=st.integers(0, 10**6), epoch=st.integers(0, 9))
@FAST
def test_same_video_same_mask_whatever_the_batch(b, seed, epoch):
    x = torch.zeros(b, 31, 2)
    ids = torch.arange(100, 100 + b) * 7
    full = frame_mask(x, 4, seed=seed, epoch=epoch, sample_ids=ids)
    perm = torch.randperm(b, generator=torch.Generator().manual_seed(seed))
    assert torch.equal(frame_mask(x[perm], 4, seed=seed, epoch=epoch, sample_ids=ids[perm]),
                       full[perm])
    assert torch.equal(frame_mask(x[1:], 4, seed=seed, epoch=epoch, sample_ids=ids[1:]),
                       full[1:])


def test_epochs_differ_and_inplace():
    x = _features(b=32, t=40)
    assert not torch.equal(frame_mask(x, 4, epoch=0), frame_mask(x, 4, epoch=1))
    keep = x.clone()
    out = hide_frames(x, 4)
    assert torch.equal(x, keep)
    res = hide_frames(x, 4, inplace=True)
    assert res is x and torch.equal(x, out)


def test_module_and_errors():
    x = _features()
    aug = HideFrames(segment_len=5, seed=1)
    assert aug.kind == "video"
    assert torch.equal(aug(x, sample_ids=[3, 4, 5, 6]),
                       hide_frames(x, 5, seed=1, sample_ids=[3, 4, 5, 6]))
    aug.eval()
    assert aug(x) is x
    with pytest.raises(ValueError, match="segment_len"):
        hide_frames(x, 0)
    with pytest.raises(ValueError, match="shape"):
        hide_frames(x[0], 3)
