"""Image datasets and annotation formats for weakly-supervised localization."""

from hideseek.localization.data.cub import cub_metadata, read_cub_classes
from hideseek.localization.data.dataset import SyntheticWSOL, WSOLDataset, collate_wsol, load_rgb
from hideseek.localization.data.ilsvrc import (
    ilsvrc_metadata,
    ilsvrc_train_metadata,
    ilsvrc_val_metadata,
    write_metadata,
)
from hideseek.localization.data.metadata import MetadataError, WSOLMetadata, load_metadata
from hideseek.localization.data.synthetic import SyntheticConfig, render, write_benchmark

__all__ = [
    "MetadataError",
    "SyntheticConfig",
    "SyntheticWSOL",
    "WSOLDataset",
    "WSOLMetadata",
    "collate_wsol",
    "cub_metadata",
    "ilsvrc_metadata",
    "ilsvrc_train_metadata",
    "ilsvrc_val_metadata",
    "load_metadata",
    "load_rgb",
    "read_cub_classes",
    "render",
    "write_benchmark",
    "write_metadata",
]
