"""What a TensorRT engine is made of, as plain values: flags, profiles, paths, calibration bytes.

Nothing here imports TensorRT, so every rule that decides an engine's bytes is testable on a
machine without it (DESIGN §5; STYLE: "engine building as small composable steps whose recipe is
a value you can hash and log"). `builder.py` turns these values into TensorRT calls.

Optimisation profiles. TensorRT lets one execution context run at a time per profile, so an
engine that serves S concurrent streams holds S groups of profiles, and stream s uses only group s
(profiles s*K .. s*K+K-1). A group has one profile per sequence-length bucket (K = number of
buckets in `recipe.extra["seq_buckets"]`, or K = 1): the batch axis ("N") ranges over
[1, max batch] with the kernels tuned for the max batch (opt = max), and the sequence axis of
bucket b ranges over (previous bucket, b] with opt = max = b, so a batch padded to its bucket runs
on kernels tuned for exactly its shape.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlperf_trt.backends.base import EngineRecipe
from mlperf_trt.backends.calibration import CALIBRATION_METHODS, INT8_MAX, symmetric_scale
from mlperf_trt.backends.engine_dir import RECIPE_FILE
from mlperf_trt.errors import BackendError, closest

__all__ = [
    "CALIBRATION_FILE",
    "ENGINE_FILE",
    "QUANTIZATION_MODES",
    "RECIPE_FILE",
    "SUPPORTED_PRECISIONS",
    "TIMING_CACHE_FILE",
    "PrecisionFlags",
    "Profile",
    "TensorShapeRange",
    "TrtOptions",
    "calibration_method",
    "engine_dir_name",
    "from_trt_calibration_cache",
    "max_batch",
    "precision_flags",
    "profiles_for",
    "quantization_mode",
    "recipe_streams",
    "seq_buckets",
    "timing_cache_path",
    "to_trt_calibration_cache",
    "trt_cache_header",
    "trt_version_code",
]

ENGINE_FILE = "engine.plan"
CALIBRATION_FILE = "calib.cache"
TIMING_CACHE_FILE = "timing.cache"

SUPPORTED_PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "bf16", "int8", "fp8")
# implicit: TensorRT's own INT8 calibrator (IInt8Calibrator; deprecated in TensorRT 10).
# explicit: QuantizeLinear/DequantizeLinear pairs inserted in the ONNX graph before parsing.
QUANTIZATION_MODES: tuple[str, ...] = ("implicit", "explicit")
# TensorRT's implicit calibrators: entropy -> IInt8EntropyCalibrator2,
# minmax -> IInt8MinMaxCalibrator.
_IMPLICIT_METHODS: tuple[str, ...] = ("entropy", "minmax")
DEFAULT_CALIBRATION_METHOD = "entropy"
_BATCH_AXIS = "N"


@dataclass(frozen=True)
class TrtOptions:
    """Settings of the TensorRT backend that are not part of a model's recipe.

    The build settings (`builder_optimization_level`, `workspace_mib`) change the engine's bytes,
    so `TrtBackend.build` copies them into the recipe's `extra` (where the caller did not set
    them) and they take part in the digest that decides cache hits. The run settings
    (`cuda_graphs`) only affect executors.

    builder_optimization_level: 0-5 (TensorRT's default is 3; higher searches more tactics).
    workspace_mib: the builder's workspace pool limit in MiB (None: TensorRT's default, the whole
        device memory).
    cuda_graphs: capture each (profile, input shapes) into a CUDA graph after its first run, and
        replay the graph from then on.
    timing_cache: share one timing cache per system (engines/<system_id>/timing.cache) between
        builds, which makes rebuilds of similar engines much faster.
    verbose: TensorRT's log at VERBOSE instead of WARNING (into the `logging` module).
    """

    builder_optimization_level: int = 3
    workspace_mib: int | None = None
    cuda_graphs: bool = True
    timing_cache: bool = True
    verbose: bool = False

    def __post_init__(self) -> None:
        level = self.builder_optimization_level
        if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= 5:
            raise BackendError(
                f"TrtOptions.builder_optimization_level is {level!r}: expected an integer 0-5"
                " (TensorRT's default is 3)"
            )
        mib = self.workspace_mib
        if mib is not None and (isinstance(mib, bool) or not isinstance(mib, int) or mib < 1):
            raise BackendError(
                f"TrtOptions.workspace_mib is {mib!r}: expected a positive integer (MiB) or None"
                " for TensorRT's default"
            )


@dataclass(frozen=True)
class PrecisionFlags:
    """Names of `tensorrt.BuilderFlag` members to set and to clear for a precision."""

    set: tuple[str, ...]
    clear: tuple[str, ...]


# fp32 clears TF32 so that FP32 engines compute in full FP32 (their outputs are compared with
# ONNX Runtime's FP32 ones). INT8 and FP8 allow FP16 as well, so that layers without an INT8/FP8
# kernel fall back to FP16 rather than FP32, as vendor submissions build them.
_FLAGS: dict[str, PrecisionFlags] = {
    "fp32": PrecisionFlags(set=(), clear=("TF32",)),
    "fp16": PrecisionFlags(set=("FP16",), clear=()),
    "bf16": PrecisionFlags(set=("BF16",), clear=()),
    "int8": PrecisionFlags(set=("INT8", "FP16"), clear=()),
    "fp8": PrecisionFlags(set=("FP8", "FP16"), clear=()),
}


def check_precision(precision: str) -> str:
    if precision not in SUPPORTED_PRECISIONS:
        raise BackendError(
            f"precision {precision!r} is not supported by the trt backend: expected one of"
            f" {', '.join(SUPPORTED_PRECISIONS)}{closest(str(precision), SUPPORTED_PRECISIONS)}"
        )
    return precision


def precision_flags(precision: str) -> PrecisionFlags:
    """The builder flags of a precision (fp32: TF32 off; int8/fp8: plus FP16 fallback)."""
    return _FLAGS[check_precision(precision)]


def max_batch(recipe: EngineRecipe) -> int:
    sizes = recipe.batch_sizes
    if not sizes or any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in sizes):
        raise BackendError(
            f"recipe batch_sizes {sizes!r}: expected one or more positive integers, e.g. (8,)"
        )
    return max(sizes)


def _positive_int(value: Any, what: str, example: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BackendError(f"{what} is {value!r}: expected a positive integer, e.g. {example}")
    return value


def recipe_streams(recipe: EngineRecipe) -> int:
    """How many concurrent executors (streams) the engine serves: `extra["streams"]`, default 1."""
    return _positive_int(recipe.extra.get("streams", 1), "recipe extra 'streams'", "2")


def seq_buckets(recipe: EngineRecipe) -> tuple[int, ...]:
    """The sequence-length buckets of `extra["seq_buckets"]`, strictly increasing; () if none."""
    raw = recipe.extra.get("seq_buckets")
    if raw is None:
        return ()
    if isinstance(raw, (str, bytes)) or not isinstance(raw, Iterable):
        raise BackendError(
            f"recipe extra 'seq_buckets' is {raw!r}: expected a list of sequence lengths,"
            " e.g. [128, 256, 384]"
        )
    buckets = tuple(_positive_int(b, "a recipe extra 'seq_buckets' entry", "128") for b in raw)
    if not buckets or any(a >= b for a, b in zip(buckets, buckets[1:], strict=False)):
        raise BackendError(
            f"recipe extra 'seq_buckets' is {list(buckets)}: expected strictly increasing lengths,"
            " e.g. [128, 256, 384]"
        )
    return buckets


def quantization_mode(recipe: EngineRecipe, implicit_available: bool) -> str | None:
    """'implicit' or 'explicit' for int8/fp8, None for float precisions.

    `extra["quantization"]` chooses; the default is implicit calibration where TensorRT still has
    it (IInt8EntropyCalibrator2 exists) and explicit Q/DQ where it does not. FP8 exists only as
    explicit quantisation in TensorRT.
    """
    if recipe.precision not in ("int8", "fp8"):
        if "quantization" in recipe.extra:
            raise BackendError(
                f"recipe extra 'quantization' is set for precision {recipe.precision!r}: it only"
                " applies to int8 and fp8; remove it"
            )
        return None
    raw = recipe.extra.get("quantization")
    if raw is None:
        return "implicit" if recipe.precision == "int8" and implicit_available else "explicit"
    if raw not in QUANTIZATION_MODES:
        raise BackendError(
            f"recipe extra 'quantization' is {raw!r}: expected one of"
            f" {', '.join(QUANTIZATION_MODES)}{closest(str(raw), QUANTIZATION_MODES)}"
        )
    if raw == "implicit" and recipe.precision == "fp8":
        raise BackendError(
            "recipe extra 'quantization' is 'implicit' for fp8: TensorRT builds FP8 only from"
            " explicit Q/DQ graphs; use 'explicit'"
        )
    if raw == "implicit" and not implicit_available:
        raise BackendError(
            "recipe extra 'quantization' is 'implicit' but this TensorRT has no implicit INT8"
            " calibration (tensorrt.IInt8EntropyCalibrator2 is gone); use 'explicit'"
        )
    return str(raw)


def calibration_method(recipe: EngineRecipe, mode: str | None) -> str | None:
    """The calibration method for a quantised recipe (`extra["calibration_method"]`)."""
    if mode is None:
        return None
    method = str(recipe.extra.get("calibration_method", DEFAULT_CALIBRATION_METHOD))
    allowed = _IMPLICIT_METHODS if mode == "implicit" else CALIBRATION_METHODS
    if method not in allowed:
        raise BackendError(
            f"recipe extra 'calibration_method' is {method!r}: with {mode} quantisation expected"
            f" one of {', '.join(allowed)}{closest(method, allowed)}"
            + (" (percentile needs quantization='explicit')" if method == "percentile" else "")
        )
    return method


def engine_dir_name(recipe: EngineRecipe) -> str:
    """trt-<precision>-b<max batch>-<digest[:10]> (docs/engines.md)."""
    check_precision(recipe.precision)
    return f"trt-{recipe.precision}-b{max_batch(recipe)}-{recipe.digest()[:10]}"


def timing_cache_path(engines_root: Path, system_id: str) -> Path:
    """One timing cache per system: kernel timings are a property of the GPU and TensorRT."""
    return Path(engines_root) / system_id / TIMING_CACHE_FILE


@dataclass(frozen=True)
class TensorShapeRange:
    """One input's (min, opt, max) shapes in a profile."""

    name: str
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]


