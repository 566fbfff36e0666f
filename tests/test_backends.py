"""Backend selection and the null backend's outputs."""

from __future__ import annotations

import numpy as np
import pytest

from mlperf_trt import backends
from mlperf_trt.backends.base import EngineRecipe
from mlperf_trt.backends.null import NullBackend
from mlperf_trt.benchmarks import all_benchmarks
from mlperf_trt.errors import BackendError


@pytest.mark.parametrize("bench", all_benchmarks(), ids=lambda b: b.name)
def test_null_outputs_follow_the_model_card(bench) -> None:  # type: ignore[no-untyped-def]
    backend = NullBackend(bench.model_card)
    recipe = EngineRecipe("null", bench.name, "fp32", (3,))
    executor = backend.load(backend.build(None, recipe), device=0)
    out = executor.run({}, batch_size=3)
    assert set(out) == {o.name for o in bench.model_card.outputs}
    for spec in bench.model_card.outputs:
        arr = out[spec.name]
        assert arr.dtype == np.dtype(spec.dtype)
        assert len(arr.shape) == len(spec.shape)
        for dim, want in zip(arr.shape, spec.shape, strict=True):
            assert dim == (3 if want == "N" else want if isinstance(want, int) else 1)
        assert not arr.any()
    assert executor.run({}, batch_size=3) is out  # cached: a batch allocates nothing


def test_auto_picks_a_usable_backend_and_says_why() -> None:
    name, why = backends.choose_backend("auto")
    assert backends.availability(name)[0]
    if name == "null":
        assert "auto:" in why and "ort" in why  # names what it skipped and why


def test_unknown_and_unusable_backends_are_errors() -> None:
    with pytest.raises(BackendError, match="did you mean 'trt'"):
        backends.choose_backend("trtt")
    ok, why = backends.availability("trt")
    if not ok:
        with pytest.raises(BackendError, match="not usable here"):
            backends.choose_backend("trt")


def test_recipe_digest_changes_with_what_decides_the_engine() -> None:
    a = EngineRecipe("ort", "resnet50", "int8", (32,), model_hash="abc")
    assert a.digest() == EngineRecipe("ort", "resnet50", "int8", (32,), model_hash="abc").digest()
    assert a.digest() != EngineRecipe("ort", "resnet50", "fp32", (32,), model_hash="abc").digest()
    assert a.digest() != EngineRecipe("ort", "resnet50", "int8", (64,), model_hash="abc").digest()
