"""What a real run feeds the engine: the model (built in code, or the user's file checked against
the model card) and the data (the official raw folder, or a synthetic set in the same layout
whose labels are the FP32 model's own predictions).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlperf_trt.benchmarks import Workload
from mlperf_trt.errors import DataError
from mlperf_trt.harness.pipelines import Pipeline
from mlperf_trt.results import atomic_write_json

log = logging.getLogger(__name__)

REFERENCE_FILE = "reference.json"  # beside a synthetic set's val_map: how its labels were made


@dataclass(frozen=True)
class ModelSource:
    model: Any  # onnx.ModelProto
    hash: str
    description: str  # what the run says it used


def _builder_fingerprint(benchmark: str) -> str:
    """A short hash of the builder's source: a changed builder never reuses a stale cached model."""
    import importlib

    from mlperf_trt.models import builder_module

    module = importlib.import_module(builder_module(benchmark))
    return hashlib.sha256(inspect.getsource(module).encode()).hexdigest()[:8]


def obtain_model(
    workload: Workload,
    *,
    model_path: Path | None,
    size: str,
    models_dir: Path,
    seed: int = 0,
    card: Any = None,
) -> ModelSource:
    """The engine's ONNX model: the user's file, checked against the benchmark's model card (the
    official interface), or the built-in one, checked against `card` where the built model's
    interface differs (dlrm-v2's dense part, retinanet's raw heads)."""
    from mlperf_trt.models import build_model, load_model, model_hash, save_model

    if model_path is not None:
        model = load_model(Path(model_path), workload.benchmark.model_card)
        return ModelSource(model, model_hash(model), f"{model_path} (checked against the card)")
    card = card or workload.benchmark.model_card
    name = workload.benchmark.name
    path = models_dir / f"{name}-{size}-seed{seed}-{_builder_fingerprint(name)}.onnx"
    if path.is_file():
        model = load_model(path, card)
        how = "cached"
    else:
        log.info("building the %s %s model (seed %d)", size, name, seed)
        model = build_model(name, size=size, seed=seed)
        save_model(model, path)
        how = "built"
    return ModelSource(
        model, model_hash(model), f"built-in {name} {size}, seed {seed} ({how}: {path})"
    )


@dataclass(frozen=True)
class DataSource:
    prepared: Any  # the data layer's prepared samples (count, sample(i), batch(indices), manifest)
    raw_dir: Path
    truth: Any  # the metric's ground truth (pipeline.truth of raw_dir)
    synthetic: bool
    fp32_reference: float | None  # synthetic: the FP32 model's score on the set (metric unit)


def synthetic_dir(data_root: Path, dataset: str, model_hash: str, count: int) -> Path:
    return data_root / "synthetic" / f"{dataset}-{model_hash[:12]}-n{count}"


def obtain_data(
    pipeline: Pipeline,
    source: ModelSource,
    *,
    data_dir: Path | None,
    data_root: Path,
    synthetic_samples: int,
    show_progress: bool,
) -> DataSource:
    dataset = pipeline.dataset()
    if data_dir is not None:
        prepared = dataset.prepare(Path(data_dir), show_progress=show_progress)
        return DataSource(prepared, Path(data_dir), pipeline.truth(Path(data_dir)), False, None)
    raw = synthetic_dir(data_root, dataset.name, source.hash, synthetic_samples)
    return _synthesize(pipeline, source, raw, synthetic_samples, show_progress)


def _synthesize(
    pipeline: Pipeline, source: ModelSource, raw: Path, count: int, show_progress: bool
) -> DataSource:
    """A synthetic set in the official layout whose ground truth is the FP32 model's own output;
    made once per (model, count) and reused (reference.json beside it says how it was made)."""
    reference = raw / REFERENCE_FILE
    if reference.is_file() and json.loads(reference.read_text()).get("model_hash") != source.hash:
        raise DataError(
            f"{raw} holds a synthetic set labelled by another model ({reference}); choose an"
            " empty --data-dir, or delete that folder to make it again"
        )
    if not reference.is_file() or "fp32_reference" not in json.loads(reference.read_text()):
        made = pipeline.synthesize(source.model, raw, count, show_progress)
        atomic_write_json(
            reference,
            {
                "benchmark": pipeline.benchmark,
                "model_hash": source.hash,
                "model": source.description,
                "samples": count,
                "metric": pipeline.metric,
                "fp32_reference": made.fp32_reference,
                **dict(made.details),
            },
        )
    fp32 = float(json.loads(reference.read_text())["fp32_reference"])
    prepared = pipeline.dataset().prepare(raw, show_progress=show_progress)
    return DataSource(prepared, raw, pipeline.truth(raw), True, fp32)


def calibration_feeds(
    data: DataSource, indices: list[int], batch: int = 16
) -> Iterator[Mapping[str, np.ndarray]]:
    """The calibration samples as engine feeds: every stored tensor, `batch` samples at a time."""
    for start in range(0, len(indices), batch):
        yield data.prepared.batch(indices[start : start + batch])


def calibration_hash(data: DataSource, indices: list[int]) -> str:
    manifest = data.prepared.manifest
    blob = json.dumps(
        {"source_hash": manifest.source_hash, "version": manifest.version, "indices": indices}
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def prepare_dataset(
    workload: Workload,
    *,
    data_dir: Path | None,
    synthetic: int | None,
    model_path: Path | None,
    size: str,
    show_progress: bool,
) -> DataSource:
    """`prepare`: the official raw folder into the cache, or a synthetic set made and prepared.

    A synthetic set needs the FP32 model (its labels are the model's predictions); with
    `data_dir` it is written there, otherwise under the data root.
    """
    from mlperf_trt.data import data_root
    from mlperf_trt.harness.pipelines import pipeline_for

    pipeline = pipeline_for(workload.benchmark.name)
    root = data_root()
    if synthetic is None:
        if data_dir is None:
            raise DataError(
                "prepare needs --data-dir DIR (the official raw folder) or --synthetic N"
            )
        prepared = pipeline.dataset().prepare(Path(data_dir), show_progress=show_progress)
        return DataSource(prepared, Path(data_dir), pipeline.truth(Path(data_dir)), False, None)
    source = obtain_model(
        workload,
        model_path=model_path,
        size=size,
        models_dir=root / "models",
        card=pipeline.model_card,
    )
    if data_dir is not None:
        return _synthesize(pipeline, source, Path(data_dir), synthetic, show_progress)
    return obtain_data(
        pipeline,
        source,
        data_dir=None,
        data_root=root,
        synthetic_samples=synthetic,
        show_progress=show_progress,
    )
