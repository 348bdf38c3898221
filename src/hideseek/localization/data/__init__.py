"""Image datasets and annotation formats for weakly-supervised localization.

Names are imported on first use: reading metadata (``data.metadata``) does not import
torch, which the datasets need.
"""

import importlib

_WHERE = {
    "cub_metadata": "cub", "read_cub_classes": "cub",
    "SyntheticWSOL": "dataset", "WSOLDataset": "dataset", "collate_wsol": "dataset", "load_rgb": "dataset",
    "ilsvrc_metadata": "ilsvrc", "ilsvrc_train_metadata": "ilsvrc", "ilsvrc_val_metadata": "ilsvrc",
    "write_metadata": "ilsvrc",
    "MetadataError": "metadata", "WSOLMetadata": "metadata", "load_metadata": "metadata",
    "SyntheticConfig": "synthetic", "render": "synthetic", "write_benchmark": "synthetic",
}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"hideseek.localization.data.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'hideseek.localization.data' has no attribute {name!r}")


__all__ = sorted(_WHERE)
