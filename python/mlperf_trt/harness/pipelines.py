"""Per-benchmark wiring: the data set, model builder, post-processor and metric of a benchmark.

Each layer owns its part (data/, models/, accuracy/, the C++ post-processors); this table is the
one place that names them together, so a new benchmark is one entry here plus its modules.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlperf_trt import _C
from mlperf_trt.accuracy.base import Report
from mlperf_trt.benchmarks import DEFAULT_ROUND, Workload
from mlperf_trt.errors import AccuracyError, BackendError


@dataclass(frozen=True)
class Pipeline:
    benchmark: str
    dataset: Callable[[], Any]  # factory of the data layer's Dataset
    output_names: tuple[str, ...]  # engine outputs the post-processor reads, in order
    postprocessor: Callable[[], _C.harness.Postprocessor]
    evaluate: Callable[[Path, np.ndarray], Report]  # (accuracy log, ground truth) -> report
    # Which output decides a label on synthetic data (the FP32 model's own prediction).
    label_output: str
    label_offset: int
    label_scores: str  # class scores (probabilities) telling how clear the FP32 decision is


def _resnet50() -> Pipeline:
    from mlperf_trt.accuracy import imagenet
    from mlperf_trt.data.imagenet import ImageNet

    return Pipeline(
        benchmark="resnet50",
        dataset=ImageNet,
        # SPEC §2.1: the payload is one float32 class index, ArgMax - 1 (class 0 is background).
        output_names=("ArgMax:0",),
        postprocessor=lambda: _C.harness.ClassIndexPostprocessor(0, -1),
        evaluate=imagenet.evaluate,
        label_output="ArgMax:0",
        label_offset=-1,
        label_scores="softmax_tensor:0",
    )


_PIPELINES: dict[str, Callable[[], Pipeline]] = {"resnet50": _resnet50}


def has_pipeline(benchmark: str) -> bool:
    return benchmark in _PIPELINES


def pipeline_for(benchmark: str) -> Pipeline:
    factory = _PIPELINES.get(benchmark)
    if factory is None:
        raise BackendError(
            f"{benchmark} has no inference pipeline in this version yet (benchmarks with one:"
            f" {', '.join(sorted(_PIPELINES))}); run it with --backend null to measure the harness"
        )
    return factory()


def score_log(
    workload: Workload,
    log_path: Path,
    *,
    data_dir: Path | None = None,
    round_: str = DEFAULT_ROUND,
) -> tuple[Report, bool, list[str]]:
    """`accuracy`: scores an accuracy log against its data set and the round's targets.

    Without `data_dir`, the data set recorded in the run's resolved_config.json (beside the log)
    is used; a synthetic set is judged against 99% of its FP32 model's top-1 (SPEC §2.0's 99%).
    """
    from mlperf_trt.benchmarks import AccuracyMetric

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
            ref = float(inputs.get("fp32_reference_top1") or 0.0)
            targets = (AccuracyMetric("acc", ref, "%", 0.99 * ref),)
    labels = pipeline.dataset().labels(Path(data_dir))
    report = pipeline.evaluate(Path(log_path), labels)
    passed, lines = report.verdict(targets)
    return report, passed, lines
