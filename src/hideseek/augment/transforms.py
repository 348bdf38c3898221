"""Module forms of the augmentations: batch modules and a per-sample v2 transform.

Batch modules (``nn.Module``, hide in training mode, identity in eval mode, see
:mod:`hideseek.augment.base`): :class:`HideAndSeekBatch`, :class:`CutoutBatch`,
:class:`RandomErasingBatch`, :class:`HideFrames` and :class:`NoAugment`.

:class:`HideAndSeek` is the per-sample form for ``torchvision.transforms.v2`` pipelines.
"""

from __future__ import annotations

from typing import Any

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from ._hash import threshold
from ._masking import FillLike, fill_vector
from .base import Augmentation, IdsLike
from .cutout import cutout
from .frames import FrameFill, hide_frames
from .patches import DEFAULT_GRID_SIZES, SizesLike, cell_choices, hide_patches

__all__ = ["HideAndSeek", "HideAndSeekBatch", "CutoutBatch", "RandomErasingBatch",
           "HideFrames", "NoAugment"]


def _check_patch_params(grid_sizes: SizesLike, p_hide: float, fill: FillLike,
                        num_cells: SizesLike | None) -> None:
    """Fail at construction time rather than at the first batch."""
    cell_choices(1, 1, grid_sizes, num_cells)
    threshold(float(p_hide))
    if isinstance(fill, torch.Tensor):
        count = fill.numel()
    elif isinstance(fill, (int, float)):
        count = 1
    else:
        try:
            count = len(fill)
        except TypeError:
            raise TypeError(f"fill must be a number or a sequence of numbers, got {fill!r}") \
                from None
    fill_vector(fill, max(count, 1), torch.float64)


def _is_plain_tensor(inpt: Any) -> bool:
    return isinstance(inpt, torch.Tensor) and not isinstance(inpt, tv_tensors.TVTensor)


class NoAugment(Augmentation):
    """Identity (the ``'none'`` row of a comparison); returns its input object."""

    kind = "image"

    def hide(self, x: torch.Tensor, sample_ids: IdsLike) -> torch.Tensor:
        return x


class HideAndSeekBatch(Augmentation):
    """Hide-and-Seek on ``(B, C, H, W)`` batches (see :func:`hide_patches`).

    Parameters
    ----------
    grid_sizes, p_hide, fill, num_cells
        As in :func:`~hideseek.augment.hide_patches`.
    seed : int
        Hash seed.
    inplace : bool
        Hide in the input batch itself (faster; the caller's tensor changes).

    Notes
    -----
    ``forward(x, sample_ids=None)`` hides in training mode and returns ``x`` itself in
    eval mode. Set the epoch with ``set_epoch(e)``; ids default as in
    :mod:`hideseek.augment.base`.
    """

    kind = "image"

    def __init__(self, grid_sizes: SizesLike = DEFAULT_GRID_SIZES, p_hide: float = 0.5,
                 fill: FillLike = 0.0, seed: int = 0, inplace: bool = False,
                 num_cells: SizesLike | None = None) -> None:
        super().__init__(seed)
        _check_patch_params(grid_sizes, p_hide, fill, num_cells)
        self.grid_sizes = grid_sizes
        self.p_hide = float(p_hide)
        self.fill = fill
        self.inplace = bool(inplace)
        self.num_cells = num_cells

    def hide(self, x: torch.Tensor, sample_ids: IdsLike) -> torch.Tensor:
        return hide_patches(x, self.grid_sizes, self.p_hide, self.fill, self.seed,
                            self.epoch, sample_ids, self.inplace, self.num_cells)

    def extra_repr(self) -> str:
        grid = f"num_cells={self.num_cells}" if self.num_cells is not None else \
            f"grid_sizes={self.grid_sizes}"
        return f"{grid}, p_hide={self.p_hide}, fill={self.fill}, seed={self.seed}"


