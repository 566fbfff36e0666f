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

    module = importlib.import_module(f"mlperf_trt.models.{benchmark}")
    return hashlib.sha256(inspect.getsource(module).encode()).hexdigest()[:8]


def obtain_model(
    workload: Workload, *, model_path: Path | None, size: str, models_dir: Path, seed: int = 0
) -> ModelSource:
    from mlperf_trt.models import build_model, load_model, model_hash, save_model

    card = workload.benchmark.model_card
    if model_path is not None:
        model = load_model(Path(model_path), card)
        return ModelSource(model, model_hash(model), f"{model_path} (checked against the card)")
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


class Fp32Labeler:
    """label_fn of a synthetic set: the FP32 model's own predictions (and how many are valid)."""

    def __init__(self, model: Any, pipeline: Pipeline, input_name: str) -> None:
        import onnxruntime as ort

        self._session = ort.InferenceSession(
            model.SerializeToString(), providers=["CPUExecutionProvider"]
        )
        self._pipeline = pipeline
        self._input = input_name
        self.total = 0
        self.invalid = 0  # predictions outside the label range (e.g. the background class)
        self.margins: list[float] = []  # per image, in order: top-1 minus top-2 log-probability
        self.valid: list[bool] = []  # per image: the prediction is a label (not the background)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        wanted = [self._pipeline.label_output, self._pipeline.label_scores]
        out, scores = self._session.run(wanted, {self._input: batch})
        labels = np.asarray(out).reshape(len(batch)).astype(np.int64) + self._pipeline.label_offset
        top2 = np.sort(np.log(np.maximum(np.asarray(scores, np.float64), 1e-300)), axis=1)[:, -2:]
        self.margins.extend((top2[:, 1] - top2[:, 0]).tolist())
        bad = labels < 0
        self.total += len(labels)
        self.invalid += int(bad.sum())
        self.valid.extend((~bad).tolist())
        return np.where(bad, 0, labels)  # a label the FP32 model gets wrong: counted as such


# A synthetic image whose FP32 top-1 is a near tie has no meaningful label: its "label" is a coin
# toss that any rounding flips. Of the candidates made, this fraction with the smallest top-1/top-2
# gap is not kept (real labels are unambiguous to their annotators too). On the built-in tiny
# ResNet50, INT8 agreed with FP32 on 98.7% of all images and on 99.7% of the kept 90%.
AMBIGUOUS_FRACTION = 0.10


def _keep_confident(raw: Path, labeler: Fp32Labeler, count: int) -> tuple[int, float]:
    """Keeps the `count` most confident images in val_map.txt (in their order) and deletes the
    rest; returns (images dropped, FP32 top-1 in percent on the kept ones)."""
    from mlperf_trt.results import atomic_write_text

    lines = [x for x in (raw / "val_map.txt").read_text().splitlines() if x.strip()]
    order = np.argsort(-np.asarray(labeler.margins), kind="stable")
    keep = sorted(order[:count].tolist())
    atomic_write_text(raw / "val_map.txt", "".join(f"{lines[i]}\n" for i in keep))
    kept = set(keep)
    for i, line in enumerate(lines):
        if i not in kept:
            (raw / line.split()[0]).unlink(missing_ok=True)
    top1 = 100.0 * sum(labeler.valid[i] for i in keep) / max(1, len(keep))
    return len(lines) - len(keep), top1


@dataclass(frozen=True)
class DataSource:
    prepared: Any  # data.cache.PreparedSamples
    raw_dir: Path
    labels: np.ndarray
    synthetic: bool
    fp32_reference: float | None  # synthetic: the FP32 model's top-1 on the set, in percent


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
        return DataSource(prepared, Path(data_dir), dataset.labels(Path(data_dir)), False, None)
    raw = synthetic_dir(data_root, dataset.name, source.hash, synthetic_samples)
    return _synthesize(pipeline, source, raw, synthetic_samples, show_progress)


def _synthesize(
    pipeline: Pipeline, source: ModelSource, raw: Path, count: int, show_progress: bool
) -> DataSource:
    dataset = pipeline.dataset()
    reference = raw / REFERENCE_FILE
    if reference.is_file() and json.loads(reference.read_text()).get("model_hash") != source.hash:
        raise DataError(
            f"{raw} holds a synthetic set labelled by another model ({reference}); choose an"
            " empty --data-dir, or delete that folder to make it again"
        )
    if not reference.is_file():
        labeler = Fp32Labeler(source.model, pipeline, dataset.input_name)
        candidates = int(np.ceil(count / (1.0 - AMBIGUOUS_FRACTION)))
        dataset.synthesize(raw, candidates, seed=0, label_fn=labeler, show_progress=show_progress)
        dropped, top1 = _keep_confident(raw, labeler, count)
        atomic_write_json(
            reference,
            {
                "labels": "the FP32 model's own top-1 predictions",
                "model_hash": source.hash,
                "model": source.description,
                "fp32_top1_percent": top1,
                "samples": count,
                "ambiguous_dropped": dropped,
                "selection": f"of {candidates} images made, the {dropped} whose FP32 top-1 was"
                " the nearest tie (smallest top-1/top-2 log-probability gap) were dropped",
            },
        )
    fp32 = float(json.loads(reference.read_text())["fp32_top1_percent"])
    prepared = dataset.prepare(raw, show_progress=show_progress)
    return DataSource(prepared, raw, dataset.labels(raw), True, fp32)


def calibration_feeds(
    data: DataSource, input_name: str, indices: list[int], batch: int = 16
) -> Iterator[Mapping[str, np.ndarray]]:
    for start in range(0, len(indices), batch):
        chunk = indices[start : start + batch]
        yield {input_name: data.prepared.batch(chunk)[input_name]}


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
        dataset = pipeline.dataset()
        prepared = dataset.prepare(Path(data_dir), show_progress=show_progress)
        return DataSource(prepared, Path(data_dir), dataset.labels(Path(data_dir)), False, None)
    source = obtain_model(workload, model_path=model_path, size=size, models_dir=root / "models")
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
