"""Counter-based integer hashing shared by every hiding augmentation.

Every random decision in :mod:`hideseek.augment` (which patch size a sample gets, whether
a cell or a segment is hidden, where a cutout square lands) is a pure function of
``(domain, seed, epoch, sample id, stream, coordinates)``. It is computed with a 32-bit
mixing function evaluated on ``int64`` tensors, so that

* the result never depends on batch size, order, slicing, worker count or device;
* CPU and CUDA give identical bits: every intermediate value stays below ``2**63``
  (32-bit state, multiplications split into 16-bit halves), so no signed overflow occurs;
* the same functions accept plain Python ``int`` values, which is how the readable
  per-patch loop in :mod:`hideseek.augment.reference` evaluates the very same hash.

The finaliser is the well-known 32-bit "fmix" avalanche step (xor-shift, multiply,
xor-shift, multiply, xor-shift); ``combine`` folds one more 32-bit word into a state
and is a bijection in that word, so distinct cells of one sample never share a hash.
"""

from __future__ import annotations

import operator
from typing import TypeVar

import torch

IntLike = TypeVar("IntLike", int, torch.Tensor)

MASK32 = 0xFFFFFFFF
_MASK64 = 0xFFFFFFFFFFFFFFFF
_GOLDEN = 0x9E3779B9
_FMIX_C1 = 0x85EBCA6B
_FMIX_C2 = 0xC2B2AE35

# Domain tags keep the streams of different augmentations apart.
DOMAIN_PATCHES = 0x48415331  # "HAS1"
DOMAIN_CUTOUT = 0x43555431  # "CUT1"
DOMAIN_FRAMES = 0x46524D31  # "FRM1"

# Stream tags inside one domain.
STREAM_SIZE = 1
STREAM_CELL = 2
STREAM_ROW = 3
STREAM_COL = 4


def mul32(h: IntLike, m: int) -> IntLike:
    """``(h * m) mod 2**32`` for ``0 <= h < 2**32`` without exceeding ``2**49``.

    ``m`` is split into 16-bit halves so every product fits comfortably in ``int64``.
    """
    lo = m & 0xFFFF
    hi = m >> 16
    return (h * lo + (((h * hi) & 0xFFFF) << 16)) & MASK32


def fmix32(h: IntLike) -> IntLike:
    """32-bit avalanche finaliser (a bijection on ``[0, 2**32)``)."""
    h = h ^ (h >> 16)
    h = mul32(h, _FMIX_C1)
    h = h ^ (h >> 13)
    h = mul32(h, _FMIX_C2)
    return h ^ (h >> 16)


def combine(h: IntLike, v: IntLike) -> IntLike:
    """Fold the 32-bit word ``v`` into the 32-bit state ``h``.

    Tensors broadcast, so ``combine(keys[:, None], rows[None, :])`` hashes a whole grid.
    """
    return fmix32(h ^ ((v + _GOLDEN + (h << 6) + (h >> 2)) & MASK32))


def combine64(h: IntLike, v: IntLike) -> IntLike:
    """Fold a signed 64-bit integer (low word, then high word) into ``h``."""
    if isinstance(v, int):
        v = v & _MASK64
    return combine(combine(h, v & MASK32), (v >> 32) & MASK32)


def base_key(domain: int, seed: int, epoch: int) -> int:
    """Python-int key of ``(domain, seed, epoch)``; the per-sample keys start from it."""
    h = fmix32(domain & MASK32)
    h = combine64(h, int(seed))
    return combine64(h, int(epoch))


def sample_keys(base: int, ids: IntLike) -> IntLike:
    """Per-sample 32-bit keys: ``ids`` is an int64 tensor (any device) or a Python int."""
    return combine64(base, ids)


def threshold(p: float) -> int:
    """Integer threshold ``t`` such that ``P(h < t) == p`` for a uniform 32-bit ``h``.

    Comparing integers (not floats) keeps the coin flips exact on every device.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"probability must be in [0, 1], got {p}")
    return int(round(p * 2**32))


def draw_index(h: IntLike, n: int) -> IntLike:
    """Map a uniform 32-bit ``h`` to ``{0, ..., n - 1}`` (multiply-shift, no modulo bias
    beyond ``n / 2**32``)."""
    return (h * n) >> 32


def as_ids(sample_ids: torch.Tensor | list[int] | tuple[int, ...] | range | None,
           batch: int, device: torch.device) -> torch.Tensor:
    """Validate and convert sample ids to an int64 tensor of shape ``(batch,)`` on ``device``.

    ``None`` means ``arange(batch)``.
    """
    if sample_ids is None:
        return torch.arange(batch, dtype=torch.int64, device=device)
    if isinstance(sample_ids, torch.Tensor):
        if sample_ids.dtype.is_floating_point or sample_ids.dtype.is_complex or \
                sample_ids.dtype == torch.bool:
            raise TypeError(f"sample_ids must be an integer tensor, got dtype {sample_ids.dtype}")
        ids = sample_ids.to(device=device, dtype=torch.int64).reshape(-1)
    else:
        try:
            ids = torch.as_tensor([operator.index(i) for i in sample_ids], dtype=torch.int64, device=device)
        except (TypeError, ValueError) as err:
            raise TypeError(f"sample_ids must be a sequence of integers: {err}") from None
    if ids.numel() != batch:
        raise ValueError(f"got {ids.numel()} sample_ids for a batch of {batch}")
    return ids
