"""The INT8 calibration cache: per-tensor activation ranges, for ORT and TensorRT alike.

One JSON file, `calib.cache`, beside the engine (DESIGN §5; format in docs/engines.md)::

    {"format": "mlperf_trt-calibration-v1",
     "method": "minmax" | "percentile" | "entropy",
     "model_hash": "<sha256 of the FP32 model>",
     "calibration_hash": "<hash of the calibration set>",
     "tensors": {"<tensor name>": {"min": -2.9, "max": 3.1, "scale": 0.0244}, ...}}

`min`/`max` are the ranges the calibrator observed (after the method's clipping, for percentile
and entropy) and are what ONNX Runtime's quantiser turned into its scales and zero points. `scale`
is the symmetric INT8 scale that TensorRT's dynamic range means, max(|min|, |max|) / 127, so a
TensorRT build can call `ITensor.set_dynamic_range(-127 * scale, 127 * scale)` from this file.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlperf_trt.errors import BackendError, ResultsError, closest
from mlperf_trt.results.layout import atomic_write_json

__all__ = [
    "CALIBRATION_FORMAT",
    "CALIBRATION_METHODS",
    "INT8_MAX",
    "CalibrationCache",
    "TensorRange",
    "hash_calibration_feeds",
    "ranges_from_tensors_data",
    "read_calibration_cache",
    "symmetric_scale",
    "write_calibration_cache",
]

CALIBRATION_FORMAT = "mlperf_trt-calibration-v1"
CALIBRATION_METHODS: tuple[str, ...] = ("minmax", "percentile", "entropy")
# Symmetric signed INT8 uses [-127, 127] (TensorRT never produces -128 for activations).
INT8_MAX = 127
# Relative slack when checking a stored scale against its min/max: JSON round-trips doubles exactly,
# so anything beyond float32 rounding means the file was edited by hand.
_SCALE_RTOL = 1e-6


def symmetric_scale(lo: float, hi: float) -> float:
    """The symmetric INT8 scale of a range: max(|lo|, |hi|) / 127 (0.0 for an all-zero tensor)."""
    return max(abs(lo), abs(hi)) / INT8_MAX


@dataclass(frozen=True)
class TensorRange:
    min: float
    max: float
    scale: float


@dataclass(frozen=True)
class CalibrationCache:
    method: str
    model_hash: str
    calibration_hash: str
    tensors: Mapping[str, TensorRange]

    def ranges(self) -> dict[str, tuple[float, float]]:
        return {name: (r.min, r.max) for name, r in self.tensors.items()}


def _check_method(method: str, where: str) -> None:
    if method not in CALIBRATION_METHODS:
        raise BackendError(
            f"{where}: unknown calibration method {method!r}: expected one of"
            f" {', '.join(CALIBRATION_METHODS)}{closest(str(method), CALIBRATION_METHODS)}"
        )


def _check_range(name: str, lo: float, hi: float, where: str) -> None:
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise BackendError(
            f"{where}: tensor {name!r} has a non-finite range [{lo}, {hi}]; the calibration set"
            " produced inf/NaN activations: check the calibration inputs and their preprocessing"
        )
    if lo > hi:
        raise BackendError(f"{where}: tensor {name!r} has min {lo} > max {hi}; expected min <= max")


def write_calibration_cache(
    path: Path,
    method: str,
    model_hash: str,
    calibration_hash: str,
    ranges: Mapping[str, tuple[float, float]],
) -> CalibrationCache:
    """Write `calib.cache` atomically and return what was written."""
    where = f"calibration cache {path}"
    _check_method(method, where)
    if not ranges:
        raise BackendError(
            f"{where}: no tensor ranges to write; the calibrator observed no activations"
        )
    tensors: dict[str, TensorRange] = {}
    for name, (lo, hi) in ranges.items():
        lo, hi = float(lo), float(hi)
        _check_range(name, lo, hi, where)
        tensors[str(name)] = TensorRange(lo, hi, symmetric_scale(lo, hi))
    doc = {
        "format": CALIBRATION_FORMAT,
        "method": method,
        "model_hash": str(model_hash),
        "calibration_hash": str(calibration_hash),
        "tensors": {
            name: {"min": r.min, "max": r.max, "scale": r.scale} for name, r in tensors.items()
        },
    }
    try:
        atomic_write_json(Path(path), doc)
    except (OSError, ResultsError) as err:
        raise BackendError(f"cannot write {where}: {err}") from err
    return CalibrationCache(method, str(model_hash), str(calibration_hash), tensors)


def _field(doc: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in doc:
        raise BackendError(f"{where}: missing field {key!r}; rebuild the engine to rewrite it")
    value = doc[key]
    if not isinstance(value, kind) or (kind in (int, float) and isinstance(value, bool)):
        raise BackendError(
            f"{where}: field {key!r} is {type(value).__name__}, expected {kind.__name__}"
        )
    return value


def _number(entry: Mapping[str, Any], key: str, where: str) -> float:
    value = entry.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BackendError(
            f"{where}: field {key!r} is {value!r}, expected a number; rebuild the engine"
        )
    return float(value)


def read_calibration_cache(path: Path) -> CalibrationCache:
    """Read and check a `calib.cache`; BackendError names the file and the bad field."""
    path = Path(path)
    where = f"calibration cache {path}"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise BackendError(f"{where} does not exist; build the INT8 engine first") from err
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BackendError(f"{where} is not readable JSON ({err}); delete it and rebuild") from err
    if not isinstance(doc, dict):
        raise BackendError(f"{where}: expected a JSON object, found {type(doc).__name__}")
    fmt = _field(doc, "format", str, where)
    if fmt != CALIBRATION_FORMAT:
        raise BackendError(
            f"{where}: field 'format' is {fmt!r}, expected {CALIBRATION_FORMAT!r}; rebuild the"
            " engine with this version of mlperf_trt"
        )
    method = _field(doc, "method", str, where)
    _check_method(method, where)
    model_hash = _field(doc, "model_hash", str, where)
    calibration_hash = _field(doc, "calibration_hash", str, where)
    raw = _field(doc, "tensors", dict, where)
    if not raw:
        raise BackendError(f"{where}: field 'tensors' is empty; rebuild the engine")
    tensors: dict[str, TensorRange] = {}
    for name, entry in raw.items():
        at = f"{where}, tensors[{name!r}]"
        if not isinstance(entry, dict):
            raise BackendError(f"{at}: expected an object with min, max and scale")
        lo, hi, scale = (_number(entry, k, at) for k in ("min", "max", "scale"))
        _check_range(name, lo, hi, where)
        want = symmetric_scale(lo, hi)
        if not math.isclose(scale, want, rel_tol=_SCALE_RTOL, abs_tol=1e-30):
            raise BackendError(
                f"{at}: field 'scale' is {scale}, expected max(|min|, |max|) / {INT8_MAX} = {want};"
                " the file was edited: rebuild the engine"
            )
        tensors[name] = TensorRange(lo, hi, scale)
    return CalibrationCache(method, model_hash, calibration_hash, tensors)


def ranges_from_tensors_data(tensors_data: Any) -> dict[str, tuple[float, float]]:
    """Per-tensor (min, max) from onnxruntime.quantization's TensorsData (the calibrator's result).

    Per-channel ranges, where a calibrator produced them, are reduced to one per-tensor range.
    """
    ranges: dict[str, tuple[float, float]] = {}
    for name in tensors_data:
        lo, hi = tensors_data[name].range_value
        ranges[name] = (float(np.min(lo)), float(np.max(hi)))
    return ranges


def hash_calibration_feeds(feeds: Iterable[Mapping[str, np.ndarray]]) -> str:
    """sha256 over every batch's tensors (name, dtype, shape, bytes), in order."""
    digest = hashlib.sha256()
    for feed in feeds:
        for name in sorted(feed):
            array = np.ascontiguousarray(feed[name])
            digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
            digest.update(array.reshape(-1).view(np.uint8).data)
        digest.update(b"\n")
    return digest.hexdigest()
