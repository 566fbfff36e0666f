"""Building TensorRT engines: parse -> config -> build -> save, as small steps (STYLE, Polygraphy).

    parsed = parse_onnx(model)                   # OnnxParser; errors name the ONNX nodes
    config = make_config(parsed.builder, recipe, options, calibrator, profiles=profiles)
    plan = build_serialized(parsed, config)      # the bytes of engine.plan

`TrtBackend.build` strings them together and writes the engine folder (docs/tensorrt.md):

    engines/<system_id>/<benchmark>/trt-<precision>-b<max batch>-<digest[:10]>/
        engine.plan, calib.cache (int8/fp8), recipe.json (last)
    engines/<system_id>/timing.cache                             shared by every build of the system

TensorRT is imported inside the functions (through `require_tensorrt`), never at module import.
INT8 is quantised one of two ways (recipe.quantization_mode): implicitly, by TensorRT's entropy or
min-max calibrator fed from the calibration set (TensorRT 10 still has it, deprecated), or
explicitly, by inserting Q/DQ nodes with ranges that ONNX Runtime's calibrator computes on the CPU
(`mlperf_trt.backends.qdq.insert_qdq`); FP8 is always explicit.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlperf_trt.backends.base import EngineArtifact, EngineRecipe
from mlperf_trt.backends.calibration import (
    hash_calibration_feeds,
    ranges_from_tensors_data,
    read_calibration_cache,
    write_calibration_cache,
)
from mlperf_trt.backends.engine_dir import check_name, complete_record, file_entry
from mlperf_trt.backends.ort import model_hash
from mlperf_trt.backends.trt import availability, require_tensorrt
from mlperf_trt.backends.trt.recipe import (
    CALIBRATION_FILE,
    ENGINE_FILE,
    RECIPE_FILE,
    Profile,
    TrtOptions,
    calibration_method,
    check_precision,
    engine_dir_name,
    from_trt_calibration_cache,
    max_batch,
    precision_flags,
    profiles_for,
    quantization_mode,
    recipe_streams,
    seq_buckets,
    timing_cache_path,
    trt_cache_header,
)
from mlperf_trt.errors import BackendError, ResultsError
from mlperf_trt.results.layout import AtomicResultDir, atomic_write_json

if TYPE_CHECKING:
    import onnx

    from mlperf_trt.backends.trt.runtime import TrtExecutor

__all__ = [
    "CalibrationSource",
    "ParsedNetwork",
    "TrtBackend",
    "build_serialized",
    "compute_ranges",
    "make_config",
    "make_logger",
    "model_inputs",
    "parse_onnx",
    "save_timing_cache",
]

log = logging.getLogger(__name__)

# Yields input feeds (batches) of the calibration set; called once per pass (as OrtBackend takes).
CalibrationSource = Callable[[], Iterable[Mapping[str, np.ndarray]]]
_EXTERNAL_DATA_BYTES = 1 << 30  # models this large are parsed from a file with external weights
_LOGGER: Any = None


def make_logger(verbose: bool = False) -> Any:
    """The process's one tensorrt.ILogger (TensorRT warns when builder and runtime loggers
    differ): forwards to `logging` and keeps the last errors for BackendError messages."""
    global _LOGGER
    trt = require_tensorrt()
    if _LOGGER is None:
        severity = trt.ILogger.Severity
        levels = {
            severity.INTERNAL_ERROR: logging.CRITICAL,
            severity.ERROR: logging.ERROR,
            severity.WARNING: logging.WARNING,
            severity.INFO: logging.DEBUG,
            severity.VERBOSE: logging.DEBUG,
        }

        class _Logger(trt.ILogger):  # type: ignore[misc, name-defined]
            def __init__(self) -> None:
                trt.ILogger.__init__(self)
                self.verbose = False
                self.errors: list[str] = []

            def log(self, sev: Any, msg: str) -> None:
                if sev == severity.VERBOSE and not self.verbose:
                    return
                level = levels.get(sev, logging.INFO)
                if level >= logging.ERROR:
                    self.errors = [*self.errors[-9:], str(msg)]
                log.log(level, "TensorRT: %s", msg)

        _LOGGER = _Logger()
    _LOGGER.verbose = verbose
    return _LOGGER


@dataclass(frozen=True)
class ParsedNetwork:
    """A TensorRT network parsed from ONNX; the parser must outlive the build (it owns weights)."""

    builder: Any
    network: Any
    parser: Any
    logger: Any


def parse_onnx(
    model: onnx.ModelProto, verbose: bool = False, strongly_typed: bool = False
) -> ParsedNetwork:
    """OnnxParser over `model`; BackendError listing every parser error with its node's name."""
    trt = require_tensorrt()
    logger = make_logger(verbose)
    builder = trt.Builder(logger)
    flags = 0
    if strongly_typed:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if model.ByteSize() >= _EXTERNAL_DATA_BYTES:
        import onnx as _onnx

        with tempfile.TemporaryDirectory(prefix="mlperf-trt-parse-") as scratch:
            path = Path(scratch) / "model.onnx"
            _onnx.save_model(
                model, str(path), save_as_external_data=True, location="model.onnx.data"
            )
            ok = parser.parse_from_file(str(path))
    else:
        ok = parser.parse(model.SerializeToString())
    if not ok:
        nodes = model.graph.node
        problems = []
        for i in range(parser.num_errors):
            error = parser.get_error(i)
            index = int(error.node())
            name = _maybe(error, "node_name") or (
                nodes[index].name if 0 <= index < len(nodes) else ""
            )
            op = _maybe(error, "node_operator") or (
                nodes[index].op_type if 0 <= index < len(nodes) else ""
            )
            where = f"node {index} {name!r} ({op})" if index >= 0 else "graph"
            problems.append(f"{where}: {error.desc()}")
        raise BackendError(
            "TensorRT's ONNX parser rejected the model: "
            + "; ".join(problems or ["no error detail"])
            + "; check the model against the model card (python -m mlperf_trt info) or use"
            " --backend ort"
        )
    return ParsedNetwork(builder, network, parser, logger)


