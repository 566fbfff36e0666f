"""The ONNX Runtime backend: FP32 and INT8 engines on the CPU (DESIGN §3, §5).

An "engine" here is an ONNX file that ONNX Runtime's CPU execution provider runs: the model itself
for fp32, a statically quantised QDQ model for int8 (plus its `calib.cache`). Engines live in

    engines_root/<system_id>/<benchmark>/ort-<precision>-b<max batch>-<digest[:10]>/
        model.onnx, calib.cache (int8), recipe.json (written last)

A build happens in a hidden `.partial` sibling that is renamed into place only when every file,
recipe.json last, was written, so an interrupted build never looks complete. Layout and fields:
docs/engines.md.

onnx and onnxruntime are imported inside the functions that need them, so that importing this
module (and `backends.availability("ort")`) never fails on a machine without them.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import io
import logging
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlperf_trt.backends.base import EngineArtifact, EngineRecipe
from mlperf_trt.backends.calibration import (
    CALIBRATION_METHODS,
    hash_calibration_feeds,
    ranges_from_tensors_data,
    write_calibration_cache,
)
from mlperf_trt.backends.engine_dir import RECIPE_FILE, check_name, complete_record, file_entry
from mlperf_trt.errors import BackendError, ResultsError, closest
from mlperf_trt.results.layout import AtomicResultDir, atomic_write_json

if TYPE_CHECKING:
    import onnx

__all__ = [
    "CALIBRATION_FILE",
    "INT8_LAYOUT",
    "MODEL_FILE",
    "RECIPE_FILE",
    "SUPPORTED_PRECISIONS",
    "CalibrationSource",
    "Int8Layout",
    "OrtBackend",
    "OrtExecutor",
    "OrtOptions",
    "availability",
]

log = logging.getLogger(__name__)

SUPPORTED_PRECISIONS: tuple[str, ...] = ("fp32", "int8")
MODEL_FILE = "model.onnx"
MODEL_DATA_FILE = "model.onnx.data"  # external weights, only for models over the protobuf limit
CALIBRATION_FILE = "calib.cache"
_PROVIDER = "CPUExecutionProvider"
# protobuf cannot serialise a message of 2 GiB or more; larger models keep weights beside the file.
_EXTERNAL_DATA_BYTES = 1 << 30

# Yields input feeds (batches) of the calibration set; called once per pass over the set.
CalibrationSource = Callable[[], Iterable[Mapping[str, np.ndarray]]]


@dataclass(frozen=True)
class Int8Layout:
    """How onnxruntime.quantization.quantize_static writes an INT8 model."""

    quant_format: str  # "QDQ" | "QOperator"
    activation_type: str  # onnxruntime.quantization.QuantType member name
    weight_type: str
    per_channel: bool
    reduce_range: bool
    # Keep the classifier head (what follows the last Conv: pooling, Gemm/MatMul, Softmax,
    # ArgMax) in float. Quantising 1001 logits to 256 levels makes ArgMax decide ties by index:
    # on the built-in ResNet50 (tiny, 400 synthetic images) top-1 agreement with FP32 rose from
    # 90.8% to 97.0% (min-max) with the head in float, at no measurable cost in speed.
    float_head: bool = True


# Measured with onnxruntime 1.32 on the 2-core Xeon (AVX-512 VNNI + AMX-INT8) this package was
# developed on: 13-conv ResNet-style stack (3x3 and 1x1 convs, 64..256 channels at 56x56), batch 8,
# intra_op_threads 2, best of 60 runs, error against FP32 on a model whose per-channel weight and
# activation ranges spread like a BN-folded CNN (rel. L2 error of the outputs / per-pixel argmax
# agreement):
#   FP32                                27.5 ms
#   QDQ       U8S8 per-channel          10.2 ms   0.089 / 90.0 %   <- chosen
#   QDQ       U8S8 per-channel rr       10.4 ms   0.136 / 84.8 %
#   QDQ       U8S8 per-tensor           11.5 ms   0.305 / 62.4 %
#   QDQ       S8S8 per-channel          23.2 ms   0.089 / 90.0 %
#   QOperator U8S8 per-channel          10.1 ms   0.089 / 90.0 %
# U8 activations with S8 weights is the layout ORT's x86 kernels (MLAS VNNI/AMX) run natively: the
# QDQ U8S8 graph is fused at load into exactly the same QLinearConv/QLinearAdd graph as the
# QOperator one, so both run at the same speed. With S8 activations ORT leaves Add and some Convs
# in float between Q/DQ pairs (2.3x slower). reduce_range (7-bit weights, for pre-VNNI CPUs) buys
# nothing here and costs accuracy; per-channel weights cost no measurable time and cut the error
# 3x. QDQ rather than QOperator because it is the same speed and the explicit-quantisation form
# TensorRT also reads.
INT8_LAYOUT = Int8Layout(
    quant_format="QDQ",
    activation_type="QUInt8",
    weight_type="QInt8",
    per_channel=True,
    reduce_range=False,
)


def availability() -> tuple[bool, str]:
    """(usable here, what it uses or why not); never raises."""
    try:
        import onnxruntime as ort
    except Exception as err:  # noqa: BLE001 - any import failure means "not usable"
        return False, f"onnxruntime is not importable ({err}); pip install onnxruntime"
    try:
        import onnx  # noqa: F401 - needed to build engines
    except Exception as err:  # noqa: BLE001
        return False, f"onnx is not importable ({err}); pip install onnx"
    try:
        providers = list(ort.get_available_providers())
    except Exception as err:  # noqa: BLE001
        return False, f"onnxruntime {ort.__version__} cannot list its providers: {err}"
    if _PROVIDER not in providers:
        return False, f"onnxruntime {ort.__version__} lacks {_PROVIDER} (has {providers})"
    return True, f"onnxruntime {ort.__version__}, providers: {_PROVIDER}"


@dataclass(frozen=True)
class OrtOptions:
    """Per-executor threading. `intra_op_threads` 0 lets ONNX Runtime use every core.

    allow_spinning: whether idle intra-op pool threads spin waiting for work. Off by default:
    measured on 2 shared cores (onnxruntime 1.32, the ResNet-style stack of INT8_LAYOUT's note),
    spinning changes a lone executor's throughput by no more than the noise (batch 1, 2 threads,
    spin on vs off: FP32 212 vs 192 samples/s, INT8 368 vs 411) but loses 30-60% as soon as
    executors' threads outnumber the cores, the harness's normal case (2 executors x 2 threads,
    medians of 4 runs: batch 1 FP32 93 vs 146 samples/s, INT8 278 vs 432; batch 8 FP32 112 vs
    147, INT8 280 vs 448). With intra_op_threads 1 there is no pool and it changes nothing. Turn
    it on only for a lone executor whose threads fit the cores (SingleStream latency).
    """

    intra_op_threads: int = 1
    inter_op_threads: int = 1
    allow_spinning: bool = False

    def __post_init__(self) -> None:
        for name in ("intra_op_threads", "inter_op_threads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise BackendError(
                    f"OrtOptions.{name} is {value!r}: expected an integer >= 0 (0 lets onnxruntime"
                    " choose)"
                )


def model_hash(model: onnx.ModelProto) -> str:
    """sha256 of the model's deterministic serialisation (the recipe's model_hash)."""
    if model.ByteSize() >= _EXTERNAL_DATA_BYTES:
        # Too large for one protobuf string: the graph without weights, then each weight.
        import onnx as _onnx

        digest = hashlib.sha256()
        stripped = _onnx.ModelProto()
        stripped.CopyFrom(model)
        stripped.graph.ClearField("initializer")
        digest.update(stripped.SerializeToString(deterministic=True))
        for init in model.graph.initializer:
            digest.update(init.SerializeToString(deterministic=True))
        return digest.hexdigest()
    return hashlib.sha256(model.SerializeToString(deterministic=True)).hexdigest()


def _save_model(model: onnx.ModelProto, path: Path) -> None:
    import onnx as _onnx

    if model.ByteSize() >= _EXTERNAL_DATA_BYTES:
        _onnx.save_model(
            model,
            str(path),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=path.name + ".data",
        )
    else:
        path.write_bytes(model.SerializeToString(deterministic=True))


class _FeedReader:
    """A CalibrationDataReader over a CalibrationSource; remembers an error the source raised.

    With `per_sample`, batches are split into single samples: ORT's histogram calibrators
    (entropy, percentile) fail on batches of different sizes (onnxruntime 1.32: "inhomogeneous
    shape" when the last batch is shorter).
    """

    def __init__(self, source: CalibrationSource, per_sample: bool = False) -> None:
        self.batches = 0
        self.error: BaseException | None = None
        self._per_sample = per_sample
        self._pending: list[dict[str, np.ndarray]] = []
        try:
            self._feeds = iter(source())
        except BaseException as err:
            self.error = err
            raise

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._pending:
            return self._pending.pop(0)
        try:
            feed = next(self._feeds, None)
        except BaseException as err:
            self.error = err
            raise
        if feed is None:
            return None
        self.batches += 1
        arrays = {name: np.asarray(value) for name, value in feed.items()}
        if not self._per_sample:
            return arrays
        count = min(len(a) for a in arrays.values())
        self._pending = [{n: a[i : i + 1] for n, a in arrays.items()} for i in range(count)]
        return self._pending.pop(0) if self._pending else None


class OrtBackend:
    name = "ort"

    def __init__(
        self,
        engines_root: Path,
        system_id: str,
        benchmark: str,
        options: OrtOptions = OrtOptions(),  # noqa: B008 - frozen, so sharing it is safe
    ) -> None:
        self.engines_root = Path(engines_root)
        self.system_id = check_name(system_id, "system id")
        self.benchmark = check_name(benchmark, "benchmark name")
        self.options = options

    def availability(self) -> tuple[bool, str]:
        return availability()

    def engine_dir(self, recipe: EngineRecipe) -> Path:
        """engines_root/system_id/benchmark/ort-<precision>-b<max batch>-<digest[:10]> (DESIGN §5).

        The digest is the recipe's as given: pass the recipe that build() returned in its artifact
        (build fills an empty model_hash and calibration_hash first).
        """
        _check_precision(recipe.precision)
        name = f"ort-{recipe.precision}-b{_max_batch(recipe)}-{recipe.digest()[:10]}"
        return self.engines_root / self.system_id / self.benchmark / name

    def build(
        self,
        model: onnx.ModelProto,
        recipe: EngineRecipe,
        calibration: CalibrationSource | None = None,
    ) -> EngineArtifact:
        """Build (or find in the cache) the engine of `recipe` for `model`."""
        if recipe.backend != self.name:
            raise BackendError(
                f"recipe for backend {recipe.backend!r} given to the ort backend; build it with"
                f" EngineRecipe(backend='ort', ...)"
            )
        _check_precision(recipe.precision)
        _max_batch(recipe)
        method = _calibration_method(recipe)
        dynamic = recipe.precision == "int8" and _int8_mode(recipe) == "dynamic"
        if recipe.precision == "int8" and calibration is None and not dynamic:
            raise BackendError(
                f"INT8 needs the calibration set: pass calibration= (a callable yielding input"
                f" feeds of {recipe.workload}'s calibration samples) to build, or build fp32"
            )
        if not recipe.model_hash:
            recipe = replace(recipe, model_hash=model_hash(model))
        if recipe.precision == "int8" and not recipe.calibration_hash and not dynamic:
            # The recipe decides cache hits, so it must change when the calibration set does: hash
            # the feeds (one extra pass that only reads) when the caller did not give the hash.
            assert calibration is not None
            recipe = replace(recipe, calibration_hash=hash_calibration_feeds(calibration()))
        final = self.engine_dir(recipe)
        quantization: dict[str, Any] | None = None
        if dynamic:
            quantization = {
                "mode": "dynamic",
                "weights": "QInt8 per channel",
                "ops": ["MatMul"],
                "float_head": "last MatMul",
            }
        elif recipe.precision == "int8":
            quantization = _quantization_record(method)
        if _is_complete(final, recipe, quantization):
            log.info("engine cache hit: %s", final)
            return EngineArtifact(recipe=recipe, path=final / MODEL_FILE, cache_hit=True)

        log.info("building %s", final)
        try:
            with AtomicResultDir(final) as tmp:
                if recipe.precision == "fp32":
                    _save_model(model, tmp / MODEL_FILE)
                elif dynamic:
                    assert quantization is not None
                    quantization["preprocessed"] = _quantize_dynamic(
                        model, tmp, scratch_parent=final.parent
                    )
                else:
                    assert calibration is not None and quantization is not None
                    quantization["preprocessed"] = _quantize(
                        model, recipe, calibration, method, tmp, scratch_parent=final.parent
                    )
                files = {p.name: file_entry(p) for p in sorted(tmp.iterdir()) if p.is_file()}
                record: dict[str, Any] = recipe.to_json()
                record.update(
                    digest=recipe.digest(),
                    onnxruntime=_ort_version(),
                    created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                    engine_file=MODEL_FILE,
                    files=files,
                )
                if quantization is not None:
                    record["quantization"] = quantization
                atomic_write_json(tmp / RECIPE_FILE, record)  # last: it marks the build complete
        except ResultsError as err:
            raise BackendError(f"could not write the engine folder {final}: {err}") from err
        return EngineArtifact(recipe=recipe, path=final / MODEL_FILE, cache_hit=False)

    def load(self, artifact: EngineArtifact, device: int = 0) -> OrtExecutor:
        """A new executor (one per worker). `device` is ignored: the CPU provider has one device;
        pinning workers to NUMA nodes is the harness's job."""
        if artifact.path is None or not Path(artifact.path).is_file():
            raise BackendError(
                f"engine file {artifact.path} does not exist; build the engine first"
                " (python -m mlperf_trt build --backend ort)"
            )
        return OrtExecutor(Path(artifact.path), self.options)


class OrtExecutor:
    """One onnxruntime.InferenceSession; thread-confined (one per worker)."""

    def __init__(self, model_path: Path, options: OrtOptions = OrtOptions()) -> None:  # noqa: B008
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = options.intra_op_threads
        so.inter_op_num_threads = options.inter_op_threads
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # Spinning off by default: see OrtOptions for the measurement.
        so.add_session_config_entry(
            "session.intra_op.allow_spinning", "1" if options.allow_spinning else "0"
        )
        self.model_path = Path(model_path)
        try:
            self._session = ort.InferenceSession(str(model_path), so, providers=[_PROVIDER])
        except Exception as err:
            raise BackendError(
                f"onnxruntime cannot load {model_path}: {err}; delete the engine folder and rebuild"
            ) from err
        self.input_names: tuple[str, ...] = tuple(i.name for i in self._session.get_inputs())
        self.output_names: tuple[str, ...] = tuple(o.name for o in self._session.get_outputs())
        self._output_list = list(self.output_names)

    def run(
        self, inputs: Mapping[str, np.ndarray], batch_size: int | None = None
    ) -> dict[str, np.ndarray]:
        """Outputs keyed by name; the batch is the inputs' first dimension (batch_size unused).

        `inputs` are views valid only during the call: onnxruntime reads them while it runs and
        returns freshly allocated outputs, so nothing here refers to them afterwards.
        """
        feeds: dict[str, np.ndarray] = {}
        for name in self.input_names:
            try:
                feeds[name] = inputs[name]
            except KeyError:
                raise BackendError(
                    f"missing input {name!r} for {self.model_path}: expected inputs"
                    f" {list(self.input_names)}, got {sorted(inputs)}{closest(name, inputs)}"
                ) from None
        try:
            # InferenceSession.run releases the GIL while it computes.
            outputs = self._session.run(self._output_list, feeds)
        except Exception as err:
            shapes = {k: (tuple(v.shape), str(v.dtype)) for k, v in feeds.items()}
            raise BackendError(
                f"onnxruntime failed to run {self.model_path} on inputs {shapes}: {err}"
            ) from err
        return dict(zip(self.output_names, outputs, strict=True))


def _ort_version() -> str:
    import onnxruntime as ort

    return str(ort.__version__)


def _check_precision(precision: str) -> None:
    if precision not in SUPPORTED_PRECISIONS:
        raise BackendError(
            f"precision {precision!r} is not supported by the ort backend on the CPU: supported"
            f" precisions are {', '.join(SUPPORTED_PRECISIONS)}"
            f"{closest(precision, SUPPORTED_PRECISIONS)}"
            " (fp16, bf16 and fp8 need --backend trt)"
        )


def _max_batch(recipe: EngineRecipe) -> int:
    sizes = recipe.batch_sizes
    if not sizes or any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in sizes):
        raise BackendError(
            f"recipe batch_sizes {sizes!r}: expected one or more positive integers, e.g. (8,)"
        )
    return max(sizes)


