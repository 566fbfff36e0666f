"""BERT-Large on SQuAD v1.1, sequence length 384 (SPEC §2.4)."""

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

MAX_SEQ_LEN = 384  # SPEC §2.4
# Reference F1 and the checker's explicit thresholds (SPEC §2.0; same in v4.1).
REFERENCE_F1 = 90.874
THRESHOLDS = {"99": 89.96526, "99.9": 90.783126}

_V50 = Rules(
    round="v5.0",
    dataset_size=10_833,  # SPEC §2.0: features of dev-v1.1
    performance_sample_count=10_833,
    # SPEC §2.0: not a datacenter benchmark in v5.0; edge SingleStream/Offline for both variants.
    scenarios={"datacenter": (), "edge": ("SingleStream", "Offline")},
    server_latency_ms=130.0,  # SPEC §2.0, §2.4: 130 ms (mlperf.conf only in v5.0)
    ttft_ms=None,
    tpot_ms=None,
    offline_min_samples=10_833,
    equal_issue=False,
    token_metrics="none",
    token_latency_scaling_factor=None,
    multistream_samples_per_query=MULTISTREAM_SAMPLES_PER_QUERY,
    compliance_tests=("TEST01",),  # SPEC §4
    accuracy_log_sampling_target=4096,  # SPEC §4
    loadgen_seeds=ROUND_SEEDS["v5.0"],
)

# Appendix A: in v4.1 both variants are datacenter benchmarks (Server + Offline, 130 ms @ p99); on
# edge only bert-99 is (SingleStream/Offline), so bert-99.9 gets its own edge list below.
_V41 = derive_rules(
    _V50,
    "v4.1",
    scenarios={"datacenter": ("Server", "Offline"), "edge": ("SingleStream", "Offline")},
    compliance_tests=("TEST01", "TEST05"),
)

_TOKENS = ("N", MAX_SEQ_LEN)

BENCHMARK = Benchmark(
    name="bert",
    variants=("99", "99.9"),
    loadgen_key="bert",  # SPEC §0
    dataset="squad-v1.1-dev",
    metric="F1",
    model_card=ModelCard(
        inputs=(
            TensorSpec("input_ids", "int64", _TOKENS),
            TensorSpec("input_mask", "int64", _TOKENS),
            TensorSpec("segment_ids", "int64", _TOKENS),
        ),
        outputs=(
            TensorSpec("output_start_logits", "float32", _TOKENS),
            TensorSpec("output_end_logits", "float32", _TOKENS),
        ),
        source="BERT-Large SQuAD v1.1 ONNX fp32, opset 11, dynamic batch (zenodo 3733910)",
    ),
    payload=PayloadSpec("float32", 2 * MAX_SEQ_LEN),  # SPEC §1.2: [384][2] float32, 3,072 bytes
    default_precisions={
        "trt": {"99": "int8", "99.9": "fp16"},  # DESIGN §6
        "ort": {"99": "int8", "99.9": "fp32"},
        "null": {"99": "fp32", "99.9": "fp32"},
    },
    round_rules={"v5.0": _V50, "v4.1": _V41},
    variant_scenarios={
        ("v4.1", "99.9"): {"datacenter": ("Server", "Offline"), "edge": ()},  # Appendix A
    },
    targets={
        (round_, v): (AccuracyMetric("F1", REFERENCE_F1, "%", THRESHOLDS[v]),)
        for round_ in ("v4.1", "v5.0")
        for v in ("99", "99.9")
    },
)
