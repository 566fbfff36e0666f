"""Type stubs of the compiled core (csrc/bindings)."""

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

def build_info() -> dict[str, Any]: ...

class kernels:  # submodule
    @staticmethod
    def argmax_rows(scores: npt.NDArray[np.float32]) -> npt.NDArray[np.int32]: ...
    @staticmethod
    def quantize_int8(x: npt.NDArray[np.float32], scale: float) -> npt.NDArray[np.int8]: ...
    @staticmethod
    def dequantize_int8(q: npt.NDArray[np.int8], scale: float) -> npt.NDArray[np.float32]: ...
    @staticmethod
    def crop_normalize(
        image: npt.NDArray[np.uint8],
        top: int,
        left: int,
        out_h: int,
        out_w: int,
        mean: tuple[float, float, float],
        divisor: tuple[float, float, float] = (1.0, 1.0, 1.0),
        bgr_to_rgb: bool = False,
    ) -> npt.NDArray[np.float32]: ...
    @staticmethod
    def crop_normalize_int8(
        image: npt.NDArray[np.uint8],
        top: int,
        left: int,
        out_h: int,
        out_w: int,
        mean: tuple[float, float, float],
        divisor: tuple[float, float, float],
        bgr_to_rgb: bool,
        scale: float,
    ) -> npt.NDArray[np.int8]: ...
    @staticmethod
    def gather_rows(
        src: npt.NDArray[Any], indices: npt.NDArray[np.int64], out: npt.NDArray[Any] | None = None
    ) -> npt.NDArray[Any]: ...
    @staticmethod
    def embedding_bag_sum(
        table: npt.NDArray[np.float32],
        ids: npt.NDArray[np.int32],
        out: npt.NDArray[np.float32] | None = None,
        skip_padding: bool = False,
        table_index: int = 0,
    ) -> npt.NDArray[np.float32]: ...
    @staticmethod
    def embedding_bag_sum_tables(
        tables: Sequence[npt.NDArray[np.float32]],
        ids: Sequence[npt.NDArray[np.int32]],
        out: npt.NDArray[np.float32] | None = None,
        skip_padding: bool = False,
        threads: int = 0,
    ) -> npt.NDArray[np.float32]: ...
    @staticmethod
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
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.int64]]: ...
    @staticmethod
    def gaussian_importance(
        roi: int = 128, sigma_scale: float = 0.125, threads: int = 0
    ) -> npt.NDArray[np.float32]: ...
    @staticmethod
    def window_origins(
        depth: int, height: int, width: int, roi: int = 128, stride: int = 64
    ) -> npt.NDArray[np.int64]: ...
    @staticmethod
    def extract_windows(
        volume: npt.NDArray[np.float32],
        origins: npt.NDArray[np.int64],
        out: npt.NDArray[np.float32] | None = None,
        roi: int = 128,
        threads: int = 0,
    ) -> npt.NDArray[np.float32]: ...
    @staticmethod
    def accumulate_windows(
        logits: npt.NDArray[np.float32],
        origins: npt.NDArray[np.int64],
        patch: npt.NDArray[np.float32],
        result: npt.NDArray[np.float32],
        norm: npt.NDArray[np.float32],
        threads: int = 0,
    ) -> None: ...
    @staticmethod
    def finalize_argmax(
        result: npt.NDArray[np.float32],
        norm: npt.NDArray[np.float32],
        out: npt.NDArray[np.uint8] | None = None,
        threads: int = 0,
    ) -> npt.NDArray[np.uint8]: ...

    class HostPool:
        buffer_bytes: int
        capacity: int
        available: int
        alignment: int
        stride: int
        def __init__(self, buffer_bytes: int, count: int) -> None: ...
        def acquire(self, timeout_s: float = 0.0) -> tuple[int, npt.NDArray[np.uint8]]: ...
        def release(self, id: int) -> None: ...

class harness:  # submodule
    class TensorSpec:
        name: str
        dtype: str
        sample_shape: list[int]
        sample_bytes: int
        def __init__(self, name: str, dtype: str, sample_shape: list[int]) -> None: ...

    class SampleStore:
        tensors: list[harness.TensorSpec]
        total_samples: int
        loaded_count: int
        def __init__(self, tensors: list[harness.TensorSpec], total_samples: int) -> None: ...
        def is_loaded(self, index: int) -> bool: ...
        def reserve(self, count: int) -> None: ...
        def load(self, index: int, arrays: list[npt.NDArray[Any]]) -> None: ...
        def unload(self, indices: list[int]) -> None: ...
        def unload_all(self) -> None: ...
        def gather(self, indices: list[int], tensor: int) -> npt.NDArray[Any]: ...

    class BatchPolicy:
        max_batch: int
        timeout_us: int
        max_cost: int
        bucket_bounds: list[int]
        def __init__(
            self,
            max_batch: int,
            timeout_us: int = 0,
            max_cost: int = 0,
            bucket_bounds: list[int] = ...,
        ) -> None: ...

    class Scheduler:
        policy: harness.BatchPolicy
        pushed: int
        handed_out: int
        queued: int
        buckets: int
        def __init__(
            self, policy: harness.BatchPolicy, costs: npt.NDArray[np.uint32] | None = None
        ) -> None: ...
        def issue(self, ids: list[int], indices: list[int]) -> None: ...
        def flush(self) -> None: ...
        def stop(self) -> None: ...
        def next_batch(self) -> tuple[list[int], list[int], int, int] | None: ...

    class Postprocessor:
        def process(
            self,
            indices: list[int],
            outputs: list[npt.NDArray[Any]],
            costs: list[int] | None = None,
        ) -> list[bytes]: ...

    class InterleavePostprocessor(Postprocessor):
        def __init__(self, outputs: list[int], positions: int, fill: float) -> None: ...

    class RowsPostprocessor(Postprocessor):
        def __init__(self, output: int) -> None: ...

    class BytesPostprocessor(Postprocessor):
        def __init__(self, output: int) -> None: ...

    class ZerosPostprocessor(Postprocessor):
        def __init__(
            self, payload_bytes: int, tokens: int = 0, first_token: bool = False
        ) -> None: ...

    class ClassIndexPostprocessor(Postprocessor):
        def __init__(self, output: int, offset: int = 0) -> None: ...

    class RetinaNetPostprocessor(Postprocessor):
        anchors: int
        level_sizes: list[int]
        def __init__(
            self,
            *,
            anchors: npt.NDArray[np.float32],
            level_sizes: Sequence[int],
            cls_output: int = 0,
            box_output: int = 1,
            image_size: float = 800.0,
        ) -> None: ...

    class DetectionsPostprocessor(Postprocessor):
        def __init__(
            self, *, boxes: int = 0, labels: int = 1, scores: int = 2, image_size: float = 800.0
        ) -> None: ...

    class ResponseSink: ...

    class LoadGenSink(ResponseSink):
        def __init__(self, loadgen: Any) -> None: ...

    class Executor: ...

    class PyExecutor(Executor):
        def __init__(
            self, executor: Any, input_names: list[str], output_names: list[str]
        ) -> None: ...

    class WorkerPool:
        failed: bool
        completed_samples: int
        batches: int
        batches_per_group: list[int]
        def __init__(
            self,
            scheduler: harness.Scheduler,
            store: harness.SampleStore | None,
            executors: Sequence[harness.Executor],
            groups: list[int],
            postprocessor: harness.Postprocessor,
            sink: harness.ResponseSink,
        ) -> None: ...
        def start(self) -> None: ...
        def stop(self) -> None: ...
        def rethrow(self) -> None: ...