class CutoutBatch(Augmentation):
    """Cutout on ``(B, C, H, W)`` batches: one clipped ``size x size`` square per image
    (see :func:`~hideseek.augment.cutout`)."""

    kind = "image"

    def __init__(self, size: int = 16, fill: FillLike = 0.0, seed: int = 0,
                 inplace: bool = False) -> None:
        super().__init__(seed)
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError(f"size must be a non-negative integer, got {size!r}")
        self.size = size
        self.fill = fill
        self.inplace = bool(inplace)

    def hide(self, x: torch.Tensor, sample_ids: IdsLike) -> torch.Tensor:
        return cutout(x, self.size, self.fill, self.seed, self.epoch, sample_ids,
                      self.inplace)

    def extra_repr(self) -> str:
        return f"size={self.size}, fill={self.fill}, seed={self.seed}"


class RandomErasingBatch(Augmentation):
    """timm's ``RandomErasing`` behind the common batch interface.

    The erasing itself is timm's code, unchanged. It draws from Python's global
    ``random`` module (and, for ``mode='pixel'``/``'rand'``, torch's global generator),
    one sample after another, so it is **not** a function of the sample ids: its boxes
    depend on the global random state and on the order of calls, and ``seed``,
    ``set_epoch`` and ``sample_ids`` have no effect on it. Seed ``random`` yourself for
    repeatable runs.

    Parameters
    ----------
    probability, min_area, max_area, min_aspect, max_aspect, mode, min_count, max_count
        Passed to ``timm.data.random_erasing.RandomErasing``. ``mode='const'`` fills 0
        (the mean on normalised input).
    inplace : bool
        timm erases in place; by default the batch is cloned first so the caller's tensor
        is left alone.
    """

    kind = "image"

    def __init__(self, probability: float = 0.5, min_area: float = 0.02,
                 max_area: float = 1 / 3, min_aspect: float = 0.3,
                 max_aspect: float | None = None, mode: str = "const",
                 min_count: int = 1, max_count: int | None = None,
                 inplace: bool = False, seed: int = 0) -> None:
        super().__init__(seed)
        from timm.data.random_erasing import RandomErasing

        if mode not in ("const", "rand", "pixel"):
            raise ValueError(f"mode must be 'const', 'rand' or 'pixel', got {mode!r}")
        threshold(float(probability))
        self.eraser = RandomErasing(probability=probability, min_area=min_area,
                                    max_area=max_area, min_aspect=min_aspect,
                                    max_aspect=max_aspect, mode=mode, min_count=min_count,
                                    max_count=max_count, device="cpu")
        self.inplace = bool(inplace)

    def hide(self, x: torch.Tensor, sample_ids: IdsLike) -> torch.Tensor:
        if x.ndim not in (3, 4):
            raise ValueError(f"expected (B, C, H, W) or (C, H, W), got {tuple(x.shape)}")
        out = x if self.inplace else x.clone()
        self.eraser.device = out.device
        return self.eraser(out)


class HideFrames(Augmentation):
    """Temporal Hide-and-Seek on ``(B, T, D)`` features or ``(B, T, C, H, W)`` clips
    (see :func:`~hideseek.augment.hide_frames`)."""

    kind = "video"

    def __init__(self, segment_len: int = 100, p_hide: float = 0.5, fill: FrameFill = None,
                 seed: int = 0, inplace: bool = False) -> None:
        super().__init__(seed)
        if isinstance(segment_len, bool) or not isinstance(segment_len, int) or \
                segment_len < 1:
            raise ValueError(f"segment_len must be a positive integer, got {segment_len!r}")
        threshold(float(p_hide))
        self.segment_len = segment_len
        self.p_hide = float(p_hide)
        self.fill = fill
        self.inplace = bool(inplace)

    def hide(self, x: torch.Tensor, sample_ids: IdsLike) -> torch.Tensor:
        return hide_frames(x, self.segment_len, self.p_hide, self.fill, self.seed,
                           self.epoch, sample_ids, self.inplace)

    def extra_repr(self) -> str:
        return f"segment_len={self.segment_len}, p_hide={self.p_hide}, seed={self.seed}"


