"""3D-UNet on KiTS19 (SPEC §2.3): one case per sample, the timed sliding window in C++ around the
engine (128^3 windows at stride 64, cube-root gaussian weights, normalised accumulation,
argmax to uint8), and the mean DICE of kidney and tumour.

The harness's sample store holds one small tensor per sample, the case index; the case's volume
is read into memory when LoadGen loads the sample (QSL LoadSamplesToRam, untimed), and the
executor (`SlidingWindow`) runs the windows of the volume through the engine.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mlperf_trt import _C
from mlperf_trt.errors import HarnessError
from mlperf_trt.harness.pipelines import Batching, HandleManifest, Pipeline, Synthesized

CASE = "case"  # the stored tensor: int64 [1], the sample's case index
OUTPUT = "labels"  # the executor's output: uint8 [1, D*H*W]
ROI = 128  # SPEC §2.3
CALIBRATION_WINDOWS = 2  # windows per calibration case


class PreparedCases:
    """The prepared view the harness reads: sample i is its case index; loading a sample reads
    its volume into memory (shared by every worker) for the executor."""

    def __init__(self, volumes: Any) -> None:
        self.volumes = volumes  # data.kits19.PreparedVolumes
        self.count = volumes.count
        self.path = volumes.path
        m = volumes.manifest
        self.manifest = HandleManifest(((CASE, "int64", (1,)),), m.source_hash, m.version)
        self._loaded: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()

    def volume(self, index: int) -> np.ndarray:
        """float32 [1, D, H, W] of sample `index`, from memory once loaded."""
        with self._lock:
            cached = self._loaded.get(index)
        if cached is not None:
            return cached
        array = np.ascontiguousarray(self.volumes.image(index), dtype=np.float32)
        with self._lock:
            self._loaded[index] = array
        return array

    def sample(self, index: int) -> list[np.ndarray]:
        self.volume(index)  # LoadSamplesToRam: the volume comes into memory now, untimed
        return [np.array([index], dtype=np.int64)]

    def batch(self, indices: list[int]) -> dict[str, np.ndarray]:
        return {CASE: np.asarray(indices, dtype=np.int64).reshape(-1, 1)}


class KiTS19Cases:
    """The Dataset seam over data.kits19.KiTS19 for the harness."""

    def __init__(self) -> None:
        from mlperf_trt.data.kits19 import KiTS19

        self.kits = KiTS19()
        self.name = self.kits.name

    def prepare(self, raw_dir: Path, show_progress: bool = True) -> PreparedCases:
        return PreparedCases(self.kits.prepare(Path(raw_dir), show_progress=show_progress))

    def calibration_indices(
        self, count: int, size: int = 20, raw_dir: Path | None = None
    ) -> list[int]:
        return list(self.kits.calibration_indices(count, size=min(size, count), raw_dir=raw_dir))


class SlidingWindow:
    """The 3d-unet executor (SPEC §2.3): a case's windows through the engine, `window_batch` at a
    time, accumulated with the importance weights and reduced to uint8 labels, all in C++."""

    def __init__(self, engine: Any, cases: PreparedCases | None, window_batch: int) -> None:
        self.engine = engine
        self.cases = cases
        self.window_batch = window_batch
        self.patch = _C.kernels.gaussian_importance(ROI, 0.125, threads=1)
        self.windows = np.empty((window_batch, 1, ROI, ROI, ROI), dtype=np.float32)

    def segment(self, volume: np.ndarray) -> np.ndarray:
        """uint8 [D, H, W] labels of one float32 [1, D, H, W] volume."""
        _, d, h, w = volume.shape
        origins = _C.kernels.window_origins(d, h, w, roi=ROI, stride=ROI // 2)
        result = np.zeros((3, d, h, w), dtype=np.float32)
        norm = np.zeros((d, h, w), dtype=np.float32)
        for start in range(0, len(origins), self.window_batch):
            chunk = np.ascontiguousarray(origins[start : start + self.window_batch])
            k = len(chunk)
            windows = _C.kernels.extract_windows(volume, chunk, out=self.windows[:k], threads=1)
            logits = np.ascontiguousarray(self.engine.run({"input": windows})["output"])
            _C.kernels.accumulate_windows(logits, chunk, self.patch, result, norm, threads=1)
        labels: np.ndarray = _C.kernels.finalize_argmax(result, norm, threads=1)
        return labels

    def run(
        self, inputs: Mapping[str, np.ndarray], batch_size: int | None = None
    ) -> dict[str, np.ndarray]:
        if self.cases is None:
            raise HarnessError("this SlidingWindow has no cases: use segment(volume)")
        loaded = self.cases
        labels = [self.segment(loaded.volume(int(i))).reshape(-1) for i in inputs[CASE].reshape(-1)]
        return {OUTPUT: np.stack(labels)}  # batches are one case (_batching)


def _batching(data: Any, config: Any) -> Batching:
    return Batching(max_batch=1)  # one volume per batch; its windows are the engine's batch


def _wrap(executor: Any, data: Any, config: Any, model: Any) -> SlidingWindow:
    return SlidingWindow(executor, data.prepared, int(config["windows_per_batch"]))


def _calibration_feeds(
    data: Any, indices: list[int], model: Any
) -> Iterator[Mapping[str, np.ndarray]]:
    """Windows of the calibration cases (the first CALIBRATION_WINDOWS of each), one at a time."""
    cases: PreparedCases = data.prepared
    for index in indices:
        volume = cases.volume(index)
        _, d, h, w = volume.shape
        origins = _C.kernels.window_origins(d, h, w, roi=ROI, stride=ROI // 2)
        for origin in origins[:CALIBRATION_WINDOWS]:
            chunk = np.ascontiguousarray(origin.reshape(1, 3))
            yield {"input": _C.kernels.extract_windows(volume, chunk)}


def synthesize(model: Any, raw: Path, count: int, show_progress: bool) -> Synthesized:
    import onnxruntime as ort

    from mlperf_trt.data.kits19 import KiTS19

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])

    class _Engine:
        def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
            (out,) = session.run(["output"], dict(feeds))
            return {"output": out}

    window = SlidingWindow(_Engine(), None, window_batch=1)
    made = KiTS19().synthesize(
        raw, count, seed=0, model_fn=window.segment, show_progress=show_progress
    )
    return Synthesized(
        float(made["fp32_dice"]),
        {
            "labels": str(made.get("labels", "the FP32 model's own segmentation")),
            "kidney": float(made.get("kidney", float("nan"))),
            "tumor": float(made.get("tumor", float("nan"))),
        },
    )


def _truth(raw: Path) -> Any:
    from mlperf_trt.data.kits19 import KiTS19

    return KiTS19().ground_truth(raw)


def _pipeline() -> Pipeline:
    from mlperf_trt.accuracy import kits19

    return Pipeline(
        benchmark="3d-unet",
        dataset=KiTS19Cases,
        output_names=(OUTPUT,),
        # SPEC §1.2, §2.3: the uint8 label volume, D*H*W bytes in C order.
        postprocessor=lambda: _C.harness.BytesPostprocessor(0),
        evaluate=kits19.evaluate,
        truth=_truth,
        synthesize=synthesize,
        metric="DICE",
        unit="cases",
        batching=_batching,
        wrap_executor=_wrap,
        calibration_feeds=_calibration_feeds,
        engine_batch_field="windows_per_batch",
    )


PIPELINE = _pipeline()