# Entropy (KL) calibration by default: with the head in float, top-1 agreement with FP32 on the
# built-in ResNet50 (tiny, 400 synthetic images, a seeded quarter calibrating) was 98.7% against
# 97.0% for min-max and 97.7% for percentile.
DEFAULT_CALIBRATION_METHOD = "entropy"


def _calibration_method(recipe: EngineRecipe) -> str:
    method = str(recipe.extra.get("calibration_method", DEFAULT_CALIBRATION_METHOD))
    if method not in CALIBRATION_METHODS:
        raise BackendError(
            f"recipe extra calibration_method {method!r}: expected one of"
            f" {', '.join(CALIBRATION_METHODS)}{closest(method, CALIBRATION_METHODS)}"
        )
    return method


# How activations get their INT8 scales: "static" from the calibration set (calib.cache), or
# "dynamic" per batch at run time (weights INT8 per channel, MatMul only). Dynamic is ONNX
# Runtime's own route for transformer encoders on the CPU: on the built-in tiny BERT over a
# synthetic SQuAD set, static QDQ kept F1 94.3-98.4% of FP32 (minmax, entropy, percentile; all
# ops or MatMul only) while dynamic per-channel MatMul kept 99.4-100% (with a float head).
INT8_MODES: tuple[str, ...] = ("static", "dynamic")


