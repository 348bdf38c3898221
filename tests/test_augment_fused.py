"""normalize_and_hide: exact equality with normalise-then-hide, on the torch path, and on
the Triton kernel run by Triton's CPU interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hideseek.augment import hide_patches, normalize, normalize_and_hide, patch_mask

pytestmark = pytest.mark.usefixtures("one_thread")

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
SRC = Path(__file__).resolve().parents[1] / "src"


def _uint8(shape, seed=0):
    return torch.randint(0, 256, shape, generator=torch.Generator().manual_seed(seed),
                         dtype=torch.uint8)


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.view({4: torch.int32, 2: torch.int16}[t.element_size()])


@settings(max_examples=25, deadline=None)
@given(shape=st.tuples(st.integers(1, 4), st.sampled_from([1, 3]), st.integers(1, 40),
                       st.integers(1, 40)),
       sizes=st.lists(st.integers(0, 24), min_size=1, max_size=4),
       p=st.sampled_from([0.0, 0.3, 0.5, 1.0]), seed=st.integers(-(2**40), 2**40),
       epoch=st.integers(0, 100), dtype=st.sampled_from([torch.float32, torch.bfloat16,
                                                         torch.float16]))
def test_equals_hide_patches_after_normalize(shape, sizes, p, seed, epoch, dtype):
    x = _uint8(shape, seed % 1000)
    c = shape[1]
    mean, std = MEAN[:c], STD[:c]
    ref = hide_patches(normalize(x, mean, std, dtype), grid_sizes=sizes, p_hide=p, seed=seed,
                       epoch=epoch)
    for backend in ("auto", "torch"):
        out = normalize_and_hide(x, mean, std, grid_sizes=sizes, p_hide=p, seed=seed, epoch=epoch,
                                 out_dtype=dtype, backend=backend)
        assert out.dtype == dtype and out.shape == shape and out.is_contiguous()
        assert torch.equal(_bits(out), _bits(ref)), backend


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_numba_and_torch_paths_agree_on_a_full_size_batch(dtype):
    x = _uint8((4, 3, 224, 224), 5)
    ids = [5, 99, -3, 2**33]
    kw = dict(seed=9, epoch=4, sample_ids=ids, out_dtype=dtype, fill=(0.25, -0.5, 1.0))
    compiled = normalize_and_hide(x, MEAN, STD, backend="numba", **kw)
    plain = normalize_and_hide(x, MEAN, STD, backend="torch", **kw)
    nhwc = normalize_and_hide(x.permute(0, 2, 3, 1), MEAN, STD, backend="numba", channels_last=True, **kw)
    assert torch.equal(_bits(compiled), _bits(plain)) and torch.equal(_bits(nhwc), _bits(plain))
    with pytest.raises(ValueError, match="numba"):
        normalize_and_hide(x, MEAN, STD, backend="numba", out_dtype=torch.float16)


def test_mask_is_patch_mask_and_nhwc_input_matches():
    x = _uint8((6, 3, 50, 45), 1)
    ids = torch.tensor([10, 3, 99, 7, 0, 123456789])
    out = normalize_and_hide(x, MEAN, STD, grid_sizes=(0, 8, 16), seed=5, epoch=3, sample_ids=ids,
                             fill=(9.0, 9.0, 9.0))
    hidden = (out == 9.0).all(dim=1)
    assert torch.equal(hidden, patch_mask(x, grid_sizes=(0, 8, 16), seed=5, epoch=3, sample_ids=ids))
    nhwc = normalize_and_hide(x.permute(0, 2, 3, 1).contiguous(), MEAN, STD, grid_sizes=(0, 8, 16),
                              seed=5, epoch=3, sample_ids=ids, fill=(9.0, 9.0, 9.0))
    assert torch.equal(nhwc, out)
    # a permuted (non-contiguous) view reads the same pixels
    view = normalize_and_hide(x.permute(0, 2, 3, 1), MEAN, STD, grid_sizes=(0, 8, 16), seed=5,
                              epoch=3, sample_ids=ids, fill=(9.0, 9.0, 9.0), channels_last=True)
    assert torch.equal(view, out)


def test_visible_pixels_are_normalised_and_single_image_works():
    x = _uint8((3, 20, 30), 2)
    out = normalize_and_hide(x, MEAN, STD, grid_sizes=(0,))
    expect = (x.float() / 255 - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)
    assert out.shape == (3, 20, 30)
    torch.testing.assert_close(out, expect, rtol=1e-5, atol=1e-5)
    assert torch.equal(out, normalize(x, MEAN, STD))


def test_same_sample_same_mask_whatever_the_batch():
    x = _uint8((5, 3, 33, 33), 3)
    full = normalize_and_hide(x, MEAN, STD, grid_sizes=(8,), seed=1, sample_ids=range(100, 105))
    part = normalize_and_hide(x[2:4], MEAN, STD, grid_sizes=(8,), seed=1, sample_ids=[102, 103])
    assert torch.equal(full[2:4], part)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(images_uint8=torch.zeros(2, 3, 4, 4)), TypeError, "uint8"),
    (dict(images_uint8=torch.zeros(3, 4, dtype=torch.uint8)), ValueError, "shape"),
    (dict(std=(0.2, 0.0, 0.2)), ValueError, "positive"),
    (dict(mean=(0.5, 0.5)), ValueError, "channels"),
    (dict(out_dtype=torch.float64), ValueError, "out_dtype"),
    (dict(backend="cuda"), ValueError, "backend"),
])
def test_bad_arguments_raise_clear_errors(kwargs, error, match):
    args = dict(images_uint8=_uint8((2, 3, 4, 4)), mean=MEAN, std=STD)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        normalize_and_hide(**args)


def test_triton_backend_on_cpu_needs_the_interpreter(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"):
        normalize_and_hide(_uint8((1, 3, 4, 4)), MEAN, STD, backend="triton")


_INTERPRETER_SCRIPT = r"""
import json, torch
from hideseek.augment import hide_patches, normalize, normalize_and_hide
mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
g = torch.Generator().manual_seed(0)
cases = []
for shape, dtype, kw in [
    ((3, 3, 37, 53), torch.float32, dict(grid_sizes=(0, 8, 16), seed=3, epoch=2)),
    ((2, 3, 64, 48), torch.bfloat16, dict(grid_sizes=(16, 32), p_hide=0.7, seed=-9, fill=(0.5, -1.0, 2.0))),
    ((2, 1, 17, 70), torch.float16, dict(num_cells=(3, 4), seed=11, epoch=5, sample_ids=[40, 2])),
    ((4, 3, 30, 31), torch.float32, dict(grid_sizes=(0, 4, 7, 50), p_hide=0.5, seed=2**40)),
    ((3, 3, 20, 20), torch.float32, dict(grid_sizes=(8,), p_hide=1.0, sample_ids=[-5, 2**40, 1])),
    ((2, 3, 16, 16), torch.bfloat16, dict(grid_sizes=16, p_hide=0.0, seed=1, epoch=1)),
]:
    x = torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)
    c = shape[1]
    ref = hide_patches(normalize(x, mean[:c], std[:c], dtype), **kw)
    bits = {4: torch.int32, 2: torch.int16}[ref.element_size()]
    out = normalize_and_hide(x, mean[:c], std[:c], out_dtype=dtype, backend="triton", **kw)
    nhwc = normalize_and_hide(x.permute(0, 2, 3, 1).contiguous(), mean[:c], std[:c], out_dtype=dtype,
                              backend="triton", channels_last=True, **kw)
    cases.append(dict(shape=list(shape), dtype=str(dtype),
                      nchw=bool(torch.equal(out.view(bits), ref.view(bits))),
                      nhwc=bool(torch.equal(nhwc.view(bits), ref.view(bits))),
                      hidden=int((out.view(bits) != normalize(x, mean[:c], std[:c], dtype).view(bits)).sum())))
print(json.dumps(cases))
"""


def test_triton_kernel_is_exact_under_the_interpreter():
    pytest.importorskip("triton")
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=str(SRC), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", _INTERPRETER_SCRIPT], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    cases = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(cases) == 6
    for case in cases:
        assert case["nchw"] and case["nhwc"], case
    assert sum(c["hidden"] for c in cases) > 0  # the cases really hide something


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the CUDA kernel needs a CUDA device; "
                    "its exactness is covered by the interpreter test on CPU")
def test_cuda_kernel_equals_cpu_result():
    x = _uint8((8, 3, 224, 224), 4)
    for dtype in (torch.float32, torch.bfloat16):
        cpu = normalize_and_hide(x, MEAN, STD, seed=7, epoch=1, out_dtype=dtype)
        gpu = normalize_and_hide(x.cuda(), MEAN, STD, seed=7, epoch=1, out_dtype=dtype)
        assert torch.equal(_bits(gpu.cpu()), _bits(cpu))
