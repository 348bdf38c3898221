"""Image datasets and annotation formats for weakly-supervised localization."""

from hideseek.localization.data.metadata import MetadataError, WSOLMetadata, load_metadata

__all__ = ["MetadataError", "WSOLMetadata", "load_metadata"]
