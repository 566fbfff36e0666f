"""The model layer: ONNX graphs built in code, and official files checked against the card.

DESIGN.md §2, §3: each benchmark with a builder has a module here (`resnet50`) whose `build(size,
seed)` returns an architecture-faithful ONNX graph with the official tensor names (SPEC §2.x) and
seeded weights, in two sizes: `full` (the real architecture) and `tiny` (same interface and
structure, small enough for tests). A user's model file goes through `load_model`, which checks it
against the benchmark's model card (`check.check_model`).

>>> from mlperf_trt.benchmarks import resolve
>>> model = build_model("resnet50", "tiny", seed=0)
>>> check_model(model, resolve("resnet50").benchmark.model_card, "built-in resnet50")
"""

from __future__ import annotations

import importlib
import os
import tempfile
from pathlib import Path

import onnx

from mlperf_trt.benchmarks import get_benchmark
from mlperf_trt.benchmarks.base import ModelCard
from mlperf_trt.errors import ModelError
from mlperf_trt.models.check import check_model, describe

__all__ = [
    "builder_module",
    "MODEL_SIZES",
    "build_model",
    "builder_families",
    "check_model",
    "describe",
    "load_model",
    "model_hash",
    "save_model",
]

MODEL_SIZES: tuple[str, ...] = ("full", "tiny")

# Benchmark family (mlperf_trt.benchmarks name) -> the module whose build(size, seed) makes it.
_BUILDERS: dict[str, str] = {
    "resnet50": "mlperf_trt.models.resnet50",
    "dlrm-v2": "mlperf_trt.models.dlrm",
    "bert": "mlperf_trt.models.bert",
    "retinanet": "mlperf_trt.models.retinanet",
    "3d-unet": "mlperf_trt.models.unet3d",
}

# A protobuf message cannot be serialised past 2 GiB; bigger models need external data files.
_PROTOBUF_LIMIT = 2**31 - 1


def builder_module(benchmark: str) -> str:
    """The module that builds `benchmark`'s model (ModelError when there is none)."""
    module = _BUILDERS.get(benchmark)
    if module is None:
        raise ModelError(
            f"no built-in model for {benchmark!r}: the builders are {', '.join(sorted(_BUILDERS))};"
            " pass --model-path with the official ONNX"
        )
    return module


def builder_families() -> tuple[str, ...]:
    """The benchmark families that have a built-in model."""
    return tuple(_BUILDERS)


def build_model(benchmark: str, size: str = "full", seed: int = 0) -> onnx.ModelProto:
    """Build the stand-in model of `benchmark` (a family name or any name resolve() accepts).

    BenchmarkError for an unknown name; ModelError for a bad size or a family with no builder.
    """
    family = get_benchmark(benchmark).name
    if size not in MODEL_SIZES:
        raise ModelError(
            f"unknown model size {size!r}: expected one of {', '.join(MODEL_SIZES)} "
            "(full: the real architecture; tiny: the same interface, small enough for tests)"
        )
    module_name = _BUILDERS.get(family)
    if module_name is None:
        built = ", ".join(_BUILDERS)
        raise ModelError(
            f"no built-in model for {family} yet; pass --model-path with the official model "
            f"({get_benchmark(family).model_card.source}); built-in models exist for {built}"
        )
    module = importlib.import_module(module_name)
    model: onnx.ModelProto = module.build(size=size, seed=seed)
    return model


def load_model(path: Path, card: ModelCard) -> onnx.ModelProto:
    """Read the ONNX file at `path` and check it against `card` (ModelError naming the file)."""
    path = Path(path)
    if not path.is_file():
        what = "is a directory, not a file" if path.is_dir() else "does not exist"
        raise ModelError(
            f"model file {path} {what}; pass --model-path to an ONNX file ({card.source})"
        )
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # protobuf's DecodeError, OSError, or an external-data error
        raise ModelError(
            f"cannot read model file {path}: {type(exc).__name__}: {exc}; expected an ONNX "
            f"file ({card.source})"
        ) from exc
    if not model.HasField("graph") or not model.graph.node:
        raise ModelError(
            f"model file {path} holds no ONNX graph (empty or not an ONNX file); expected "
            f"{card.source}"
        )
    check_model(model, card, str(path))
    return model


def model_hash(model: onnx.ModelProto) -> str:
    """sha256 hex digest of the model's deterministic serialisation (engine and data cache keys)."""
    import hashlib

    return hashlib.sha256(_serialise(model)).hexdigest()


def save_model(model: onnx.ModelProto, path: Path) -> None:
    """Write `model` to `path` atomically (temporary file + rename), creating parent folders."""
    path = Path(path)
    data = _serialise(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a model file is not a secret
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _serialise(model: onnx.ModelProto) -> bytes:
    if model.ByteSize() > _PROTOBUF_LIMIT:
        raise ModelError(
            f"model is {model.ByteSize() / 2**30:.1f} GiB, over protobuf's 2 GiB limit for one "
            "file; save it with onnx.save_model(..., save_as_external_data=True)"
        )
    return bytes(model.SerializeToString(deterministic=True))
