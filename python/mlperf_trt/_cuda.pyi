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
