"""Setting up a run's engine side: the model, the data, the engine build and the executors, then a
warm-up that measures the engine so that LoadGen's hints (expected QPS / latency) fit it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlperf_trt import _C
from mlperf_trt.accuracy.base import Report
from mlperf_trt.backends.base import EngineArtifact, EngineRecipe
from mlperf_trt.benchmarks import AccuracyMetric, Workload
from mlperf_trt.config import ResolvedConfig
from mlperf_trt.errors import BackendError, ConfigError
from mlperf_trt.harness.loadgen import CoreSpec
from mlperf_trt.harness.pipelines import Batching, synthetic_targets
from mlperf_trt.system import SystemInfo

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Setup:
    core: CoreSpec
    config: ResolvedConfig  # with measured hints where the user gave none
    total_count: int  # QSL total sample count
    performance_count: int  # QSL performance sample count
    notes: tuple[str, ...] = ()  # model, data, engine: shown in the summary
    # accuracy: (accuracy log) -> (report, targets); None where the benchmark has no metric here
    evaluate: Callable[[Path], tuple[Report, tuple[AccuracyMetric, ...]]] | None = None
    synthetic: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def null_setup(workload: Workload, scenario: str, config: ResolvedConfig, round_: str) -> Setup:
    from mlperf_trt.backends.null import NullBackend

    card = workload.benchmark.model_card
    groups, workers = int(config["worker_groups"]), int(config["workers"])
    batch = int(config["batch_size"])
    engine = NullBackend(card)
    recipe = EngineRecipe("null", workload.name, str(config["precision"]), (batch,))
    artifact = engine.build(None, recipe)
    executors = [engine.load(artifact, device=g) for g in range(groups) for _ in range(workers)]
    payload = workload.benchmark.payload
    first_token = payload.tokens and scenario != "Offline"
    post = _C.harness.ZerosPostprocessor(
        payload.nbytes, payload.elements if payload.tokens else 0, first_token
    )
    rules = workload.rules(round_)
    core = CoreSpec(
        max_batch=batch,
        timeout_us=int(config["server_batch_timeout_us"]) if scenario == "Server" else 0,
        executors=executors,
        groups=[g for g in range(groups) for _ in range(workers)],
        input_names=(),
        output_names=(),
        postprocessor=post,
    )
    return Setup(core, config, rules.dataset_size, rules.performance_sample_count)


def engine_setup(
    workload: Workload,
    scenario: str,
    config: ResolvedConfig,
    round_: str,
    system: SystemInfo,
    *,
    backend: str,
    model_path: Path | None,
    data_dir: Path | None,
    engines_root: Path,
    show_progress: bool,
) -> Setup:
    """Model, data, engine, executors (one per worker) and the core for an inference backend."""
    built = build_engine(
        workload,
        config,
        system,
        backend=backend,
        model_path=model_path,
        data_dir=data_dir,
        engines_root=engines_root,
        show_progress=show_progress,
    )
    pipeline, data = built.pipeline, built.data
    groups, workers = int(config["worker_groups"]), int(config["workers"])
    # trt: one worker group per chosen GPU; the CPU backends: worker_groups groups on device 0.
    devices = _devices(config, system) if backend == "trt" else (0,) * groups
    if backend == "trt":
        config = config.with_value("worker_groups", len(devices), f"--gpus {config['gpus']}")
        groups = len(devices)
    batching = pipeline.batching(data, config) if pipeline.batching else Batching()
    batch = batching.max_batch or int(config["batch_size"])
    executors = []
    for device in devices:
        for _ in range(workers):
            executor = built.backend.load(built.artifact, device=device)
            if pipeline.wrap_executor is not None:
                executor = pipeline.wrap_executor(executor, data, config, built.source.model)
            executors.append(executor)
    warm = _warm_up_size(batching, batch, data.prepared.count)
    feeds = _warm_up(executors, data.prepared, warm)
    config = _measured_hints(
        config,
        scenario,
        executors[0],
        feeds,
        warm,
        workers * groups,
        speedup=_bucket_speedup(batching, warm),
    )
    return _core_setup(workload, scenario, config, round_, built, executors, batching, batch)


@dataclass(frozen=True)
class EngineBuild:
    """An engine built (or found in the cache) with what it was built from."""

    backend: Any  # backends.ort.OrtBackend or backends.trt.TrtBackend
    artifact: EngineArtifact
    source: Any  # harness.inputs.ModelSource
    data: Any  # harness.inputs.DataSource
    pipeline: Any  # harness.pipelines.Pipeline
    calibration_indices: tuple[int, ...]


def _backend(name: str, engines_root: Path, system: SystemInfo, benchmark: str, config: Any) -> Any:
    if name == "ort":
        from mlperf_trt.backends.ort import OrtBackend, OrtOptions

        options = OrtOptions(intra_op_threads=int(config["intra_op_threads"]))
        return OrtBackend(engines_root, system.system_id, benchmark, options)
    if name == "trt":
        from mlperf_trt.backends.trt import TrtBackend, TrtOptions, require_tensorrt

        require_tensorrt()
        return TrtBackend(engines_root, system.system_id, benchmark, TrtOptions())
    raise BackendError(f"backend {name!r} builds no engines")  # pragma: no cover


def _engine_batch_sizes(config: Any, batch: int) -> tuple[int, ...]:
    """The `engine_batch_sizes` setting (build --batch-size N [N ...]) with the run's batch."""
    text = str(config["engine_batch_sizes"]).strip()
    try:
        sizes = {int(x) for x in text.split(",") if x.strip()}
    except ValueError:
        raise ConfigError(
            f"engine_batch_sizes={text!r}: expected positive integers such as '1,8,32'"
        ) from None
    if any(n < 1 for n in sizes):
        raise ConfigError(f"engine_batch_sizes={text!r}: batch sizes must be >= 1")
    return tuple(sorted(sizes | {batch}))


