"""DLRMv2 (DLRM-DCNv2) on Criteo 1TB multi-hot, day_23 (SPEC §2.8)."""

from __future__ import annotations

from mlperf_trt.benchmarks.base import (
    MULTISTREAM_SAMPLES_PER_QUERY,
    ROUND_SEEDS,
    AccuracyMetric,
    Benchmark,
    ModelCard,
    PayloadSpec,
    Rules,
    TensorSpec,
    derive_rules,
)

# Model shape (SPEC §2.8).
NUM_DENSE_FEATURES = 13
EMBEDDING_DIM = 128
EMBEDDING_ROWS: tuple[int, ...] = (
    40000000, 39060, 17295, 7424, 20265, 3, 7122, 1543, 63, 40000000, 3067956, 405282, 10,
    2209, 11938, 155, 4, 976, 14, 40000000, 40000000, 40000000, 590152, 12973, 108, 36,
)  # fmt: skip
# Fixed multi-hot sizes per categorical feature: 214 ids per user-item pair (SPEC §2.8).
MULTI_HOT_SIZES: tuple[int, ...] = (
    3, 2, 1, 2, 6, 1, 1, 1, 1, 7, 3, 8, 1, 6, 9, 5, 1, 1, 1, 12, 100, 27, 10, 3, 1, 1,
)  # fmt: skip
# Mean user-item pairs per aggregated sample (dist_quantile.txt, SPEC §2.8).
MEAN_PAIRS_PER_SAMPLE = 270

# Reference AUC (percent) and the checker's explicit thresholds (SPEC §2.0; same in v4.1).
REFERENCE_AUC = 80.31
THRESHOLDS = {"99": 79.5069, "99.9": 80.22969}

_V50 = Rules(
    round="v5.0",
    dataset_size=330_067,  # SPEC §2.0, §2.8, §7: aggregated samples (204,800 is the PSC)
    performance_sample_count=204_800,
    scenarios={"datacenter": ("Server", "Offline"), "edge": ()},  # SPEC §2.8: datacenter only
    server_latency_ms=60.0,  # SPEC §2.0
    ttft_ms=None,
    tpot_ms=None,
    offline_min_samples=24_576,
    equal_issue=False,
    token_metrics="none",
    token_latency_scaling_factor=None,
    multistream_samples_per_query=MULTISTREAM_SAMPLES_PER_QUERY,
    compliance_tests=("TEST01",),  # SPEC §4
    accuracy_log_sampling_target=4096,
    loadgen_seeds=ROUND_SEEDS["v5.0"],
)

# Tensor names: the model is a torchrec checkpoint with no ONNX interface, so the card follows the
# reference feature names (int_0..int_12 packed into one "dense" tensor, cat_0..cat_25 one tensor
# each, of fixed multi-hot width). The batch axis "N" counts user-item pairs, not LoadGen samples.
_CATEGORICAL = tuple(
    TensorSpec(f"cat_{k}", "int32", ("N", n)) for k, n in enumerate(MULTI_HOT_SIZES)
)

BENCHMARK = Benchmark(
    name="dlrm-v2",
    variants=("99", "99.9"),
    loadgen_key="dlrm-v2",  # SPEC §0
    dataset="criteo-1tb-day23-multihot",
    metric="AUC",
    model_card=ModelCard(
        inputs=(TensorSpec("dense", "float32", ("N", NUM_DENSE_FEATURES)), *_CATEGORICAL),
        outputs=(TensorSpec("probability", "float32", ("N",)),),  # sigmoid(logit) per pair
        source="DLRM-DCNv2 torchrec sharded checkpoint, FP32 (MLCommons R2 dlrm-v2-model-weights)",
    ),
    # SPEC §1.2: float32 (probability, label) per pair; null sends the mean block of 270 pairs.
    payload=PayloadSpec("float32", 2 * MEAN_PAIRS_PER_SAMPLE, variable=True),
    default_precisions={
        "trt": {"99": "int8", "99.9": "fp16"},
        "ort": {"99": "int8", "99.9": "fp32"},
        "null": {"99": "fp32", "99.9": "fp32"},
    },
    round_rules={
        "v5.0": _V50,
        "v4.1": derive_rules(_V50, "v4.1", compliance_tests=("TEST01", "TEST05")),  # Appendix A
    },
    targets={
        (r, v): (AccuracyMetric("AUC", REFERENCE_AUC, "%", THRESHOLDS[v]),)
        for r in ("v4.1", "v5.0")
        for v in ("99", "99.9")
    },
    aliases=("dlrmv2", "dlrm"),
)