def _int8_mode(recipe: EngineRecipe) -> str:
    mode = str(recipe.extra.get("int8_mode", "static"))
    if mode not in INT8_MODES:
        raise BackendError(
            f"recipe extra int8_mode {mode!r}: expected one of {', '.join(INT8_MODES)}"
            f"{closest(mode, INT8_MODES)}"
        )
    return mode


_HEAD_OPS = frozenset(
    {
        "GlobalAveragePool",
        "ReduceMean",
        "Flatten",
        "Reshape",
        "Squeeze",
        "Gemm",
        "MatMul",
        "Softmax",
        "Sigmoid",
        "ArgMax",
    }
)


def _named_model(path: Path) -> onnx.ModelProto:
    """The model at `path` with every unnamed node named (saved back in place if any was)."""
    import onnx as _onnx

    model = _onnx.load(str(path))
    changed = False
    for i, node in enumerate(model.graph.node):
        if not node.name:
            node.name = f"mlperf_trt_node_{i}"
            changed = True
    if changed:
        _save_model(model, path)
    return model


def _matmul_names(path: Path) -> list[str]:
    """Names of the MatMul nodes of the model at `path`, in graph order (nodes named first)."""
    return [n.name for n in _named_model(path).graph.node if n.op_type == "MatMul"]


