"""The engine layer's seams (DESIGN §3): Backend builds and loads, Executor runs a batch.

Executors are per device and per stream, and thread-confined: the harness gives each worker its
own. `run` gets host arrays keyed by the model card's input names (views of the worker's pooled
buffers: valid only during the call, never to be kept) and returns arrays keyed by output name.
`batch_size` is passed as well, for executors whose batch cannot be read from an input.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Executor(Protocol):
    def run(
        self, inputs: Mapping[str, np.ndarray], batch_size: int | None = None
    ) -> Mapping[str, np.ndarray]: ...


@dataclass(frozen=True)
class EngineRecipe:
    """Everything that decides an engine's bytes; its digest decides cache hits (DESIGN §5)."""

    backend: str
    workload: str
    precision: str
    batch_sizes: tuple[int, ...]
    model_hash: str = ""
    calibration_hash: str = ""
    backend_version: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["batch_sizes"] = list(self.batch_sizes)
        data["extra"] = dict(self.extra)
        return data

    def digest(self) -> str:
        blob = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()


@dataclass(frozen=True)
class EngineArtifact:
    """A built engine: its file (None for backends that keep nothing on disk) and its recipe."""

    recipe: EngineRecipe
    path: Path | None
    cache_hit: bool = False


class Backend(Protocol):
    name: str

    def availability(self) -> tuple[bool, str]:
        """(usable here, why not / what it uses)."""
        ...

    def build(self, model: Any, recipe: EngineRecipe) -> EngineArtifact:
        """`model` is an onnx.ModelProto (None for the null backend)."""
        ...

    def load(self, artifact: EngineArtifact, device: int) -> Executor: ...
