"""Type stubs of the CUDA kernels module (built where nvcc was found)."""

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

def build_info() -> dict[str, Any]: ...
def device_count() -> int: ...
def synchronize() -> None: ...
def argmax_rows(scores: npt.NDArray[np.float32]) -> npt.NDArray[np.int32]: ...
def quantize_int8(x: npt.NDArray[np.float32], scale: float) -> npt.NDArray[np.int8]: ...
def dequantize_int8(q: npt.NDArray[np.int8], scale: float) -> npt.NDArray[np.float32]: ...
def argmax_rows_ptr(
    scores: int, rows: int, cols: int, stride: int, out: int, stream: int = 0
) -> None: ...
def quantize_int8_ptr(x: int, n: int, scale: float, out: int, stream: int = 0) -> None: ...
def gather_rows(src: npt.NDArray[Any], indices: npt.NDArray[np.int64]) -> npt.NDArray[Any]: ...
def gather_rows_h2d(src: npt.NDArray[Any], indices: npt.NDArray[np.int64]) -> npt.NDArray[Any]: ...
def gather_rows_ptr(
    src: int,
    src_rows: int,
    src_stride: int,
    row_bytes: int,
    indices: int,
    n: int,
    dst: int,
    stream: int = 0,
) -> None: ...
def gather_rows_h2d_ptr(
    src: int,
    src_rows: int,
    src_stride: int,
    row_bytes: int,
    indices: npt.NDArray[np.int64],
    dst: int,
    stream: int = 0,
) -> None: ...
def embedding_bag_sum_tables(
    tables: Sequence[npt.NDArray[np.float32]],
    ids: Sequence[npt.NDArray[np.int32]],
    skip_padding: bool = False,
) -> npt.NDArray[np.float32]: ...
def embedding_bag_sum_ptr(
    bags: Sequence[tuple[int, int, int, int, int]],
    pairs: int,
    dim: int,
    out: int,
    out_stride: int,
    stream: int = 0,
) -> None: ...
def memcpy_async(dst: int, src: int, nbytes: int, stream: int = 0) -> None: ...

class DeviceBuffer:
    ptr: int
    nbytes: int
    def __init__(self, nbytes: int) -> None: ...
    def upload(self, array: npt.NDArray[Any], offset: int = 0) -> None: ...
    def download(self, out: npt.NDArray[Any], offset: int = 0) -> npt.NDArray[Any]: ...

class PinnedPool:
    buffer_bytes: int
    capacity: int
    available: int
    alignment: int
    stride: int
    def __init__(self, buffer_bytes: int, count: int) -> None: ...
    def acquire(self, timeout_s: float = 0.0) -> tuple[int, npt.NDArray[np.uint8]]: ...
    def release(self, id: int) -> None: ...

# RetinaNet post-processing (SPEC §2.2) and the 3D-UNet sliding window (SPEC §2.3).
Detections = tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.int64]]

def retinanet_workspace_bytes(
    anchors: int,
    classes: int,
    level_sizes: Sequence[int],
    topk_per_level: int = 1000,
    max_detections: int = 300,
) -> int: ...
def retinanet_decode_nms(
    cls_logits: npt.NDArray[np.float32],
    bbox_regression: npt.NDArray[np.float32],
    anchors: npt.NDArray[np.float32],
    level_sizes: Sequence[int],
    score_threshold: float = 0.05,
    topk_per_level: int = 1000,
    iou_threshold: float = 0.5,
    max_detections: int = 300,
    image_size: float = 800.0,
) -> Detections: ...
def retinanet_decode_nms_ptr(
    cls_logits: int,
    bbox_regression: int,
    anchors: int,
    num_anchors: int,
    classes: int,
    level_sizes: Sequence[int],
    workspace: int,
    workspace_bytes: int,
    score_threshold: float = 0.05,
    topk_per_level: int = 1000,
    iou_threshold: float = 0.5,
    max_detections: int = 300,
    image_size: float = 800.0,
    stream: int = 0,
) -> Detections: ...
def extract_windows_ptr(
    volume: int,
    depth: int,
    height: int,
    width: int,
    origins: npt.NDArray[np.int64],
    windows: int,
    roi: int = 128,
    stream: int = 0,
) -> None: ...
def accumulate_windows_ptr(
    logits: int,
    channels: int,
    origins: npt.NDArray[np.int64],
    patch: int,
    result: int,
    norm: int,
    depth: int,
    height: int,
    width: int,
    roi: int = 128,
    stream: int = 0,
) -> None: ...
def finalize_argmax_ptr(
    result: int,
    norm: int,
    channels: int,
    depth: int,
    height: int,
    width: int,
    out: int,
    stream: int = 0,
) -> None: ...
def extract_windows(
    volume: npt.NDArray[np.float32], origins: npt.NDArray[np.int64], roi: int = 128
) -> npt.NDArray[np.float32]: ...
def accumulate_windows(
    logits: npt.NDArray[np.float32],
    origins: npt.NDArray[np.int64],
    patch: npt.NDArray[np.float32],
    result: npt.NDArray[np.float32],
    norm: npt.NDArray[np.float32],
) -> None: ...
def finalize_argmax(
    result: npt.NDArray[np.float32], norm: npt.NDArray[np.float32]
) -> npt.NDArray[np.uint8]: ...
