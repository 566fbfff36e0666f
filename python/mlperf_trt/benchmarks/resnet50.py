"""ResNet50-v1.5 on ImageNet-2012 val (SPEC §2.1)."""

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

# Reference top-1 of the TF/ONNX model, percent (SPEC §2.0; same in v4.1, Appendix A).
REFERENCE_TOP1 = 76.46
# The checker's explicit 99% threshold (SPEC §2.0).
THRESHOLD_99 = 75.6954

_V50 = Rules(
    round="v5.0",
    dataset_size=50_000,  # SPEC §2.0: ImageNet-2012 val
    performance_sample_count=1024,  # SPEC §2.0, §2.1
    scenarios={
        "datacenter": ("Server", "Offline"),  # SPEC §2.0
        "edge": ("SingleStream", "MultiStream", "Offline"),
    },
    server_latency_ms=15.0,  # SPEC §2.0: 15 ms @ p99
    ttft_ms=None,
    tpot_ms=None,
    offline_min_samples=24_576,  # SPEC §2.0
    equal_issue=False,
    token_metrics="none",
    token_latency_scaling_factor=None,
    multistream_samples_per_query=MULTISTREAM_SAMPLES_PER_QUERY,
    compliance_tests=("TEST01", "TEST04"),  # SPEC §4
    accuracy_log_sampling_target=4096,  # SPEC §4
    loadgen_seeds=ROUND_SEEDS["v5.0"],
)

_TARGETS = (AccuracyMetric("acc", REFERENCE_TOP1, "%", THRESHOLD_99),)

BENCHMARK = Benchmark(
    name="resnet50",
    variants=("99",),
    loadgen_key="resnet50",  # SPEC §0
    dataset="imagenet2012-val",
    metric="top-1 accuracy",
    # ONNX converted with --inputs-as-nchw; ArgMax has 1001 classes, 0 = background (SPEC §2.1).
    model_card=ModelCard(
        inputs=(TensorSpec("input_tensor:0", "float32", ("N", 3, 224, 224)),),
        outputs=(
            TensorSpec("ArgMax:0", "int64", ("N",)),
            TensorSpec("softmax_tensor:0", "float32", ("N", 1001)),
        ),
        source="resnet50_v1.onnx (zenodo 2592612 opset 8 / 4735647 opset 11)",
    ),
    payload=PayloadSpec("float32", 1),  # SPEC §1.2: one float32 class index
    default_precisions={
        "trt": {"99": "int8"},
        "ort": {"99": "int8"},
        "null": {"99": "fp32"},
    },
    round_rules={
        "v5.0": _V50,
        # Appendix A: v4.1 adds TEST05.
        "v4.1": derive_rules(_V50, "v4.1", compliance_tests=("TEST01", "TEST04", "TEST05")),
    },
    targets={("v5.0", "99"): _TARGETS, ("v4.1", "99"): _TARGETS},
    submission_stem="resnet",  # SPEC §0: the checker maps resnet50 to resnet
)