def _maybe(obj: Any, method: str) -> str:
    """obj.method() as a string, '' where this TensorRT version lacks it."""
    func = getattr(obj, method, None)
    return str(func()) if callable(func) else ""


def model_inputs(model: onnx.ModelProto) -> list[tuple[str, tuple[int | str, ...]]]:
    """(name, shape) of the graph's real inputs, in the model card's notation: axis 0 "N",
    fixed sizes as ints, other dynamic axes by their dim_param (or "dim<axis>")."""
    weights = {init.name for init in model.graph.initializer}
    inputs: list[tuple[str, tuple[int | str, ...]]] = []
    for value in model.graph.input:
        if value.name in weights:
            continue
        shape: list[int | str] = []
        for axis, dim in enumerate(value.type.tensor_type.shape.dim):
            if dim.HasField("dim_value") and dim.dim_value > 0:
                shape.append(int(dim.dim_value))
            else:
                shape.append("N" if axis == 0 else dim.dim_param or f"dim{axis}")
        inputs.append((value.name, tuple(shape)))
    return inputs


def make_config(
    builder: Any,
    recipe: EngineRecipe,
    options: TrtOptions,
    calibrator: Any = None,
    *,
    profiles: Sequence[Profile] = (),
    timing_cache: bytes | None = None,
    strongly_typed: bool = False,
) -> Any:
    """An IBuilderConfig: precision flags, workspace, optimisation level, profiles, timing cache,
    and the calibrator (with its calibration profile) for implicit INT8."""
    trt = require_tensorrt()
    config = builder.create_builder_config()
    if not strongly_typed:  # a strongly typed network takes its types from the graph, not flags
        flags = precision_flags(recipe.precision)
        for name in flags.set:
            config.set_flag(_builder_flag(trt, name, recipe.precision))
        for name in flags.clear:
            config.clear_flag(_builder_flag(trt, name, recipe.precision))
    workspace = recipe.extra.get("workspace_mib", options.workspace_mib)
    if workspace is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace) << 20)
    config.builder_optimization_level = int(
        recipe.extra.get("builder_optimization_level", options.builder_optimization_level)
    )
    for profile in profiles:
        config_profile = builder.create_optimization_profile()
        for s in profile.shapes:
            config_profile.set_shape(s.name, s.min, s.opt, s.max)
        if config.add_optimization_profile(config_profile) < 0:
            raise BackendError(f"TensorRT rejected the optimisation profile {profile.to_json()}")
    if calibrator is not None:
        config.int8_calibrator = calibrator
        calib_profile = builder.create_optimization_profile()
        shapes = calibrator.shapes or {s.name: s.opt for s in profiles[0].shapes}
        for name, shape in shapes.items():
            calib_profile.set_shape(name, shape, shape, shape)
        config.set_calibration_profile(calib_profile)
    if options.timing_cache:
        cache = config.create_timing_cache(timing_cache or b"")
        if cache is None or not config.set_timing_cache(cache, False):
            log.warning("TensorRT did not accept the timing cache; building without it")
    return config


