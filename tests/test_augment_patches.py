"""Hide-and-Seek on image batches: properties, determinism and the reference oracle."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hideseek.augment import HideAndSeekBatch, _hash, cutout, cutout_mask, hide_patches, patch_mask
from hideseek.augment.reference import hide_patches_loop

FAST = settings(max_examples=25, deadline=None)


# small tensors: one intra-op thread keeps timings stable on busy machines
pytestmark = pytest.mark.usefixtures("one_thread")

sizes_st = st.lists(st.integers(0, 40), min_size=1, max_size=5)
shape_st = st.tuples(st.integers(1, 6), st.integers(1, 4), st.integers(1, 50),
                     st.integers(1, 50))
seed_st = st.integers(-(2**63), 2**63 - 1)
p_st = st.sampled_from([0.0, 0.1, 0.5, 0.9, 1.0])


def _images(shape, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    if dtype == torch.uint8:
        return torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)
    return torch.randn(shape, generator=g).to(dtype)


def _constant_on_cells(mask2d: torch.Tensor, ch: int, cw: int) -> bool:
    h, w = mask2d.shape
    for r in range(math.ceil(h / ch)):
        for c in range(math.ceil(w / cw)):
            cell = mask2d[r * ch:(r + 1) * ch, c * cw:(c + 1) * cw]
            if cell.any() and not cell.all():
                return False
    return True


# --- hash ----------------------------------------------------------------------------

@given(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=20),
       st.integers(0, 2**32 - 1))
@FAST
def test_hash_tensor_matches_python_ints(values, state):
    t = torch.tensor(values, dtype=torch.int64)
    assert _hash.combine64(state, t).tolist() == [_hash.combine64(state, v) for v in values]


def test_hash_stays_in_32_bits_and_avoids_overflow():
    h = torch.tensor([0, 1, 2**32 - 1, 2**31, 12345], dtype=torch.int64)
    for _ in range(4):
        h = _hash.fmix32(h)
        assert bool((h >= 0).all()) and bool((h < 2**32).all())
    # fmix32 is a bijection: distinct inputs give distinct outputs
    x = torch.arange(100_000, dtype=torch.int64)
    assert _hash.fmix32(x).unique().numel() == x.numel()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CPU vs CUDA mask equality needs a CUDA device")
def test_cpu_and_cuda_give_identical_masks():
    x = _images((8, 3, 97, 61))
    ids = torch.tensor([5, -3, 2**40, 7, 0, 1, 99, 12345678901])
    for kw in ({}, {"num_cells": (3, 4)}):
        cpu = hide_patches(x, sample_ids=ids, seed=3, epoch=2, **kw)
        gpu = hide_patches(x.cuda(), sample_ids=ids.cuda(), seed=3, epoch=2, **kw)
        assert torch.equal(cpu, gpu.cpu())


# --- oracle ----------------------------------------------------------------------------

@given(shape=shape_st, sizes=sizes_st, p=p_st, seed=seed_st, epoch=st.integers(0, 10**6),
       dtype=st.sampled_from([torch.float32, torch.float16, torch.bfloat16, torch.float64,
                              torch.uint8]),
       ids=st.integers(-(2**40), 2**40))
@FAST
def test_equals_reference_loop(shape, sizes, p, seed, epoch, dtype, ids):
    x = _images(shape, dtype)
    sample_ids = list(range(ids, ids + shape[0]))
    fill = 7 if dtype == torch.uint8 else -1.5
    kw = dict(grid_sizes=sizes, p_hide=p, fill=fill, seed=seed, epoch=epoch,
              sample_ids=sample_ids)
    out = hide_patches(x, **kw)
    ref = hide_patches_loop(x, **kw)
    assert out.dtype == dtype and out.shape == x.shape
    assert torch.equal(out.view(torch.uint8) if dtype != torch.uint8 else out,
                       ref.view(torch.uint8) if dtype != torch.uint8 else ref)


@given(shape=shape_st, cells=st.lists(st.integers(0, 7), min_size=1, max_size=3),
       seed=st.integers(0, 1000))
@FAST
def test_num_cells_equals_reference_loop(shape, cells, seed):
    x = _images(shape)
    out = hide_patches(x, num_cells=cells, seed=seed)
    assert torch.equal(out, hide_patches_loop(x, num_cells=cells, seed=seed))
    # cells are ceil(H/S) x ceil(W/S): the mask is constant on them
    mask = patch_mask(x, num_cells=cells, seed=seed)
    for m in mask:
        assert any(s > 0 and _constant_on_cells(m, math.ceil(shape[2] / s),
                                                math.ceil(shape[3] / s)) or
                   (s == 0 and not m.any()) for s in cells)


# --- properties --------------------------------------------------------------------------

@given(shape=shape_st, sizes=sizes_st, seed=st.integers(0, 10**9), p=p_st)
@FAST
def test_every_cell_wholly_hidden_or_untouched(shape, sizes, seed, p):
    x = _images(shape)
    out = hide_patches(x, grid_sizes=sizes, p_hide=p, seed=seed, fill=float("nan"))
    mask = patch_mask(x, grid_sizes=sizes, p_hide=p, seed=seed)
    # hidden pixels (all channels) hold the fill; the others are the input, bit for bit
    assert torch.isnan(out).all(dim=1).eq(mask).all()
    assert torch.equal(out.masked_select(~mask[:, None]), x.masked_select(~mask[:, None]))
    for m in mask:
        assert any((s == 0 and not m.any()) or (s > 0 and _constant_on_cells(m, s, s))
                   for s in sizes)


@given(seed=st.integers(0, 10**9), epoch=st.integers(0, 100))
@settings(max_examples=5, deadline=None)
def test_hidden_fraction_matches_expectation(seed, epoch):
    # Defaults: a sample is hidden with probability 4/5 (size 0 is one of five) and then
    # each cell with p 0.5, so the expected hidden fraction is 0.4. The per-image fraction
    # lies in [0, 1], so its standard deviation is at most 0.5 and the mean of N = 1024
    # images has sd <= 0.5 / 32 = 0.016; a tolerance of 0.08 is five worst-case sds.
    x = torch.zeros(1024, 1, 64, 64)
    frac = patch_mask(x, seed=seed, epoch=epoch).float().mean(dim=(1, 2))
    assert abs(frac.mean().item() - 0.4) < 0.08
    # single size, no size-0 draw: expected 0.5 (tolerance justified as above)
    frac16 = patch_mask(x, grid_sizes=16, p_hide=0.5, seed=seed).float().mean()
    assert abs(frac16.item() - 0.5) < 0.08
    frac_p = patch_mask(x, grid_sizes=8, p_hide=0.25, seed=seed).float().mean()
    assert abs(frac_p.item() - 0.25) < 0.08


@given(b=st.integers(2, 16), seed=st.integers(0, 10**6), epoch=st.integers(0, 50),
       data=st.data())
@FAST
def test_same_sample_same_mask_across_batches(b, seed, epoch, data):
    x = _images((b, 2, 45, 37))
    ids = torch.tensor(data.draw(st.lists(st.integers(-10**12, 10**12), min_size=b,
                                          max_size=b, unique=True)))
    full = patch_mask(x, seed=seed, epoch=epoch, sample_ids=ids)
    perm = torch.randperm(b, generator=torch.Generator().manual_seed(seed))
    assert torch.equal(patch_mask(x[perm], seed=seed, epoch=epoch, sample_ids=ids[perm]),
                       full[perm])
    lo = data.draw(st.integers(0, b - 1))
    hi = data.draw(st.integers(lo + 1, b))
    assert torch.equal(patch_mask(x[lo:hi], seed=seed, epoch=epoch, sample_ids=ids[lo:hi]),
                       full[lo:hi])
    # one image at a time, as a (C, H, W) tensor with its id
    single = patch_mask(x[lo], seed=seed, epoch=epoch, sample_ids=[int(ids[lo])])
    assert single.shape == (45, 37) and torch.equal(single, full[lo])
    # images as (B, C, H, W) with the output equal too
    out = hide_patches(x, seed=seed, epoch=epoch, sample_ids=ids)
    assert torch.equal(hide_patches(x[perm], seed=seed, epoch=epoch, sample_ids=ids[perm]),
                       out[perm])


def test_mask_does_not_depend_on_thread_count():
    x = torch.zeros(300, 1, 64, 64)  # big enough for parallel kernels
    one = patch_mask(x, seed=11)
    torch.set_num_threads(2)
    assert torch.equal(patch_mask(x, seed=11), one)


def test_different_epochs_and_seeds_differ():
    x = torch.zeros(64, 1, 64, 64)
    m0 = patch_mask(x, epoch=0)
    assert not torch.equal(m0, patch_mask(x, epoch=1))
    assert not torch.equal(m0, patch_mask(x, seed=1))
    assert torch.equal(m0, patch_mask(x, epoch=0))


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float16, torch.bfloat16,
                                   torch.float32, torch.float64])
def test_dtypes_preserved_and_fill_written(dtype):
    x = _images((4, 3, 33, 47), dtype)
    fill = 200 if dtype == torch.uint8 else 0.25
    out = hide_patches(x, grid_sizes=(8, 16), fill=fill, seed=1)
    mask = patch_mask(x, grid_sizes=(8, 16), seed=1)[:, None].expand_as(x)
    assert out.dtype == dtype
    assert bool((out[mask] == fill).all())
    assert torch.equal(out[~mask], x[~mask])


def test_uint8_rejects_unrepresentable_fill():
    x = _images((2, 3, 8, 8), torch.uint8)
    with pytest.raises(ValueError, match="not representable"):
        hide_patches(x, fill=0.5)
    with pytest.raises(ValueError, match="not representable"):
        hide_patches(x, fill=300)


@pytest.mark.parametrize("hw", [(1, 1), (3, 200), (200, 3), (15, 17), (57, 100)])
def test_non_square_and_tiny_images(hw):
    x = _images((6, 3) + hw)
    for sizes in ((0, 16, 32, 44, 56), (56,), (1,)):
        out = hide_patches(x, grid_sizes=sizes, seed=4)
        assert torch.equal(out, hide_patches_loop(x, grid_sizes=sizes, seed=4))
    # an image smaller than the patch is one (partial) cell: all hidden or all visible
    mask = patch_mask(x, grid_sizes=(500,), seed=4)
    assert all(bool(m.all()) or not bool(m.any()) for m in mask)


def test_per_channel_fill():
    x = _images((5, 3, 40, 40))
    fill = torch.tensor([1.0, -2.0, 3.5])
    out = hide_patches(x, grid_sizes=(10,), fill=fill, seed=2)
    mask = patch_mask(x, grid_sizes=(10,), seed=2)
    assert mask.any()
    for c in range(3):
        assert bool((out[:, c][mask] == fill[c]).all())
        assert torch.equal(out[:, c][~mask], x[:, c][~mask])
    assert torch.equal(out, hide_patches(x, grid_sizes=(10,), fill=[1.0, -2.0, 3.5], seed=2))
    assert torch.equal(out, hide_patches_loop(x, grid_sizes=(10,), fill=fill, seed=2))
    with pytest.raises(ValueError, match="channels"):
        hide_patches(x, fill=[1.0, 2.0])


def test_input_untouched_unless_inplace():
    x = _images((4, 3, 32, 32))
    keep = x.clone()
    out = hide_patches(x, grid_sizes=(8,), fill=1.0)
    assert torch.equal(x, keep) and out is not x
    out2 = hide_patches(x, grid_sizes=(8,), fill=1.0, inplace=True)
    assert out2 is x and torch.equal(x, out)
    single = keep[0].clone()
    res = hide_patches(single, grid_sizes=(8,), inplace=True)
    assert res is single and not torch.equal(single, keep[0])


def test_nan_and_inf_survive_in_visible_pixels():
    x = torch.full((2, 1, 16, 16), float("nan"))
    x[1] = float("inf")
    out = hide_patches(x, grid_sizes=(4,), seed=3)
    mask = patch_mask(x, grid_sizes=(4,), seed=3)[:, None]
    assert bool((out[mask] == 0).all())
    assert torch.equal(out[~mask].view(torch.int32), x[~mask].view(torch.int32))


def test_channels_last_and_non_contiguous_inputs():
    x = _images((4, 3, 30, 30))
    ref = hide_patches(x, seed=9)
    assert torch.equal(hide_patches(x.to(memory_format=torch.channels_last), seed=9), ref)
    wide = _images((4, 3, 30, 60))
    part = wide[..., ::2]
    assert torch.equal(hide_patches(part, seed=9), hide_patches(part.contiguous(), seed=9))


def test_gradients_flow_through_visible_pixels():
    x = _images((2, 3, 16, 16)).requires_grad_()
    out = hide_patches(x, grid_sizes=(4,), seed=1)
    out.sum().backward()
    mask = patch_mask(x, grid_sizes=(4,), seed=1)[:, None].expand_as(x)
    assert bool((x.grad[mask] == 0).all()) and bool((x.grad[~mask] == 1).all())


def test_argument_errors():
    x = _images((2, 3, 8, 8))
    with pytest.raises(ValueError, match="shape"):
        hide_patches(x[0, 0])
    with pytest.raises(ValueError, match="sample_ids"):
        hide_patches(x, sample_ids=[1, 2, 3])
    with pytest.raises(ValueError, match="not both"):
        hide_patches(x, grid_sizes=(4,), num_cells=2)
    with pytest.raises(ValueError, match="non-negative"):
        hide_patches(x, grid_sizes=(-4,))
    with pytest.raises(ValueError, match="probability"):
        hide_patches(x, p_hide=1.5)
    with pytest.raises(TypeError):
        hide_patches(x, sample_ids=[1.5, 2.0])
    with pytest.raises(TypeError):
        hide_patches(x.bool())


def test_batch_module_train_and_eval():
    x = _images((4, 3, 32, 32))
    aug = HideAndSeekBatch(grid_sizes=(8,), seed=5)
    assert aug.kind == "image"
    out = aug(x, sample_ids=[10, 11, 12, 13])
    assert torch.equal(out, hide_patches(x, (8,), seed=5, sample_ids=[10, 11, 12, 13]))
    aug.set_epoch(3)
    assert torch.equal(aug(x, sample_ids=[1, 2, 3, 4]),
                       hide_patches(x, (8,), seed=5, epoch=3, sample_ids=[1, 2, 3, 4]))
    # counter fallback: ids continue across calls and restart with set_epoch
    aug.set_epoch(0)
    first, second = aug(x), aug(x)
    assert torch.equal(second, hide_patches(x, (8,), seed=5, sample_ids=[4, 5, 6, 7]))
    aug.set_epoch(0)
    assert torch.equal(aug(x), first)
    aug.eval()
    assert aug(x) is x


@given(size=st.integers(0, 40), shape=shape_st, seed=st.integers(0, 10**6))
@FAST
def test_cutout_square_clipped_and_deterministic(size, shape, seed):
    x = _images(shape)
    mask = cutout_mask(x, size=size, seed=seed)
    out = cutout(x, size=size, seed=seed, fill=2.0)
    for m in mask:
        ys, xs = torch.nonzero(m, as_tuple=True)
        if size == 0:
            assert ys.numel() == 0
            continue
        assert ys.numel() > 0  # the centre is inside the image
        h = int(ys.max() - ys.min() + 1)
        w = int(xs.max() - xs.min() + 1)
        assert h <= size and w <= size and ys.numel() == h * w  # one clipped rectangle
        assert h == min(size, shape[2]) or ys.min() == 0 or ys.max() == shape[2] - 1
    assert bool((out[mask[:, None].expand_as(x)] == 2.0).all())
    b = shape[0]
    perm = torch.randperm(b, generator=torch.Generator().manual_seed(seed))
    assert torch.equal(cutout_mask(x[perm], size=size, seed=seed, sample_ids=perm), mask[perm])
