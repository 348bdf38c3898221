"""Normalise and hide in one pass: uint8 images in, mean/std-normalised Hide-and-Seek out.

A GPU input pipeline already pays one pass over every batch to turn decoded ``uint8``
pixels into normalised floats. :func:`normalize_and_hide` folds the Hide-and-Seek mask
into that pass, so hiding costs no extra memory traffic: it reads 1 byte and writes
``out_dtype`` bytes per element, and the hidden cells are written with the fill value
instead of the normalised pixel.

Contract (exact, bit for bit)::

    normalize_and_hide(x, mean, std, ...) == hide_patches(normalize(x, mean, std, out_dtype), ...)

with the same ``(seed, epoch, sample id)``, so the mask is the one :func:`patch_mask`
gives for an image of that size. :func:`normalize` is ``(x - 255 * mean) / (255 * std)``
computed in float32 (the two constants rounded to float32 once, per channel) and then
rounded to ``out_dtype`` (round to nearest even); ``mean`` and ``std`` are in the 0-1
pixel scale of torchvision's ``Normalize`` after ``ToTensor``. The fill default 0 is the
dataset mean, as for :func:`hide_patches` on normalised input.

Backends: on CUDA a single-launch Triton kernel (:mod:`hideseek.augment._triton_fused`)
that hashes each element's cell itself; on CPU a one-pass numba kernel
(:mod:`hideseek.augment._cpu_fused`, float32 and bfloat16 output); otherwise (float16 on
CPU, other devices, or ``backend="torch"``) a torch path (one promoted subtraction into the
output, one in-place division, one bitwise hide). ``backend="triton"`` on CPU tensors runs the kernel under Triton's
interpreter, which needs ``TRITON_INTERPRET=1`` in the environment before the kernel module is first
imported; that is how its exactness is tested without a GPU.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch

from . import _hash
from ._masking import FillLike, apply_cells, fill_vector
from .patches import DEFAULT_GRID_SIZES, IdsLike, SizesLike, _cell_layout, cell_choices

__all__ = ["normalize", "normalize_and_hide"]

MeanStd = float | Sequence[float] | torch.Tensor
OUT_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def _layout(images: torch.Tensor, channels_last: bool | None) -> tuple[torch.Tensor, bool]:
    """``(B, C, H, W)`` view of the batch (a permuted view for NHWC input) and ``single``."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if images.dtype != torch.uint8:
        raise TypeError(f"images must be uint8 (decoded pixels), got dtype {images.dtype}")
    if images.ndim not in (3, 4):
        raise ValueError("images must have shape (B, C, H, W), (B, H, W, C), (C, H, W) or "
                         f"(H, W, C), got {tuple(images.shape)}")
    single = images.ndim == 3
    x = images.unsqueeze(0) if single else images
    if channels_last is None:
        # NHWC when the last dim looks like channels and dim 1 does not.
        channels_last = x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4)
    if channels_last:
        x = x.permute(0, 3, 1, 2)
    return x, single