@dataclass(frozen=True)
class Profile:
    """One optimisation profile: the stream it belongs to, its bucket, and every input's range."""

    stream: int
    seq_len: int | None
    shapes: tuple[TensorShapeRange, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "stream": self.stream,
            "seq_len": self.seq_len,
            "shapes": {
                s.name: {"min": list(s.min), "opt": list(s.opt), "max": list(s.max)}
                for s in self.shapes
            },
        }


def _shape_of(spec: Any) -> tuple[str, tuple[int | str, ...]]:
    if isinstance(spec, tuple) and len(spec) == 2:
        name, shape = spec
    else:  # a benchmarks.base.TensorSpec, or anything with .name and .shape
        name, shape = getattr(spec, "name", None), getattr(spec, "shape", None)
    if not isinstance(name, str) or shape is None:
        raise BackendError(
            f"input spec {spec!r}: expected (name, shape) or a TensorSpec, e.g."
            " ('input_tensor:0', ('N', 3, 224, 224))"
        )
    dims: list[int | str] = []
    for d in shape:
        if isinstance(d, bool) or not isinstance(d, (int, str)):
            raise BackendError(f"input {name!r}: dimension {d!r} must be an int or a name")
        dims.append(d)
    return name, tuple(dims)


def profiles_for(
    inputs: Sequence[Any],
    batch_sizes: Sequence[int],
    streams: int = 1,
    buckets: Sequence[int] = (),
    dims: Mapping[str, int] | None = None,
) -> tuple[Profile, ...]:
    """The optimisation profiles of an engine, stream-major (stream s owns profiles s*K..s*K+K-1).

    `inputs`: (name, shape) pairs or TensorSpecs of the model card: "N" is the batch axis, ints
    are fixed sizes, other names are dynamic sizes. `buckets`: sequence-length buckets; they
    apply to every axis named "seq" (or any other dynamic name) and, for cards whose sequence
    length is a fixed int (bert: [N, 384]), to axis 1 of every input of rank >= 2, whose fixed
    size must then be at least the largest bucket. `dims`: sizes for dynamic names without
    buckets (e.g. {"seq": 2048}): those get min 1, opt = max = the size.
    """
    top = max(_positive_int(b, "batch size", "8") for b in batch_sizes) if batch_sizes else 0
    if top == 0:
        raise BackendError("no batch sizes: the recipe needs at least one, e.g. batch_sizes=(8,)")
    _positive_int(streams, "streams", "1")
    specs = [_shape_of(s) for s in inputs]
    if not specs:
        raise BackendError("the model has no inputs to make optimisation profiles for")
    dims = dict(dims or {})
    named_seq = any(isinstance(d, str) and d != _BATCH_AXIS for _, sh in specs for d in sh[1:])
    buckets = tuple(buckets)
    profiles: list[Profile] = []
    for stream in range(streams):
        for index, bucket in enumerate(buckets or (None,)):
            low = buckets[index - 1] + 1 if bucket is not None and index > 0 else 1
            ranges = []
            for name, shape in specs:
                triples = [
                    _axis_range(name, axis, d, top, bucket, low, buckets, named_seq, dims)
                    for axis, d in enumerate(shape)
                ]
                ranges.append(
                    TensorShapeRange(
                        name,
                        tuple(t[0] for t in triples),
                        tuple(t[1] for t in triples),
                        tuple(t[2] for t in triples),
                    )
                )
            profiles.append(Profile(stream, bucket, tuple(ranges)))
    return tuple(profiles)