def _builder_flag(trt: Any, name: str, precision: str) -> Any:
    flag = getattr(trt.BuilderFlag, name, None)
    if flag is None:
        raise BackendError(
            f"this TensorRT ({trt.__version__}) has no BuilderFlag.{name}, which precision"
            f" {precision!r} needs; use a newer TensorRT or another precision"
        )
    return flag


def build_serialized(parsed: ParsedNetwork, config: Any) -> bytes:
    """builder.build_serialized_network; BackendError with TensorRT's last errors on failure."""
    parsed.logger.errors = []
    plan = parsed.builder.build_serialized_network(parsed.network, config)
    if plan is None:
        detail = "; ".join(parsed.logger.errors) or "see the TensorRT log above"
        raise BackendError(f"TensorRT could not build the engine: {detail}")
    return bytes(memoryview(plan))


def save_timing_cache(config: Any, path: Path) -> None:
    """Write the config's timing cache atomically (builds of the same system share it)."""
    cache = config.get_timing_cache()
    if cache is None:
        return
    data = bytes(memoryview(cache.serialize()))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        log.warning("could not save the timing cache %s: %s", path, err)


class _SampleReader:
    """An onnxruntime CalibrationDataReader (get_next) over a CalibrationSource, one sample at a
    time for histogram methods (their collectors need batches of equal size)."""

    def __init__(self, source: CalibrationSource, per_sample: bool) -> None:
        self._feeds = iter(source())
        self._per_sample = per_sample
        self._pending: list[dict[str, np.ndarray]] = []
        self.batches = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if not self._pending:
            feed = next(self._feeds, None)
            if feed is None:
                return None
            self.batches += 1
            arrays = {name: np.asarray(value) for name, value in feed.items()}
            if not self._per_sample:
                return arrays
            count = min(len(a) for a in arrays.values())
            self._pending = [{n: a[i : i + 1] for n, a in arrays.items()} for i in range(count)]
        return self._pending.pop(0) if self._pending else None


def compute_ranges(
    model: onnx.ModelProto, source: CalibrationSource, method: str, scratch: Path
) -> dict[str, tuple[float, float]]:
    """Per-tensor (min, max) of every activation of the FP32 model on the calibration set, by
    ONNX Runtime's calibrator on the CPU (the ranges that explicit Q/DQ quantisation uses)."""
    from onnxruntime.quantization.calibrate import CalibrationMethod, create_calibrator

    methods = {
        "minmax": CalibrationMethod.MinMax,
        "percentile": CalibrationMethod.Percentile,
        "entropy": CalibrationMethod.Entropy,
    }
    large = model.ByteSize() >= _EXTERNAL_DATA_BYTES
    path = scratch / "fp32.onnx"
    if large:
        import onnx as _onnx

        _onnx.save_model(model, str(path), save_as_external_data=True, location="fp32.onnx.data")
    else:
        path.write_bytes(model.SerializeToString())
    calibrator = create_calibrator(
        str(path),
        None,
        augmented_model_path=str(scratch / "augmented.onnx"),
        calibrate_method=methods[method],
        use_external_data_format=large,
    )
    reader = _SampleReader(source, per_sample=method != "minmax")
    calibrator.collect_data(reader)
    if reader.batches == 0:
        raise BackendError("the calibration source yielded no batches; it needs at least one")
    return ranges_from_tensors_data(calibrator.compute_data())


def _insert_qdq(
    model: onnx.ModelProto, ranges: Mapping[str, tuple[float, float]], precision: str
) -> onnx.ModelProto:
    try:
        from mlperf_trt.backends.qdq import insert_qdq
    except ImportError as err:
        raise BackendError(
            f"explicit {precision} quantisation needs mlperf_trt.backends.qdq.insert_qdq, which"
            f" this installation lacks ({err}); use quantization='implicit' (int8 with"
            " TensorRT 10) or a float precision"
        ) from err
    result: onnx.ModelProto = insert_qdq(model, ranges, precision)
    return result


def _ranges_hash(ranges: Mapping[str, tuple[float, float]]) -> str:
    blob = json.dumps({k: [float(v[0]), float(v[1])] for k, v in ranges.items()}, sort_keys=True)
    return "ranges:" + hashlib.sha256(blob.encode()).hexdigest()


def _is_complete(final: Path, recipe: EngineRecipe) -> bool:
    """True when `final` holds a finished build of `recipe` (docs/engines.md, "Complete or not")."""
    return complete_record(final, recipe, ENGINE_FILE) is not None


