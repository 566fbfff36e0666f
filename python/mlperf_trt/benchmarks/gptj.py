"""GPT-J 6B summarisation on CNN/DailyMail (SPEC §2.5)."""

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

# Generation (SPEC §2.5): prompt truncated at 1919 tokens, beam search 4, 30..128 new tokens.
MAX_INPUT_TOKENS = 1919
MAX_NEW_TOKENS = 128
MIN_NEW_TOKENS = 30
NUM_BEAMS = 4
EOS_TOKEN_ID = 50256
# LoadGen reports inferred tokens/s = 69 x samples/s (SPEC §2.5).
TOKEN_LATENCY_SCALING_FACTOR = 69

# References and the checker's explicit thresholds (SPEC §2.0; same in v4.1).
REFERENCE = {"ROUGE1": 42.9865, "ROUGE2": 20.1235, "ROUGEL": 29.9881, "GEN_LEN": 4_016_878.0}
THRESHOLDS = {
    "99": {"ROUGE1": 42.556635, "ROUGE2": 19.922265, "ROUGEL": 29.688219, "GEN_LEN": 3_615_190.2},
    "99.9": {"ROUGE1": 42.943514, "ROUGE2": 20.103376, "ROUGEL": 29.958112, "GEN_LEN": 3_615_190.2},
}
_UNITS = {
    "ROUGE1": "",
    "ROUGE2": "",
    "ROUGEL": "",
    "GEN_LEN": "chars",
}  # gen_len: sum of characters

_V50 = Rules(
    round="v5.0",
    dataset_size=13_368,  # SPEC §2.0: CNN-DM 3.0.0 validation
    performance_sample_count=13_368,
    scenarios={"datacenter": ("Server", "Offline"), "edge": ("SingleStream", "Offline")},
    server_latency_ms=20_000.0,  # SPEC §2.0: 20 s @ p99
    ttft_ms=None,
    tpot_ms=None,
    offline_min_samples=13_368,
    equal_issue=True,  # SPEC §2.0
    token_metrics="inferred",  # SPEC §2.5: infer_token_latencies=1
    token_latency_scaling_factor=TOKEN_LATENCY_SCALING_FACTOR,
    multistream_samples_per_query=MULTISTREAM_SAMPLES_PER_QUERY,
    # SPEC §4, §7: no compliance test (HEAD's TEST06 entry would crash: no token_count).
    compliance_tests=(),
    accuracy_log_sampling_target=4096,  # SPEC §4: TEST01 audit.config exists, not required
    loadgen_seeds=ROUND_SEEDS["v5.0"],
)


def _targets(variant: str) -> tuple[AccuracyMetric, ...]:
    return tuple(
        AccuracyMetric(k, REFERENCE[k], _UNITS[k], THRESHOLDS[variant][k]) for k in REFERENCE
    )


BENCHMARK = Benchmark(
    name="gptj",
    variants=("99", "99.9"),
    loadgen_key="gptj",  # SPEC §0: no hyphen
    dataset="cnn-dailymail-3.0.0-val",
    metric="ROUGE-1/2/L and generated length",
    # The SUT receives left-padded token ids; masks/lengths are built inside (SPEC §2.5, §2.6).
    model_card=ModelCard(
        inputs=(TensorSpec("input_ids", "int64", ("N", "seq")),),
        outputs=(
            TensorSpec("output_ids", "int64", ("N", "new_tokens")),
        ),  # prompt excluded, <= 128
        source=(
            "GPT-J 6B fine-tuned on CNN-DM by MLCommons, HF PyTorch FP32 "
            "(MLCommons R2 gpt-j-model-checkpoint)"
        ),
    ),
    # SPEC §1.2: generated ids, int64; no n_tokens (token latencies are inferred), so tokens=False.
    payload=PayloadSpec("int64", MAX_NEW_TOKENS, variable=True),
    default_precisions={
        "trt": {"99": "fp8", "99.9": "fp8"},
        "ort": {"99": "fp32", "99.9": "fp32"},
        "null": {"99": "fp32", "99.9": "fp32"},
    },
    round_rules={"v5.0": _V50, "v4.1": derive_rules(_V50, "v4.1")},  # Appendix A: none for gptj
    targets={(r, v): _targets(v) for r in ("v4.1", "v5.0") for v in ("99", "99.9")},
    aliases=("gpt-j",),
)