def _axis_range(
    name: str,
    axis: int,
    d: int | str,
    top: int,
    bucket: int | None,
    low: int,
    buckets: tuple[int, ...],
    named_seq: bool,
    dims: Mapping[str, int],
) -> tuple[int, int, int]:
    """(min, opt, max) of one axis of one input in one profile (rules: profiles_for)."""
    if axis == 0 and d == _BATCH_AXIS:
        return 1, top, top
    if axis == 0 and isinstance(d, int) and d != top:
        raise BackendError(
            f"input {name!r} has a fixed batch dimension {d}, but the recipe's largest batch is"
            f" {top}: export the model with a dynamic axis 0 (or build with batch_sizes=({d},))"
        )
    if isinstance(d, str):
        if bucket is not None:
            return low, bucket, bucket
        if d in dims:
            size = _positive_int(dims[d], f"size of dimension {d!r}", "2048")
            return 1, size, size
        raise BackendError(
            f"input {name!r} has the dynamic dimension {d!r} (axis {axis}): give its size in"
            f" recipe extra 'dims' (e.g. {{'{d}': 2048}}) or sequence buckets in recipe extra"
            " 'seq_buckets'"
        )
    if bucket is not None and not named_seq and axis == 1:
        if d < buckets[-1]:
            raise BackendError(
                f"input {name!r} has a fixed sequence length {d} but the largest bucket in"
                f" recipe extra 'seq_buckets' is {buckets[-1]}: expected buckets of at most {d}"
            )
        return low, bucket, bucket
    return d, d, d


