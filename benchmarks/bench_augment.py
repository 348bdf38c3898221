"""Throughput of Hide-and-Seek on a 64 x 3 x 224 x 224 fp32 batch (CPU).

Run: ``PYTHONPATH=src python -m pytest benchmarks/bench_augment.py --benchmark-only``

Rows (group ``hide-64x3x224x224-fp32``): the batched ``hide_patches`` out of place and in
place, the per-patch Python loop of :mod:`hideseek.augment.reference` with grid 16, out of
place and in place, next to ``hide_patches`` with the same grid, timm's and torchvision's
``RandomErasing`` (per-sample loops, in place), and two memory-traffic yardsticks:
``x.clone()`` (read + write the batch) and ``x.fill_(0)`` (write only). Hiding does no
arithmetic, so ``clone`` is the natural ceiling for an out-of-place kernel.

Group ``normalize-hide-64x3x224x224-uint8``: uint8 in, normalised fp32 out: ``normalize``
alone, ``normalize`` then ``hide_patches`` in place, and the one-pass
``normalize_and_hide`` (fp32 and bf16 out), next to the same ``clone`` yardstick.

``hideseek bench --device cpu`` measures the same rows (and more) in one run and adds the
byte accounting; this file is the pytest-benchmark view of them.

On CPU a fresh 38.5 MB output is paged in on first write, which costs more than the copy
itself; ``clone`` and every out-of-place row pay it, the in-place rows do not. The thread
count is torch's default for the machine (``OMP_NUM_THREADS`` overrides it) and is stored
in each row's ``extra_info``.
"""

from __future__ import annotations

import pytest
import torch

from hideseek.augment import hide_patches, normalize, normalize_and_hide
from hideseek.augment.reference import hide_patches_loop

GROUP = "hide-64x3x224x224-fp32"
GROUP_U8 = "normalize-hide-64x3x224x224-uint8"
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
SHAPE = (64, 3, 224, 224)

# The machine default (what torch picks at start-up), restored in case another module
# of the session changed it.
DEFAULT_THREADS = torch.get_num_threads()


@pytest.fixture(scope="module")
def batch() -> torch.Tensor:
    torch.set_num_threads(DEFAULT_THREADS)
    return torch.randn(SHAPE, generator=torch.Generator().manual_seed(0))


def _info(benchmark) -> None:
    benchmark.extra_info.update(shape=list(SHAPE), dtype="float32", device="cpu",
                                threads=torch.get_num_threads())


@pytest.mark.benchmark(group=GROUP)
def test_hide_patches_out_of_place(benchmark, batch):
    _info(benchmark)
    out = benchmark(hide_patches, batch, seed=0, epoch=0)
    assert out.shape == batch.shape


@pytest.mark.benchmark(group=GROUP)
def test_hide_patches_in_place(benchmark, batch):
    _info(benchmark)
    work = batch.clone()
    # Re-hiding an already hidden batch costs the same as the first pass.
    benchmark(hide_patches, work, seed=0, epoch=0, inplace=True)


@pytest.mark.benchmark(group=GROUP)
def test_hide_patches_grid16(benchmark, batch):
    _info(benchmark)
    benchmark(hide_patches, batch, grid_sizes=(16,))


@pytest.mark.benchmark(group=GROUP)
def test_reference_loop_grid16(benchmark, batch):
    _info(benchmark)
    out = benchmark.pedantic(hide_patches_loop, args=(batch,), kwargs={"grid_sizes": (16,)},
                             rounds=5, iterations=1, warmup_rounds=1)
    assert torch.equal(out, hide_patches(batch, grid_sizes=(16,)))


@pytest.mark.benchmark(group=GROUP)
def test_reference_loop_grid16_in_place(benchmark, batch):
    _info(benchmark)
    work = batch.clone()
    benchmark.pedantic(hide_patches_loop, args=(work,),
                       kwargs={"grid_sizes": (16,), "inplace": True},
                       rounds=5, iterations=1, warmup_rounds=1)


@pytest.mark.benchmark(group=GROUP)
def test_hide_patches_grid16_in_place(benchmark, batch):
    _info(benchmark)
    work = batch.clone()
    benchmark(hide_patches, work, grid_sizes=(16,), inplace=True)


@pytest.mark.benchmark(group=GROUP)
def test_timm_random_erasing(benchmark, batch):
    from timm.data.random_erasing import RandomErasing

    _info(benchmark)
    work = batch.clone()
    eraser = RandomErasing(probability=0.5, mode="const", device="cpu")
    benchmark(eraser, work)  # erases in place, one sample at a time


@pytest.mark.benchmark(group=GROUP)
def test_clone(benchmark, batch):
    _info(benchmark)
    benchmark(batch.clone)


@pytest.mark.benchmark(group=GROUP)
def test_fill_zero(benchmark, batch):
    _info(benchmark)
    work = batch.clone()
    benchmark(work.fill_, 0)


@pytest.mark.benchmark(group=GROUP)
def test_torchvision_random_erasing(benchmark, batch):
    from torchvision.transforms import RandomErasing

    _info(benchmark)
    work = batch.clone()
    eraser = RandomErasing(p=0.5, value=0, inplace=True)

    def per_image():
        for img in work:
            eraser(img)

    benchmark(per_image)


@pytest.fixture(scope="module")
def batch_u8() -> torch.Tensor:
    torch.set_num_threads(DEFAULT_THREADS)
    return torch.randint(0, 256, SHAPE, generator=torch.Generator().manual_seed(0), dtype=torch.uint8)


@pytest.mark.benchmark(group=GROUP_U8)
def test_u8_clone_float(benchmark, batch):
    _info(benchmark)
    benchmark(batch.clone)


@pytest.mark.benchmark(group=GROUP_U8)
def test_u8_normalize(benchmark, batch_u8):
    _info(benchmark)
    benchmark(normalize, batch_u8, MEAN, STD)


@pytest.mark.benchmark(group=GROUP_U8)
def test_u8_normalize_then_hide(benchmark, batch_u8):
    _info(benchmark)
    benchmark(lambda: hide_patches(normalize(batch_u8, MEAN, STD), inplace=True))


@pytest.mark.benchmark(group=GROUP_U8)
def test_u8_normalize_and_hide(benchmark, batch_u8):
    _info(benchmark)
    out = benchmark(normalize_and_hide, batch_u8, MEAN, STD)
    assert torch.equal(out, hide_patches(normalize(batch_u8, MEAN, STD)))


@pytest.mark.benchmark(group=GROUP_U8)
def test_u8_normalize_and_hide_bf16(benchmark, batch_u8):
    _info(benchmark)
    benchmark(normalize_and_hide, batch_u8, MEAN, STD, out_dtype=torch.bfloat16)