class HideAndSeek(v2.Transform):
    """Hide-and-Seek for one ``(C, H, W)`` image in a ``torchvision.transforms.v2``
    pipeline (place it after ``Normalize`` so that ``fill=0`` is the mean pixel).

    Plain tensors and ``tv_tensors.Image`` are hidden; boxes, masks, labels and other
    entries of the sample pass through unchanged. PIL images are rejected (convert them
    with ``v2.ToImage()`` first).

    Determinism per sample: the mask depends on ``(seed, epoch, sample id)``. The id is
    taken, in order, from

    1. the sample itself when it is a dict with the key ``id_key`` (default
       ``"sample_id"``), e.g. ``t({"image": img, "sample_id": 17})``;
    2. the attribute ``sample_id`` when it is not ``None`` (a dataset can set it before
       calling the pipeline);
    3. a call counter (``0, 1, 2, ...`` since the last ``set_epoch``). Each DataLoader
       worker holds its own copy of the transform and so its own counter: the masks then
       depend on the worker count. Use 1. or 2. for reproducible masks.

    Parameters
    ----------
    grid_sizes, p_hide, fill, num_cells
        As in :func:`~hideseek.augment.hide_patches`.
    seed : int
        Hash seed.
    id_key : str
        Dict key holding the sample id.
    """

    def __init__(self, grid_sizes: SizesLike = DEFAULT_GRID_SIZES, p_hide: float = 0.5,
                 fill: FillLike = 0.0, seed: int = 0, num_cells: SizesLike | None = None,
                 id_key: str = "sample_id") -> None:
        super().__init__()
        _check_patch_params(grid_sizes, p_hide, fill, num_cells)
        self.grid_sizes = grid_sizes
        self.p_hide = float(p_hide)
        self.fill = fill
        self.seed = int(seed)
        self.num_cells = num_cells
        self.id_key = id_key
        self.epoch = 0
        self.sample_id: int | None = None
        self._counter = 0
        self._dict_id: int | None = None

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch and restart the fallback call counter."""
        self.epoch = int(epoch)
        self._counter = 0

    def check_inputs(self, flat_inputs: list[Any]) -> None:
        import PIL.Image

        if any(isinstance(i, PIL.Image.Image) for i in flat_inputs):
            raise TypeError("HideAndSeek needs tensor images; add v2.ToImage() (and "
                            "v2.ToDtype/Normalize) before it")

    def forward(self, *inputs: Any) -> Any:
        if not self.training:
            return inputs if len(inputs) > 1 else inputs[0]
        sample = inputs[0] if len(inputs) == 1 else None
        if isinstance(sample, dict) and self.id_key in sample:
            # Take the id out so that v2 never mistakes it for an image tensor.
            rest = {k: v for k, v in sample.items() if k != self.id_key}
            raw_id = sample[self.id_key]
            self._dict_id = int(raw_id.item() if isinstance(raw_id, torch.Tensor) else raw_id)
            try:
                out = super().forward(rest)
            finally:
                self._dict_id = None
            out[self.id_key] = raw_id
            return {k: out[k] for k in sample}  # keep the caller's key order
        return super().forward(*inputs)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        if self._dict_id is not None:
            sample_id = self._dict_id
        elif self.sample_id is not None:
            sample_id = int(self.sample_id)
        else:
            sample_id = self._counter
            self._counter += 1
        return {"sample_id": sample_id}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not (isinstance(inpt, tv_tensors.Image) or _is_plain_tensor(inpt)):
            return inpt
        if inpt.ndim != 3:
            raise ValueError("HideAndSeek hides one (C, H, W) image per call, got shape "
                             f"{tuple(inpt.shape)}; use HideAndSeekBatch for batches")
        out = hide_patches(inpt.as_subclass(torch.Tensor), self.grid_sizes, self.p_hide,
                           self.fill, self.seed, self.epoch, [params["sample_id"]],
                           num_cells=self.num_cells)
        return tv_tensors.wrap(out, like=inpt) if isinstance(inpt, tv_tensors.Image) else out