# --- TensorRT's calibration cache <-> calib.cache (backends/calibration.py) ---------------------
#
# TensorRT's implicit calibrators read and write a text cache: a header line
# "TRT-<version code>-<algorithm>" and one line per tensor "<name>: <hex>", where <hex> is the
# big-endian IEEE-754 float32 bit pattern of the tensor's scale (dynamic range / 127). TensorRT
# recalibrates when the header's version or algorithm differ from its own.

_ALGORITHMS = {"entropy": "EntropyCalibration2", "minmax": "MinMaxCalibration"}
_HEADER = re.compile(r"^TRT-(\d+)-(\w+)$")
_LINE = re.compile(r"^(.*): ([0-9a-fA-F]{1,8})$")


def trt_version_code(version: str) -> int:
    """NV_TENSORRT_VERSION of a version string: major*10000+minor*100+patch from TensorRT 10
    on (10.3.0 -> 100300), major*1000+minor*100+patch before (8.6.1 -> 8601)."""
    match = re.match(r"^(\d+)\.(\d+)(?:\.(\d+))?", version)
    if match is None:
        raise BackendError(f"TensorRT version {version!r}: expected 'major.minor.patch'")
    major, minor, patch = (int(g or 0) for g in match.groups())
    return major * (10000 if major >= 10 else 1000) + minor * 100 + patch