def _name_nodes_and_find_head(path: Path) -> list[str]:
    """Names every unnamed node of the model at `path` (in place) and returns the names of the
    output head: the nodes of _HEAD_OPS after the last Conv (a CNN's classifier), or, in a model
    without Conv (dlrm-v2's MLPs), the last Gemm/MatMul and the _HEAD_OPS nodes after it."""
    nodes = list(_named_model(path).graph.node)
    convs = [i for i, n in enumerate(nodes) if n.op_type == "Conv"]
    if convs:
        start = convs[-1] + 1
    else:
        gemms = [i for i, n in enumerate(nodes) if n.op_type in ("Gemm", "MatMul")]
        start = gemms[-1] if gemms else len(nodes)
    return [n.name for n in nodes[start:] if n.op_type in _HEAD_OPS]


def _quantization_record(method: str) -> dict[str, Any]:
    return {"layout": asdict(INT8_LAYOUT), "calibration_method": method}


def _last_matmul(path: Path) -> list[str]:
    """The output head kept in float: the graph's last MatMul (bert: the 1024->2 QA head).

    Like the float classifier head of the static layout, and for the same reason: on the tiny
    BERT over a synthetic SQuAD set, F1 relative to FP32 was 93.9% with the head quantised and
    99.6% with it in float, for 0.001% of the compute.
    """
    names = _matmul_names(path)
    return names[-1:]


