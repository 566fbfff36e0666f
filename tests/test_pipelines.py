"""The per-benchmark wiring in harness/pipelines: synthetic targets, bert's trimmed lengths,
dlrm's embedding stage, and the warm-up's bucket speed-up, each against a plain reference."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from mlperf_trt.benchmarks import resolve
from mlperf_trt.errors import ConfigError
from mlperf_trt.harness.pipelines import Batching, synthetic_targets
from mlperf_trt.harness.pipelines.bert import TrimmedSequences, length_buckets
from mlperf_trt.harness.setup import _bucket_speedup


@pytest.mark.parametrize(("model", "ratio"), [("bert-99", 0.99), ("bert-99.9", 0.999)])
def test_synthetic_targets_keep_the_rounds_ratio(model: str, ratio: float) -> None:
    (target,) = synthetic_targets(resolve(model), "v5.0", 97.0)
    assert target.key == "F1" and target.reference == 97.0
    assert target.lower == pytest.approx(ratio * 97.0, rel=1e-6)


def test_length_buckets_setting() -> None:
    assert length_buckets({"length_buckets": "auto"})[-1] == 384
    assert length_buckets({"length_buckets": "none"}) == ()
    assert length_buckets({"length_buckets": "128,384"}) == (128, 384)
    for bad in ("384,128", "128,256", "a,384", "0,384"):
        with pytest.raises(ConfigError, match="length_buckets"):
            length_buckets({"length_buckets": bad})


class _Recorder:
    def __init__(self) -> None:
        self.shapes: list[tuple[int, ...]] = []

    def run(self, inputs: Any, batch_size: int | None = None) -> dict[str, np.ndarray]:
        self.shapes.append(inputs["input_ids"].shape)
        assert all(v.flags.c_contiguous for v in inputs.values())
        return {"output_start_logits": inputs["input_ids"].astype(np.float32)}


def test_trimmed_sequences_run_the_bucket_of_the_longest_sample() -> None:
    mask = np.zeros((3, 384), dtype=np.int64)
    for row, length in enumerate((40, 130, 90)):
        mask[row, :length] = 1
    ids = np.arange(3 * 384, dtype=np.int64).reshape(3, 384)
    inputs = {"input_ids": ids, "input_mask": mask, "segment_ids": np.zeros_like(ids)}
    engine = _Recorder()
    trim = TrimmedSequences(engine, (64, 128, 192, 384))
    out = trim.run(inputs, 3)
    assert engine.shapes == [(3, 192)]  # 130 tokens: the 192 bucket
    np.testing.assert_array_equal(out["output_start_logits"], ids[:, :192])
    assert trim.real_tokens == 260 and trim.padded_tokens == 3 * 192
    TrimmedSequences(engine, ()).run(inputs, 3)  # no buckets: the full padded length
    assert engine.shapes[-1] == (3, 384)


def test_bucket_speedup_is_the_warm_up_bound_over_the_mean_bound() -> None:
    costs = np.array([300, 50, 60, 200, 100], dtype=np.uint32)
    b = Batching(costs=costs, bucket_bounds=(64, 128, 256, 384))
    # the warm-up's first 2 samples run at 384; the set's mean bound is (384+64+64+256+128)/5
    assert _bucket_speedup(b, 2) == pytest.approx(384 / ((384 + 64 + 64 + 256 + 128) / 5))
    assert _bucket_speedup(Batching(), 8) == 1.0


def test_embedding_stage_matches_the_numpy_reference() -> None:
    """dlrm-v2: pair ranges -> dense rows and sum-pooled embeddings (C++) -> the engine ->
    (probability, label) per pair in batch order."""
    from mlperf_trt.harness.pipelines.dlrm import OUTPUT, EmbeddingStage
    from mlperf_trt.models.dlrm import embedding_bag_reference

    rng = np.random.default_rng(3)
    hot = [3, 2, 1, 2, 6, 1, 1, 1, 1, 7, 3, 8, 1, 6, 9, 5, 1, 1, 1, 12, 100, 27, 10, 3, 1, 1]
    tables = [rng.standard_normal((17, 128), dtype=np.float32) for _ in hot]
    rows = 40

    class Samples:
        dense = rng.standard_normal((rows, 13), dtype=np.float32)
        sparse = [rng.integers(0, 17, size=(rows, k), dtype=np.int32) for k in hot]
        labels = rng.integers(0, 2, size=rows).astype(np.int32)

    seen: dict[str, np.ndarray] = {}

    class Dense:
        def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            seen.update(feeds)
            return {"probability": feeds["dense"][:, 0] * 0 + 0.25}

    stage = EmbeddingStage(Dense(), Samples, tables)
    out = stage.run({"pair_range": np.array([[5, 9], [30, 33]], dtype=np.int64)})[OUTPUT]
    picked = np.r_[5:9, 30:33]
    np.testing.assert_array_equal(seen["dense"], Samples.dense[picked])
    expected = embedding_bag_reference(tables, [s[picked] for s in Samples.sparse])
    np.testing.assert_allclose(seen["embeddings"], expected, rtol=1e-6, atol=1e-5)
    np.testing.assert_array_equal(out[:, 1], Samples.labels[picked])
    assert out.shape == (7, 2) and (out[:, 0] == 0.25).all()