def trt_cache_header(trt_version: str, method: str) -> str:
    if method not in _ALGORITHMS:
        raise BackendError(
            f"TensorRT has no implicit calibrator for method {method!r}: expected one of"
            f" {', '.join(_ALGORITHMS)}"
        )
    return f"TRT-{trt_version_code(trt_version)}-{_ALGORITHMS[method]}"


def to_trt_calibration_cache(ranges: Mapping[str, tuple[float, float]], header: str) -> bytes:
    """TensorRT's cache bytes for per-tensor ranges (scale = max(|min|, |max|) / 127)."""
    lines = [header]
    for name, (lo, hi) in ranges.items():
        if "\n" in name:
            raise BackendError(f"tensor name {name!r} contains a newline; TensorRT cannot read it")
        scale = symmetric_scale(float(lo), float(hi))
        bits = struct.unpack(">I", struct.pack(">f", scale))[0]
        lines.append(f"{name}: {bits:08x}")
    return ("\n".join(lines) + "\n").encode()


def from_trt_calibration_cache(data: bytes) -> tuple[str, dict[str, tuple[float, float]]]:
    """(header, ranges) from TensorRT's cache bytes; ranges are symmetric: (-127 s, 127 s)."""
    try:
        text = bytes(data).decode()
    except UnicodeDecodeError as err:
        raise BackendError(f"TensorRT calibration cache is not text: {err}") from err
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or not _HEADER.match(lines[0].strip()):
        first = lines[0][:80] if lines else ""
        raise BackendError(
            f"TensorRT calibration cache starts with {first!r}: expected a header like"
            " 'TRT-100300-EntropyCalibration2'"
        )
    ranges: dict[str, tuple[float, float]] = {}
    for number, line in enumerate(lines[1:], start=2):
        match = _LINE.match(line.rstrip())
        if match is None:
            raise BackendError(
                f"TensorRT calibration cache line {number} is {line[:80]!r}: expected"
                " '<tensor name>: <8 hex digits>'"
            )
        scale = struct.unpack(">f", bytes.fromhex(match.group(2).zfill(8)))[0]
        if not math.isfinite(scale) or scale < 0:
            raise BackendError(
                f"TensorRT calibration cache line {number}: scale {scale} of tensor"
                f" {match.group(1)!r} is not a finite non-negative number"
            )
        ranges[match.group(1)] = (-INT8_MAX * scale, INT8_MAX * scale)
    return lines[0].strip(), ranges
