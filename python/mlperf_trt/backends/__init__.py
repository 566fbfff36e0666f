"""Inference backends: `null` (no inference), `ort` (ONNX Runtime), `trt` (TensorRT).

Backends are found by name and imported lazily: TensorRT is imported only inside backends/trt.
"""

from __future__ import annotations

import importlib.util

from mlperf_trt.backends.base import Backend, EngineArtifact, EngineRecipe, Executor
from mlperf_trt.errors import BackendError, closest

BACKENDS: tuple[str, ...] = ("null", "ort", "trt")
# What `--backend auto` tries, best first; it picks the first one that is usable here.
AUTO_ORDER: tuple[str, ...] = ("trt", "ort", "null")


def availability(name: str) -> tuple[bool, str]:
    """(usable here, reason) for a backend name, without importing heavy libraries."""
    check_backend(name)
    if name == "null":
        return True, "no inference: zeros of the model card's output shapes (harness overhead)"
    module = f"mlperf_trt.backends.{name}"
    if importlib.util.find_spec(module) is None:
        return False, "not implemented in this version of mlperf_trt yet"
    impl = importlib.import_module(module)
    result: tuple[bool, str] = impl.availability()
    return result


def check_backend(name: str) -> str:
    if name not in BACKENDS:
        raise BackendError(
            f"unknown backend {name!r}: expected one of {', '.join(BACKENDS)} or auto"
            f"{closest(name, BACKENDS)}"
        )
    return name


def choose_backend(requested: str) -> tuple[str, str]:
    """Resolves `auto` to the best usable backend; (name, why it was chosen)."""
    if requested != "auto":
        ok, why = availability(check_backend(requested))
        if not ok:
            raise BackendError(f"--backend {requested} is not usable here: {why}")
        return requested, why
    reasons: list[str] = []
    for name in AUTO_ORDER:
        ok, why = availability(name)
        if ok:
            skipped = "; ".join(reasons)
            return name, why + (f" (auto: {skipped})" if skipped else "")
        reasons.append(f"{name} unusable: {why}")
    raise BackendError("no backend is usable: " + "; ".join(reasons))  # pragma: no cover


__all__ = [
    "AUTO_ORDER",
    "BACKENDS",
    "Backend",
    "EngineArtifact",
    "EngineRecipe",
    "Executor",
    "availability",
    "check_backend",
    "choose_backend",
]