def _devices(config: Any, system: SystemInfo) -> tuple[int, ...]:
    """trt: the GPUs of the `gpus` setting, one worker group each (DESIGN §4.1)."""
    from mlperf_trt.backends.trt import devices_from_flag

    text = str(config["gpus"]).strip()
    return devices_from_flag(None if text == "all" else text, len(system.gpus))


def _backend_version(name: str) -> str:
    if name == "ort":
        return _ort_version()
    import importlib.metadata

    try:
        return importlib.metadata.version("tensorrt")
    except importlib.metadata.PackageNotFoundError:
        return ""


def build_engine(
    workload: Workload,
    config: ResolvedConfig,
    system: SystemInfo,
    *,
    backend: str = "ort",
    model_path: Path | None,
    data_dir: Path | None,
    engines_root: Path,
    show_progress: bool,
) -> EngineBuild:
    """The `build` step (DESIGN §5), shared by `build`, `calibrate` and `run`: model, data (the
    calibration set comes from it), recipe, then the engine, or a cache hit for the same recipe."""
    from mlperf_trt.data import data_root
    from mlperf_trt.harness import inputs
    from mlperf_trt.harness.pipelines import pipeline_for

    pipeline = pipeline_for(workload.benchmark.name)
    size = str(config["model_size"])
    root = data_root()
    source = inputs.obtain_model(
        workload,
        model_path=model_path,
        size=size,
        models_dir=root / "models",
        card=pipeline.model_card,
    )
    if pipeline.for_model is not None:
        pipeline = pipeline.for_model(source.model)
    data = inputs.obtain_data(
        pipeline,
        source,
        data_dir=data_dir,
        data_root=root,
        synthetic_samples=int(config["synthetic_samples"]),
        show_progress=show_progress,
    )
    prepared = data.prepared
    precision = str(config["precision"])
    batch = int(config[pipeline.engine_batch_field])
    sizes = _engine_batch_sizes(config, batch)
    dataset = pipeline.dataset()
    extra: dict[str, Any] = {"model_size": size if model_path is None else "user"}
    if backend == "ort" and precision == "int8":
        extra["int8_mode"] = pipeline.ort_int8_mode
    # Dynamic INT8 scales activations per batch: no calibration set is read or hashed.
    quantized = precision in ("int8", "fp8") and extra.get("int8_mode") != "dynamic"
    # The official calibration list where the raw folder has it; on synthetic data a seeded
    # quarter of the set (at least 32), so that most samples are never calibrated on.
    calib = dataset.calibration_indices(
        prepared.count,
        size=500 if not data.synthetic else min(500, max(32, prepared.count // 4)),
        raw_dir=data.raw_dir,
    )
    recipe = EngineRecipe(
        backend=backend,
        workload=workload.benchmark.name,
        precision=precision,
        batch_sizes=sizes,
        model_hash=source.hash,
        calibration_hash=inputs.calibration_hash(data, calib) if quantized else "",
        backend_version=_backend_version(backend),
        extra=extra,
    )
    engine = _backend(backend, engines_root, system, workload.benchmark.name, config)

    def feeds() -> Any:
        if pipeline.calibration_feeds is not None:
            return pipeline.calibration_feeds(data, calib, source.model)
        return inputs.calibration_feeds(data, calib)

    artifact = engine.build(source.model, recipe, feeds)
    return EngineBuild(engine, artifact, source, data, pipeline, tuple(calib))


def _core_setup(
    workload: Workload,
    scenario: str,
    config: ResolvedConfig,
    round_: str,
    built: EngineBuild,
    executors: list[Any],
    batching: Batching,
    batch: int,
) -> Setup:
    source, data, pipeline, artifact = built.source, built.data, built.pipeline, built.artifact
    prepared = data.prepared
    precision = str(config["precision"])
    groups, workers = int(config["worker_groups"]), int(config["workers"])
    tensors = [
        _C.harness.TensorSpec(name, dtype, list(shape))
        for name, dtype, shape in prepared.manifest.tensors
    ]
    core = CoreSpec(
        max_batch=batch,
        timeout_us=int(config["server_batch_timeout_us"]) if scenario == "Server" else 0,
        executors=executors,
        groups=[g for g in range(groups) for _ in range(workers)],
        input_names=[t.name for t in tensors],
        output_names=pipeline.output_names,
        postprocessor=pipeline.postprocessor(),
        tensors=tensors,
        sample_source=prepared.sample,
        costs=batching.costs,
        bucket_bounds=batching.bucket_bounds,
        max_cost=batching.max_cost,
    )
    rules = workload.rules(round_)
    if data.synthetic:
        ref = float(data.fp32_reference or 0.0)
        targets = synthetic_targets(workload, round_, ref)
        data_note = (
            f"synthetic {prepared.count} {pipeline.unit} in the official layout at"
            f" {data.raw_dir}; ground truth is the FP32 model's own output"
            f" (FP32 {pipeline.metric} {ref:.3f})"
        )
    else:
        targets = workload.accuracy_targets(round_)
        data_note = f"{data.raw_dir} ({prepared.count} {pipeline.unit})"

    def evaluate(log_path: Path) -> tuple[Report, tuple[AccuracyMetric, ...]]:
        return pipeline.evaluate(log_path, data.truth), targets

    notes = (
        f"model       : {source.description}",
        f"data        : {data_note}",
        f"engine      : {artifact.recipe.backend} {precision},"
        f" {'cached' if artifact.cache_hit else 'built'} at {artifact.path}",
    )
    extra = {
        "data_dir": str(data.raw_dir),
        "synthetic": data.synthetic,
        "fp32_reference": data.fp32_reference,
        "metric": pipeline.metric,
        "model_hash": source.hash,
        "engine_dir": str(Path(artifact.path).parent) if artifact.path else "",
    }
    return Setup(
        core,
        config,
        prepared.count,
        min(rules.performance_sample_count, prepared.count),
        notes,
        evaluate,
        data.synthetic,
        extra,
    )


def _ort_version() -> str:
    import onnxruntime

    return str(onnxruntime.__version__)


def _bucket_speedup(batching: Batching, warm: int) -> float:
    """How much faster the data set's batches run than the warm-up batch, where batches run at
    their length bucket's bound (bert): the warm-up batch's bound over the set's mean bound."""
    if batching.costs is None or not batching.bucket_bounds or len(batching.costs) == 0:
        return 1.0
    bounds = np.asarray(batching.bucket_bounds, dtype=np.float64)
    padded = bounds[np.minimum(np.searchsorted(bounds, batching.costs), len(bounds) - 1)]
    return float(padded[: max(1, warm)].max() / padded.mean())


def _warm_up_size(batching: Batching, batch: int, count: int) -> int:
    """Samples in a typical full batch: `batch`, or under a cost budget the first samples that
    fit it (dlrm-v2: pairs)."""
    if batching.costs is None or not batching.max_cost:
        return batch
    within = np.cumsum(batching.costs[: min(batch, count)], dtype=np.int64) <= batching.max_cost
    return max(1, int(within.sum()))


def _warm_up(executors: list[Any], prepared: Any, batch: int) -> dict[str, np.ndarray]:
    """Runs every executor once on a real batch before LoadGen starts.

    An ORT session's first run allocates its arenas and picks kernels (tens of ms); left to the
    timed run, it lands on the first queries and shows up as a Server p99 outlier.
    """
    n = min(batch, prepared.count)
    feeds = prepared.batch(list(range(n)))
    if n < batch:
        feeds = {k: np.concatenate([v] * (batch // n + 1))[:batch] for k, v in feeds.items()}
    feeds = {k: np.ascontiguousarray(v) for k, v in feeds.items()}
    for executor in executors:
        executor.run(feeds, batch_size=batch)
        if batch > 1:  # the tail batch's shape too
            executor.run({k: v[:1] for k, v in feeds.items()}, batch_size=1)
    return feeds


def _measured_hints(
    config: ResolvedConfig,
    scenario: str,
    executor: Any,
    feeds: dict[str, np.ndarray],
    batch: int,
    workers: int,
    speedup: float = 1.0,
) -> ResolvedConfig:
    """Times the engine on real samples; sets LoadGen's hints the user left at their defaults.

    LoadGen pre-generates queries from these hints and calls a run INVALID when the system is
    faster than them (Offline: min duration not met; SingleStream/MultiStream: it runs out of
    queries), so the defaults are derived from this machine rather than guessed.
    """
    field_name = {
        "Offline": "offline_expected_qps",
        "Server": "server_target_qps",
        "SingleStream": "single_stream_expected_latency_ns",
        "MultiStream": "multi_stream_expected_latency_ns",
    }[scenario]
    if config.sources[field_name] != "default":
        return config
    times = []
    for _ in range(3):
        start = time.perf_counter()
        executor.run(feeds, batch_size=batch)
        times.append(time.perf_counter() - start)
    seconds = min(times)
    throughput = workers * batch / seconds * speedup
    if scenario == "Offline":
        # LoadGen's query = 1.1 x duration x qps. Lean high: a query that runs short of
        # min_duration is INVALID, a longer one only costs time. 1.25 left dlrm-v2's smoke runs
        # short on a quiet machine (its warm-up batch underestimated the run by ~1.5x).
        value: float = 1.6 * throughput
    elif scenario == "Server":
        # Poisson arrivals, LoadGen's own threads and per-query completion share the CPU with the
        # executors: on a 2-core machine about 15% of the batch throughput keeps p99 low.
        value = 0.15 * throughput
    else:
        value = int(0.8 * seconds * 1e9)  # the latency of one query (batch 1 or the query's 8)
    log.info("warm-up: %d samples in %.4f s; %s = %s", batch, seconds, field_name, value)
    return config.with_value(field_name, value, f"measured (warm-up, {seconds * 1e3:.2f} ms/batch)")
