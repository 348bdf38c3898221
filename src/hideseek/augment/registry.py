"""Name registry of augmentations: :func:`create`, :func:`available`, :func:`register`.

Every entry builds an ``nn.Module`` with a ``kind`` attribute (``'image'``, ``'feature'``
or ``'video'``). Image augmentations share the call ``aug(images, sample_ids=None)``,
``aug.set_epoch(e)``, and are the identity in eval mode.

Built-in names:

``none``            identity
``has``             Hide-and-Seek with the parameters of :func:`hide_patches`
``has-16`` ...      ``has-16``, ``has-32``, ``has-44``, ``has-56``: one fixed patch size
``has-mixed``       patch size drawn from (0, 16, 32, 44, 56) (the paper's default)
``cutout``          one clipped square per image (``size``, default 16)
``random-erasing``  timm's ``RandomErasing`` (not a function of the sample ids)
``feature-has``     :class:`FeatureHide` for feature maps inside a model
``frame-has``       :class:`HideFrames` for clips / snippet features
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

from .feature import FeatureHide
from .transforms import CutoutBatch, HideAndSeekBatch, HideFrames, NoAugment, RandomErasingBatch

__all__ = ["create", "available", "register"]

Factory = Callable[..., nn.Module]
F = TypeVar("F", bound=Factory)

_REGISTRY: dict[str, Factory] = {}


def register(name: str) -> Callable[[F], F]:
    """Decorator adding a factory (a class or a function returning an ``nn.Module``) under
    ``name``.

    Example
    -------
    >>> @register("my-aug")  # doctest: +SKIP
    ... class MyAug(Augmentation):
    ...     def hide(self, x, sample_ids): ...
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"augmentation name must be a non-empty string, got {name!r}")

    def decorator(factory: F) -> F:
        if name in _REGISTRY:
            raise ValueError(f"augmentation {name!r} is already registered")
        _REGISTRY[name] = factory
        return factory

    return decorator


def available() -> list[str]:
    """Sorted names accepted by :func:`create`."""
    return sorted(_REGISTRY)


def _parameters(factory: Factory) -> list[str]:
    target = factory.__init__ if inspect.isclass(factory) else factory  # type: ignore[misc]
    params = list(inspect.signature(target).parameters.values())
    if inspect.isclass(factory):
        params = params[1:]  # self
    return [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def _accepts_any(factory: Factory) -> bool:
    target = factory.__init__ if inspect.isclass(factory) else factory  # type: ignore[misc]
    return any(p.kind == p.VAR_KEYWORD for p in inspect.signature(target).parameters.values())


def create(name: str, **params: Any) -> nn.Module:
    """Build the augmentation registered as ``name`` with ``params``.

    Raises
    ------
    ValueError
        Unknown name (the message lists the valid ones), unknown parameter (the message
        lists the accepted ones) or an invalid parameter value.
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown augmentation {name!r}; available: {', '.join(available())}")
    factory = _REGISTRY[name]
    if not _accepts_any(factory):
        accepted = _parameters(factory)
        unknown = sorted(set(params) - set(accepted))
        if unknown:
            raise ValueError(f"augmentation {name!r} got unknown parameter(s) "
                             f"{', '.join(unknown)}; accepted: {', '.join(accepted)}")
    try:
        return factory(**params)
    except (TypeError, ValueError) as err:
        raise ValueError(f"bad parameters for augmentation {name!r}: {err}") from err


def _preset(grid_sizes: Any) -> Factory:
    """A Hide-and-Seek factory with fixed patch sizes (other parameters still free)."""

    def factory(p_hide: float = 0.5, fill: Any = 0.0, seed: int = 0,
                inplace: bool = False) -> nn.Module:
        return HideAndSeekBatch(grid_sizes=grid_sizes, p_hide=p_hide, fill=fill, seed=seed,
                                inplace=inplace)

    functools.update_wrapper(factory, HideAndSeekBatch, assigned=("__doc__",), updated=())
    return factory


register("none")(NoAugment)
register("has")(HideAndSeekBatch)
for _size in (16, 32, 44, 56):
    register(f"has-{_size}")(_preset((_size,)))
register("has-mixed")(_preset((0, 16, 32, 44, 56)))
register("cutout")(CutoutBatch)
register("random-erasing")(RandomErasingBatch)
register("feature-has")(FeatureHide)
register("frame-has")(HideFrames)
