"""Hide-and-Seek on convolutional feature maps (the paper's conv-layer variant).

:class:`FeatureHide` hides grid cells of ``(B, C, H, W)`` feature maps in training mode
(e.g. patch 5 or 11 on conv1 maps, ``p_hide=0.5``, ``fill=0``) and is the identity in
eval mode. Gradients flow through the visible cells and are zero in the hidden ones.

:func:`insert_feature_hide` attaches one after a named submodule of a model (a timm
backbone stage such as ``layer1`` of a ResNet or ``stages.0`` of a ConvNeXt). It uses a
forward hook on that submodule and registers the :class:`FeatureHide` as a child of the
model, so ``model.train()``/``model.eval()`` reach it, it shows in ``print(model)``, and
the model's ``state_dict`` keys do not change (pretrained weights still load).

Sample ids inside a model: ``module.set_sample_ids(ids)``, or for all augmentations of
the model :func:`hideseek.augment.using_sample_ids`; without ids a per-module counter is
used (see :mod:`hideseek.augment.base`). Several hiding layers in one model should get
different seeds, otherwise layers with the same grid hide the same cells.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ._masking import FillLike
from .base import Augmentation, IdsLike
from .patches import SizesLike, hide_patches
from .transforms import _check_patch_params

__all__ = ["FeatureHide", "insert_feature_hide"]


class FeatureHide(Augmentation):
    """Hide random grid cells of feature maps in training mode.

    Parameters
    ----------
    grid_sizes : int or sequence of int
        Cell size in feature-map pixels (default 5; the paper also used 11). Each sample
        draws one; 0 = no hiding.
    p_hide : float
        Probability that a cell is hidden.
    fill : float or sequence
        Value of hidden activations (default 0).
    seed : int
        Hash seed.
    num_cells : int or sequence of int, optional
        Give the grid as a cell count instead (see :func:`~hideseek.augment.hide_patches`).
    """

    kind = "feature"

    def __init__(self, grid_sizes: SizesLike = 5, p_hide: float = 0.5, fill: FillLike = 0.0,
                 seed: int = 0, num_cells: SizesLike | None = None) -> None:
        super().__init__(seed)
        _check_patch_params(grid_sizes, p_hide, fill, num_cells)
        self.grid_sizes = grid_sizes
        self.p_hide = float(p_hide)
        self.fill = fill
        self.num_cells = num_cells

    def hide(self, x: torch.Tensor, sample_ids: IdsLike) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.ndim != 4:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"FeatureHide expects (B, C, H, W) feature maps, got {shape}")
        return hide_patches(x, self.grid_sizes, self.p_hide, self.fill, self.seed,
                            self.epoch, sample_ids, num_cells=self.num_cells)

    def _hook(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> Any:
        return self(output)

    def extra_repr(self) -> str:
        grid = f"num_cells={self.num_cells}" if self.num_cells is not None else \
            f"grid_sizes={self.grid_sizes}"
        return f"{grid}, p_hide={self.p_hide}, fill={self.fill}, seed={self.seed}"


def _valid_names(model: nn.Module, depth: int = 2) -> str:
    names = [n for n, _ in model.named_modules() if n]
    shallow = [n for n in names if n.count(".") < depth]
    text = ", ".join(shallow)
    if len(shallow) < len(names):
        text += f" (and {len(names) - len(shallow)} deeper names: see model.named_modules())"
    return text


def insert_feature_hide(model: nn.Module, after: str, **params: Any) -> nn.Module:
    """Hide feature-map cells after the submodule ``after`` of ``model``.

    Parameters
    ----------
    model : nn.Module
        E.g. ``timm.create_model('resnet18')``.
    after : str
        Dotted submodule name as in ``model.named_modules()``: ``'layer1'``,
        ``'stages.0'``, ``'conv1'`` ...
    **params
        Passed to :class:`FeatureHide`.

    Returns
    -------
    nn.Module
        ``model`` itself, now with a child ``feature_hide_<after>`` (dots become
        underscores) that runs on the submodule's output.

    Raises
    ------
    ValueError
        If ``after`` names no submodule (the message lists valid names).
    """
    modules = dict(model.named_modules())
    if not after or after not in modules:
        raise ValueError(f"model has no submodule named {after!r}; valid names: "
                         f"{_valid_names(model)}")
    hide = FeatureHide(**params)
    base_name = "feature_hide_" + after.replace(".", "_")
    name, k = base_name, 1
    while hasattr(model, name):
        k += 1
        name = f"{base_name}_{k}"
    model.add_module(name, hide)
    hide.train(model.training)
    modules[after].register_forward_hook(hide._hook)
    return model
