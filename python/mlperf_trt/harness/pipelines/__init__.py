"""Per-benchmark wiring: the data set, model, batching, post-processor and metric of a benchmark.

Each layer owns its part (data/, models/, accuracy/, the C++ post-processors); this package is
the one place that names them together, one module per benchmark, so a new benchmark is one
module here plus its layer modules (DESIGN §2).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlperf_trt import _C
from mlperf_trt.accuracy.base import Report
from mlperf_trt.benchmarks import DEFAULT_ROUND, AccuracyMetric, Workload
from mlperf_trt.errors import AccuracyError, BackendError


@dataclass(frozen=True)
class Batching:
    """How the scheduler forms batches of samples that differ in size (DESIGN §4.1)."""

    costs: np.ndarray | None = None  # per QSL sample (sequence length, pairs); None: 1 each
    bucket_bounds: tuple[int, ...] = ()  # cost buckets a batch never mixes
    max_cost: int = 0  # a batch's cost budget; 0: none
    max_batch: int | None = None  # samples per batch when it differs from batch_size


@dataclass(frozen=True)
class HandleManifest:
    """The manifest of a prepared view whose one stored tensor is a handle to the sample (dlrm's
    pair range, 3d-unet's case index): the tensor the SampleStore holds, and what identifies the
    data for calibration hashes."""

    tensors: tuple[tuple[str, str, tuple[int, ...]], ...]
    source_hash: str
    version: str


@dataclass(frozen=True)
class Synthesized:
    """What making a synthetic set measured: the FP32 model's metric on it, and notes."""

    fp32_reference: float  # in the metric's unit (percent for acc, F1 and AUC)
    details: Mapping[str, Any]


@dataclass(frozen=True)
class Pipeline:
    benchmark: str
    dataset: Callable[[], Any]  # factory of the data layer's Dataset
    output_names: tuple[str, ...]  # engine outputs the post-processor reads, in order
    postprocessor: Callable[[], _C.harness.Postprocessor]
    evaluate: Callable[[Path, Any], Report]  # (accuracy log, ground truth) -> report
    truth: Callable[[Path], Any]  # raw data folder -> the metric's ground truth
    # (FP32 model, raw folder, samples, show progress): writes a synthetic set in the official
    # layout whose ground truth is the FP32 model's own output.
    synthesize: Callable[[Any, Path, int, bool], Synthesized]
    metric: str  # the Report.values key the accuracy targets compare ("acc", "F1", "AUC")
    unit: str = "samples"  # what one sample is, for messages ("images", "features")
    # How the ort backend gets INT8 activation scales: "static" (calibrated) or "dynamic"
    # (per batch; backends/ort.py INT8_MODES says when and why).
    ort_int8_mode: str = "static"
    model_card: Any = None  # the engine's interface where it is not the benchmark's model card
    engine_batch_field: str = "batch_size"  # the setting that sizes the engine's batch axis
    # The pipeline for a given model where models differ in interface (retinanet: our raw-head
    # model vs the official ONNX with NMS inside): (FP32 model) -> Pipeline.
    for_model: Callable[[Any], Pipeline] | None = None
    # Optional refinements: batching by cost, an executor wrapper (trimmed sequence lengths,
    # the embedding stage), and calibration feeds that are not the stored samples.
    batching: Callable[[Any, Any], Batching] | None = None  # (DataSource, config)
    # (executor, DataSource, config, FP32 model) -> executor
    wrap_executor: Callable[[Any, Any, Any, Any], Any] | None = None
    # (DataSource, calibration indices, FP32 model) -> engine feeds
    calibration_feeds: (
        Callable[[Any, list[int], Any], Iterator[Mapping[str, np.ndarray]]] | None
    ) = None


_PIPELINES: dict[str, str] = {
    "resnet50": "mlperf_trt.harness.pipelines.resnet50",
    "bert": "mlperf_trt.harness.pipelines.bert",
    "dlrm-v2": "mlperf_trt.harness.pipelines.dlrm",
    "retinanet": "mlperf_trt.harness.pipelines.retinanet",
    "3d-unet": "mlperf_trt.harness.pipelines.unet3d",
}


def has_pipeline(benchmark: str) -> bool:
    return benchmark in _PIPELINES


def pipeline_for(benchmark: str) -> Pipeline:
    module = _PIPELINES.get(benchmark)
    if module is None:
        raise BackendError(
            f"{benchmark} has no inference pipeline in this version yet (benchmarks with one:"
            f" {', '.join(sorted(_PIPELINES))}); run it with --backend null to measure the harness"
        )
    pipeline: Pipeline = importlib.import_module(module).PIPELINE
    return pipeline


def synthetic_targets(
    workload: Workload, round_: str, reference: float
) -> tuple[AccuracyMetric, ...]:
    """The targets on a synthetic set: the round's ratio of target to reference (99% or 99.9%,
    SPEC §2.0) applied to the FP32 model's own score on that set."""
    out = []
    for t in workload.accuracy_targets(round_):
        if t.lower is None or not t.reference:
            continue
        ratio = t.lower / t.reference
        out.append(AccuracyMetric(t.key, reference, t.unit, ratio * reference))
    return tuple(out)


def score_log(
    workload: Workload,
    log_path: Path,
    *,
    data_dir: Path | None = None,
    round_: str = DEFAULT_ROUND,
) -> tuple[Report, bool, list[str]]:
    """`accuracy`: scores an accuracy log against its data set and the round's targets.

    Without `data_dir`, the data set recorded in the run's resolved_config.json (beside the log)
    is used; a synthetic set is judged against the round's ratio of its FP32 model's score.
    """
    pipeline = pipeline_for(workload.benchmark.name)
    targets = workload.accuracy_targets(round_)
    if data_dir is None:
        resolved = Path(log_path).parent / "resolved_config.json"
        if not resolved.is_file():
            raise AccuracyError(
                f"no --data-dir given and no {resolved} to say which data set {log_path} is"
                " from; pass --data-dir DIR"
            )
        inputs = json.loads(resolved.read_text()).get("inputs", {})
        if "data_dir" not in inputs:
            raise AccuracyError(f"{resolved} names no data set; pass --data-dir DIR")
        data_dir = Path(inputs["data_dir"])
        if inputs.get("synthetic"):
            targets = synthetic_targets(workload, round_, float(inputs.get("fp32_reference") or 0))
    report = pipeline.evaluate(Path(log_path), pipeline.truth(Path(data_dir)))
    passed, lines = report.verdict(targets)
    return report, passed, lines


__all__ = [
    "Batching",
    "HandleManifest",
    "Pipeline",
    "Synthesized",
    "has_pipeline",
    "pipeline_for",
    "score_log",
    "synthetic_targets",
]