class TrtBackend:
    """Builds TensorRT engines into the engine cache and loads executors (DESIGN §3, §5)."""

    name = "trt"

    def __init__(
        self,
        engines_root: Path,
        system_id: str,
        benchmark: str,
        options: TrtOptions = TrtOptions(),  # noqa: B008 - frozen, so sharing it is safe
    ) -> None:
        self.engines_root = Path(engines_root)
        self.system_id = check_name(system_id, "system id")
        self.benchmark = check_name(benchmark, "benchmark name")
        self.options = options
        self._engines: dict[tuple[Path, int], Any] = {}
        self._lock = threading.Lock()  # workers may load their executors concurrently

    def availability(self) -> tuple[bool, str]:
        return availability()

    def engine_dir(self, recipe: EngineRecipe) -> Path:
        """engines_root/system_id/benchmark/trt-<precision>-b<max batch>-<digest[:10]>; pass the
        recipe that build() returned (it fills model_hash, backend_version and build extras)."""
        return self.engines_root / self.system_id / self.benchmark / engine_dir_name(recipe)

    def timing_cache_path(self) -> Path:
        return timing_cache_path(self.engines_root, self.system_id)

    def resolve(
        self,
        model: onnx.ModelProto,
        recipe: EngineRecipe,
        calibration: CalibrationSource | None = None,
        ranges: Mapping[str, tuple[float, float]] | None = None,
    ) -> EngineRecipe:
        """The recipe with everything that decides the engine's bytes filled in: model_hash,
        backend_version (the TensorRT version: plans do not move between versions), and in
        `extra` streams, build options and, for int8/fp8, quantization and calibration_method."""
        if recipe.backend != self.name:
            raise BackendError(
                f"recipe for backend {recipe.backend!r} given to the trt backend; build it with"
                " EngineRecipe(backend='trt', ...)"
            )
        check_precision(recipe.precision)
        max_batch(recipe)
        recipe_streams(recipe)
        seq_buckets(recipe)
        trt = require_tensorrt()
        implicit = hasattr(trt, "IInt8EntropyCalibrator2")
        mode = quantization_mode(recipe, implicit)
        extra = dict(recipe.extra)
        extra.setdefault("streams", 1)
        extra.setdefault("builder_optimization_level", self.options.builder_optimization_level)
        if self.options.workspace_mib is not None:
            extra.setdefault("workspace_mib", self.options.workspace_mib)
        if mode is not None:
            extra["quantization"] = mode
            extra["calibration_method"] = calibration_method(recipe, mode)
        recipe = replace(
            recipe,
            extra=extra,
            model_hash=recipe.model_hash or model_hash(model),
            backend_version=recipe.backend_version or str(trt.__version__),
        )
        if mode is not None and not recipe.calibration_hash:
            if ranges is not None:
                recipe = replace(recipe, calibration_hash=_ranges_hash(ranges))
            elif calibration is not None:
                recipe = replace(recipe, calibration_hash=hash_calibration_feeds(calibration()))
        if mode is not None and ranges is None and calibration is None:
            raise BackendError(
                f"{recipe.precision} needs the calibration set: pass calibration= (a callable"
                f" yielding input feeds of {recipe.workload}'s calibration samples) or ranges="
                " (e.g. read_calibration_cache(path).ranges()) to build, or build fp16"
            )
        return recipe

    def build(
        self,
        model: onnx.ModelProto,
        recipe: EngineRecipe,
        calibration: CalibrationSource | None = None,
        *,
        ranges: Mapping[str, tuple[float, float]] | None = None,
        inputs: Sequence[Any] | None = None,
    ) -> EngineArtifact:
        """Build (or find in the cache) the engine of `recipe` for `model`.

        calibration: feeds of the calibration set (int8/fp8). ranges: per-tensor (min, max) to
        use instead of calibrating (e.g. the calib.cache of another engine of the same model).
        inputs: the model card's input specs for the profiles (default: read from the graph).
        """
        recipe = self.resolve(model, recipe, calibration, ranges)
        final = self.engine_dir(recipe)
        if _is_complete(final, recipe):
            log.info("engine cache hit: %s", final)
            return EngineArtifact(recipe=recipe, path=final / ENGINE_FILE, cache_hit=True)
        trt = require_tensorrt()
        mode = recipe.extra.get("quantization")
        method = recipe.extra.get("calibration_method")
        profiles = profiles_for(
            inputs if inputs is not None else model_inputs(model),
            recipe.batch_sizes,
            recipe_streams(recipe),
            seq_buckets(recipe),
            recipe.extra.get("dims"),
        )
        strongly_typed = bool(recipe.extra.get("strongly_typed", False))
        cache_path = self.timing_cache_path()
        log.info("building %s", final)
        try:
            with AtomicResultDir(final) as tmp:
                calibrator = None
                if mode == "explicit":
                    if ranges is None:
                        assert calibration is not None  # resolve() checked
                        with tempfile.TemporaryDirectory(prefix=".calib-", dir=final.parent) as s:
                            ranges = compute_ranges(model, calibration, str(method), Path(s))
                    model = _insert_qdq(model, ranges, recipe.precision)
                elif mode == "implicit":
                    from mlperf_trt.backends.trt.runtime import make_calibrator

                    header = trt_cache_header(str(trt.__version__), str(method))
                    calibrator = make_calibrator(
                        str(method), calibration, dict(model_inputs(model)), header, ranges
                    )
                try:
                    parsed = parse_onnx(model, self.options.verbose, strongly_typed)
                    timing = cache_path.read_bytes() if cache_path.is_file() else None
                    config = make_config(
                        parsed.builder,
                        recipe,
                        self.options,
                        calibrator,
                        profiles=profiles,
                        timing_cache=timing,
                        strongly_typed=strongly_typed,
                    )
                    try:
                        plan = build_serialized(parsed, config)
                    except BackendError:
                        if calibrator is not None:  # the calibration source's error comes first
                            calibrator.raise_error()
                        raise
                    if calibrator is not None:
                        calibrator.raise_error()
                        if ranges is None:
                            _, ranges = from_trt_calibration_cache(calibrator.require_written())
                finally:
                    if calibrator is not None:
                        calibrator.close()
                if self.options.timing_cache:
                    save_timing_cache(config, cache_path)
                (tmp / ENGINE_FILE).write_bytes(plan)
                if mode is not None:
                    assert ranges is not None
                    write_calibration_cache(
                        tmp / CALIBRATION_FILE,
                        str(method),
                        recipe.model_hash,
                        recipe.calibration_hash,
                        ranges,
                    )
                record: dict[str, Any] = recipe.to_json()
                record.update(
                    digest=recipe.digest(),
                    tensorrt=str(trt.__version__),
                    created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                    engine_file=ENGINE_FILE,
                    profiles=[p.to_json() for p in profiles],
                    files={p.name: file_entry(p) for p in sorted(tmp.iterdir()) if p.is_file()},
                )
                atomic_write_json(tmp / RECIPE_FILE, record)  # last: it marks the build complete
        except (ResultsError, OSError) as err:
            raise BackendError(f"could not write the engine folder {final}: {err}") from err
        return EngineArtifact(recipe=recipe, path=final / ENGINE_FILE, cache_hit=False)

    def calibration_cache(self, artifact: EngineArtifact) -> dict[str, tuple[float, float]]:
        """The ranges of an int8/fp8 engine's calib.cache (BackendError if it has none)."""
        if artifact.path is None:
            raise BackendError("the artifact has no engine folder; build the engine first")
        return read_calibration_cache(Path(artifact.path).parent / CALIBRATION_FILE).ranges()

    def load(self, artifact: EngineArtifact, device: int = 0, stream: int = 0) -> TrtExecutor:
        """A new executor on `device` using the profiles of stream index `stream` (0 .. the
        recipe's streams - 1). Executors of one engine and device share the deserialised engine;
        two live executors must not use the same stream index (TensorRT runs one context per
        profile at a time)."""
        from mlperf_trt.backends.trt.runtime import TrtExecutor, deserialize_engine

        if artifact.path is None or not Path(artifact.path).is_file():
            raise BackendError(
                f"engine file {artifact.path} does not exist; build the engine first"
                " (python -m mlperf_trt build --backend trt)"
            )
        streams = recipe_streams(artifact.recipe)
        if isinstance(stream, bool) or not isinstance(stream, int) or not 0 <= stream < streams:
            raise BackendError(
                f"stream index {stream!r} out of range: the engine was built for {streams}"
                " stream(s) (recipe extra 'streams'); rebuild with more streams"
            )
        key = (Path(artifact.path).resolve(), int(device))
        with self._lock:
            engine = self._engines.get(key)
            if engine is None:
                engine = deserialize_engine(Path(artifact.path), int(device), self.options.verbose)
                self._engines[key] = engine
        return TrtExecutor(engine, int(device), stream, streams, self.options)
