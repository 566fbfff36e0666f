"""The null backend: instant, correctly shaped outputs for any registered benchmark.

It measures the harness itself: with it, a run costs only LoadGen, the C++ scheduler, gather,
post-processing and completion. Outputs are zeros of the model card's shapes (dynamic
dimensions other than the batch are 1), cached per batch size so that a batch allocates nothing.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from mlperf_trt.backends.base import EngineArtifact, EngineRecipe
from mlperf_trt.benchmarks import ModelCard
from mlperf_trt.errors import BackendError


class NullExecutor:
    def __init__(self, model_card: ModelCard) -> None:
        self._card = model_card
        self._cache: dict[int, dict[str, np.ndarray]] = {}

    def run(
        self, inputs: Mapping[str, np.ndarray], batch_size: int | None = None
    ) -> Mapping[str, np.ndarray]:
        if batch_size is None:
            if not inputs:
                raise BackendError("null executor: no inputs and no batch_size; pass batch_size")
            batch_size = int(next(iter(inputs.values())).shape[0])
        outputs = self._cache.get(batch_size)
        if outputs is None:
            outputs = {
                spec.name: np.zeros(
                    [
                        batch_size if d == "N" else (d if isinstance(d, int) else 1)
                        for d in spec.shape
                    ],
                    dtype=spec.dtype,
                )
                for spec in self._card.outputs
            }
            self._cache[batch_size] = outputs
        return outputs


class NullBackend:
    name = "null"

    def __init__(self, model_card: ModelCard) -> None:
        self._card = model_card

    def availability(self) -> tuple[bool, str]:
        return True, "no inference: zeros of the model card's output shapes"

    def build(self, model: object, recipe: EngineRecipe) -> EngineArtifact:
        return EngineArtifact(recipe=recipe, path=None, cache_hit=True)

    def load(self, artifact: EngineArtifact, device: int) -> NullExecutor:
        return NullExecutor(self._card)