def _constants(mean: MeanStd, std: MeanStd, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """float32 ``(C,)`` tensors ``255 * mean`` and ``255 * std`` (rounded once from float64)."""
    m = fill_vector(mean, channels, torch.float64)
    s = fill_vector(std, channels, torch.float64)
    if not bool(torch.all(s > 0)) or not bool(torch.all(torch.isfinite(s))):
        raise ValueError(f"std must be positive and finite, got {s.tolist()}")
    if not bool(torch.all(torch.isfinite(m))):
        raise ValueError(f"mean must be finite, got {m.tolist()}")
    return (m * 255.0).to(torch.float32), (s * 255.0).to(torch.float32)


def _check_out_dtype(out_dtype: torch.dtype) -> None:
    if out_dtype not in OUT_DTYPES:
        raise ValueError(f"out_dtype must be one of {OUT_DTYPES}, got {out_dtype}")


def normalize(images_uint8: torch.Tensor, mean: MeanStd, std: MeanStd,
              out_dtype: torch.dtype = torch.float32,
              channels_last: bool | None = None) -> torch.Tensor:
    """Mean/std normalisation of uint8 images: ``(x - 255 mean) / (255 std)`` in float32,
    rounded to ``out_dtype``; returns a contiguous ``(B, C, H, W)`` (or ``(C, H, W)``)
    tensor. The definition :func:`normalize_and_hide` matches bit for bit."""
    _check_out_dtype(out_dtype)
    x, single = _layout(images_uint8, channels_last)
    m, s = _constants(mean, std, x.shape[1])
    shape = (1, -1, 1, 1)
    out = torch.empty(x.shape, dtype=torch.float32, device=x.device)
    torch.sub(x, m.to(x.device).view(shape), out=out)
    out.div_(s.to(x.device).view(shape))
    out = out.to(out_dtype)
    return out[0] if single else out


BACKENDS = ("auto", "torch", "numba", "triton")


def _use_triton(backend: str, device: torch.device) -> bool:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend in ("torch", "numba"):
        return False
    if backend == "triton":
        if device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
            raise RuntimeError("backend='triton' needs a CUDA tensor, or TRITON_INTERPRET=1 in the "
                               "environment to run the kernel under Triton's CPU interpreter")
        return True
    if device.type != "cuda":
        return False
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def normalize_and_hide(images_uint8: torch.Tensor, mean: MeanStd, std: MeanStd,
                       grid_sizes: SizesLike = DEFAULT_GRID_SIZES, p_hide: float = 0.5,
                       seed: int = 0, epoch: int = 0, sample_ids: IdsLike = None,
                       out_dtype: torch.dtype = torch.float32, fill: FillLike = 0.0,
                       num_cells: SizesLike | None = None,
                       channels_last: bool | None = None,
                       backend: str = "auto") -> torch.Tensor:
    """Normalise uint8 images and hide Hide-and-Seek patches, in one pass over memory.

    Parameters
    ----------
    images_uint8 : Tensor
        uint8 ``(B, C, H, W)`` or ``(B, H, W, C)`` (or one image without ``B``), any
        strides, any device (the work runs there).
    mean, std : float, sequence or Tensor
        Per-channel mean and std in the 0-1 pixel scale (e.g. ImageNet's
        ``(0.485, 0.456, 0.406)`` / ``(0.229, 0.224, 0.225)``), or one scalar.
    grid_sizes, p_hide, seed, epoch, sample_ids, num_cells
        As for :func:`~hideseek.augment.hide_patches`: the same arguments give the same mask.
    out_dtype : torch.dtype
        ``torch.float32``, ``torch.bfloat16`` or ``torch.float16``.
    fill : float, sequence or Tensor
        Value of hidden pixels in the normalised space (default 0 = the dataset mean).
    channels_last : bool, optional
        Force the input layout (True = NHWC). By default a 4-D input whose last dim is 1,
        3 or 4 and whose dim 1 is not is read as NHWC.
    backend : str
        ``"auto"`` (Triton on CUDA, numba on CPU where it applies, torch otherwise),
        ``"torch"``, ``"numba"`` or ``"triton"``. All give the same bits.

    Returns
    -------
    Tensor
        Contiguous ``(B, C, H, W)`` (``(C, H, W)`` for one image) of ``out_dtype``.
    """
    _check_out_dtype(out_dtype)
    x, single = _layout(images_uint8, channels_last)
    batch, channels, height, width = x.shape
    m, s = _constants(mean, std, channels)
    fill_t = fill_vector(fill, channels, out_dtype)
    choices = cell_choices(height, width, grid_sizes, num_cells)
    base = _hash.base_key(_hash.DOMAIN_PATCHES, seed, epoch)
    thr = _hash.threshold(float(p_hide))

    if _use_triton(backend, x.device):
        from ._triton_fused import normalize_and_hide_triton

        ids = None if sample_ids is None else _hash.as_ids(sample_ids, batch, x.device)
        out = normalize_and_hide_triton(x, m, s, fill_t, choices, base, ids, thr, out_dtype)
        return out[0] if single else out

    ids = _hash.as_ids(sample_ids, batch, x.device)
    hidden, ridx, cidx = _cell_layout(batch, height, width, _hash.sample_keys(base, ids), choices,
                                      float(p_hide))
    compiled = x.device.type == "cpu" and out_dtype != torch.float16
    if backend == "numba" and not compiled:
        raise ValueError("backend='numba' runs on CPU tensors with float32 or bfloat16 output")
    if compiled and backend != "torch":
        from ._cpu_fused import normalize_and_hide_cpu

        out = normalize_and_hide_cpu(x, m, s, fill_t, hidden, ridx, cidx, out_dtype)
    else:
        shape = (1, -1, 1, 1)
        out = torch.empty(x.shape, dtype=torch.float32, device=x.device)
        torch.sub(x, m.to(x.device).view(shape), out=out)
        out.div_(s.to(x.device).view(shape))
        if out_dtype != torch.float32:
            out = out.to(out_dtype)
        out = apply_cells(out, hidden, ridx, cidx, fill_t, inplace=True)
    return out[0] if single else out