def _quantize_dynamic(model: onnx.ModelProto, out_dir: Path, scratch_parent: Path) -> bool:
    """Dynamic INT8 (see INT8_MODES) into out_dir/model.onnx; True if pre-processed."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    large = model.ByteSize() >= _EXTERNAL_DATA_BYTES
    with tempfile.TemporaryDirectory(prefix=".quant-", dir=scratch_parent) as scratch_name:
        source = Path(scratch_name) / "fp32.onnx"
        _save_model(model, source)
        prepared = Path(scratch_name) / "prepared.onnx"
        try:
            quant_pre_process(str(source), str(prepared), save_as_external_data=large)
            preprocessed = True
        except Exception as err:  # noqa: BLE001 - an optimisation; quantising still works without
            log.warning("quantisation pre-processing failed (%s); quantising the model as is", err)
            prepared, preprocessed = source, False
        head = _last_matmul(prepared)
        try:
            quantize_dynamic(
                str(prepared),
                str(out_dir / MODEL_FILE),
                weight_type=QuantType.QInt8,
                per_channel=True,
                op_types_to_quantize=["MatMul"],
                nodes_to_exclude=head,
                use_external_data_format=large,
            )
        except Exception as err:
            raise BackendError(f"onnxruntime could not quantise the model to INT8: {err}") from err
    return preprocessed


def _is_complete(final: Path, recipe: EngineRecipe, quantization: dict[str, Any] | None) -> bool:
    """True when `final` holds a finished build of `recipe` with the current INT8 layout."""
    record = complete_record(final, recipe, MODEL_FILE)
    if record is None:
        return False
    if quantization is not None:
        old = record.get("quantization") or {}
        if {k: old.get(k) for k in quantization} != quantization:
            log.info("INT8 layout changed since %s was built; rebuilding", final)
            return False
    return True


def _quantize(
    model: onnx.ModelProto,
    recipe: EngineRecipe,
    calibration: CalibrationSource,
    method: str,
    out_dir: Path,
    scratch_parent: Path,
) -> bool:
    """Static INT8 quantisation into out_dir/model.onnx + calib.cache; True if pre-processed."""
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.calibrate import load_tensors_data
    from onnxruntime.quantization.shape_inference import quant_pre_process

    methods = {
        "minmax": CalibrationMethod.MinMax,
        "percentile": CalibrationMethod.Percentile,
        "entropy": CalibrationMethod.Entropy,
    }
    large = model.ByteSize() >= _EXTERNAL_DATA_BYTES
    with tempfile.TemporaryDirectory(prefix=".quant-", dir=scratch_parent) as scratch_name:
        scratch = Path(scratch_name)
        source = scratch / "fp32.onnx"
        _save_model(model, source)
        # Shape inference and ORT's basic fusions (BatchNormalization into Conv, constant folding)
        # before quantising, so BN is folded into the weights that get per-channel scales.
        prepared = scratch / "prepared.onnx"
        try:
            quant_pre_process(str(source), str(prepared), save_as_external_data=large)
            preprocessed = True
        except Exception as err:  # noqa: BLE001 - an optimisation; quantising still works without
            log.warning("quantisation pre-processing failed (%s); quantising the model as is", err)
            prepared, preprocessed = source, False
        ranges_path = scratch / "ort_ranges.json"
        exclude = _name_nodes_and_find_head(prepared) if INT8_LAYOUT.float_head else []
        reader = _FeedReader(calibration, per_sample=method != "minmax")
        chatter = io.StringIO()  # the histogram calibrators print progress to stdout
        try:
            with contextlib.redirect_stdout(chatter):
                quantize_static(
                    str(prepared),
                    str(out_dir / MODEL_FILE),
                    reader,  # duck-typed CalibrationDataReader (get_next)
                    quant_format=getattr(QuantFormat, INT8_LAYOUT.quant_format),
                    activation_type=getattr(QuantType, INT8_LAYOUT.activation_type),
                    weight_type=getattr(QuantType, INT8_LAYOUT.weight_type),
                    per_channel=INT8_LAYOUT.per_channel,
                    reduce_range=INT8_LAYOUT.reduce_range,
                    calibrate_method=methods[method],
                    use_external_data_format=large,
                    nodes_to_exclude=exclude,
                    # Not CalibMaxIntermediateOutputs: in onnxruntime 1.32 MinMaxCalibrater drops
                    # the batches collected so far when that limit is reached (no merge).
                    calibration_cache_path=str(ranges_path),
                )
        except Exception as err:
            if reader.error is err:
                raise  # the calibration source's own error, unchanged
            if reader.batches == 0:
                raise BackendError(
                    f"the calibration source of {recipe.workload} yielded no batches; INT8 needs"
                    " at least one calibration batch"
                ) from err
            raise BackendError(
                f"onnxruntime could not quantise {recipe.workload} to INT8: {err}"
            ) from err
        log.debug("onnxruntime quantisation output:\n%s", chatter.getvalue())
        # The ranges quantize_static just computed and used, as ORT saved them.
        ranges = ranges_from_tensors_data(load_tensors_data(ranges_path))
    write_calibration_cache(
        out_dir / CALIBRATION_FILE, method, recipe.model_hash, recipe.calibration_hash, ranges
    )
    log.info("calibrated %d tensors on %d batches (%s)", len(ranges), reader.batches, method)
    return preprocessed
