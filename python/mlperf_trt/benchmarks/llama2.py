"""Llama2-70B chat on the OpenOrca subset (SPEC §2.6)."""

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

# Generation constants (SPEC §2.6): greedy, inputs <= 1024 tokens, up to 1024 new tokens, EOS 2.
MAX_INPUT_TOKENS = 1024
MAX_NEW_TOKENS = 1024
EOS_TOKEN_ID = 2
# Typical generated length the null backend answers with (the reference averages 294.45, SPEC §2.0).
NULL_TOKENS = 128

# References and the checker's explicit thresholds (SPEC §2.0; same in v4.1). tokens_per_sample must
# lie in [0.9, 1.1] x 294.45 for both variants.
REFERENCE = {"ROUGE1": 44.4312, "ROUGE2": 22.0352, "ROUGEL": 28.6162}
THRESHOLDS = {
    "99": {"ROUGE1": 43.986888, "ROUGE2": 21.814848, "ROUGEL": 28.330038},
    "99.9": {"ROUGE1": 44.386769, "ROUGE2": 22.013165, "ROUGEL": 28.587584},
}
TOKENS_PER_SAMPLE = AccuracyMetric("TOKENS_PER_SAMPLE", 294.45, "tokens", 265.005, 323.895)

_V50 = Rules(
    round="v5.0",
    dataset_size=24_576,  # SPEC §2.0
    performance_sample_count=24_576,
    # SPEC §2.0: datacenter only (the interactive benchmark is not part of this harness's list).
    scenarios={"datacenter": ("Server", "Offline"), "edge": ()},
    server_latency_ms=None,  # bound is TTFT/TPOT (mlperf.conf target_latency = 0, SPEC §2.6)
    ttft_ms=2000.0,  # SPEC §2.0, §2.6 @ p99
    tpot_ms=200.0,
    offline_min_samples=24_576,
    equal_issue=True,
    token_metrics="measured",  # use_token_latencies=1
    token_latency_scaling_factor=None,
    multistream_samples_per_query=MULTISTREAM_SAMPLES_PER_QUERY,
    compliance_tests=("TEST06",),  # SPEC §4
    accuracy_log_sampling_target=None,  # no TEST01 (TEST06 fixes its own target of 100, SPEC §4.3)
    loadgen_seeds=ROUND_SEEDS["v5.0"],
)


def _targets(variant: str) -> tuple[AccuracyMetric, ...]:
    rouge = tuple(AccuracyMetric(k, REFERENCE[k], "", THRESHOLDS[variant][k]) for k in REFERENCE)
    return (*rouge, TOKENS_PER_SAMPLE)


BENCHMARK = Benchmark(
    name="llama2-70b",
    variants=("99", "99.9"),
    loadgen_key="llama2-70b",  # SPEC §0
    dataset="open-orca-gpt4-24576",
    metric="ROUGE-1/2/L and tokens per sample",
    # The SUT receives token ids (tok_input); masks/lengths are built inside (SPEC §2.6).
    model_card=ModelCard(
        inputs=(TensorSpec("input_ids", "int32", ("N", "seq")),),
        outputs=(TensorSpec("output_ids", "int32", ("N", "new_tokens")),),
        source="meta-llama/Llama-2-70b-chat-hf (MLCommons storage copy)",
    ),
    # SPEC §1.2: int32 ids, n_tokens = element count, FirstTokenComplete outside Offline.
    payload=PayloadSpec("int32", NULL_TOKENS, variable=True, tokens=True),
    default_precisions={
        "trt": {"99": "fp8", "99.9": "fp8"},
        "ort": {"99": "fp32", "99.9": "fp32"},
        "null": {"99": "fp32", "99.9": "fp32"},
    },
    round_rules={"v5.0": _V50, "v4.1": derive_rules(_V50, "v4.1")},  # Appendix A: TEST06 as in v5.0
    targets={(r, v): _targets(v) for r in ("v4.1", "v5.0") for v in ("99", "99.9")},
    aliases=("llama2",),
)
