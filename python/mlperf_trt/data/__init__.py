"""The data layer (DESIGN.md §2, §3): raw-format readers, reference preprocessing, synthetic sets
in the official raw formats, and the prepared-sample cache (docs/data-cache.md)."""

from __future__ import annotations

from mlperf_trt.data.cache import (
    Manifest,
    PreparedSamples,
    data_root,
    open_cache,
    read_manifest,
    write_cache,
)
from mlperf_trt.data.imagenet import ImageEntry, ImageNet

__all__ = [
    "ImageEntry",
    "ImageNet",
    "Manifest",
    "PreparedSamples",
    "data_root",
    "open_cache",
    "read_manifest",
    "write_cache",
]
