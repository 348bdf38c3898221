"""Image datasets and annotation formats for weakly-supervised localization."""

from hideseek.localization.data.dataset import SyntheticWSOL, WSOLDataset, collate_wsol, load_rgb
from hideseek.localization.data.metadata import MetadataError, WSOLMetadata, load_metadata
from hideseek.localization.data.synthetic import SyntheticConfig, render, write_benchmark

__all__ = [
    "MetadataError",
    "SyntheticConfig",
    "SyntheticWSOL",
    "WSOLDataset",
    "WSOLMetadata",
    "collate_wsol",
    "load_metadata",
    "load_rgb",
    "render",
    "write_benchmark",
]
