"""Stable Diffusion XL 1.0 base on COCO-2014 captions (SPEC §2.9)."""

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

# Generation constants (SPEC §2.9).
TOKENIZER_MAX_LENGTH = 77
IMAGE_SIZE = 1024
LATENT_SHAPE = (1, 4, 128, 128)
NUM_INFERENCE_STEPS = 20
GUIDANCE_SCALE = 8.0
NEGATIVE_PROMPT = "normal quality, low quality, worst quality, low res, blurry, nsfw, nude"
# Images the accuracy folder must hold, per round (SPEC §2.9; the v4.1 list is not in SPEC).
COMPLIANCE_IMAGE_IDS = {"v5.0": (4459, 4015, 2705, 1682, 4048, 4683, 3757, 1578, 3319, 95)}

# FP32 reference and the checker's closed ranges (SPEC §2.0; same in v4.1, Appendix A).
CLIP_SCORE = AccuracyMetric("CLIP_SCORE", 31.74981837, "", 31.68631873, 31.81331801)
FID_SCORE = AccuracyMetric("FID_SCORE", 23.48046692, "", 23.01085758, 23.95007626)

_V50 = Rules(
    round="v5.0",
    dataset_size=5000,  # SPEC §2.0
    performance_sample_count=5000,
    scenarios={"datacenter": ("Server", "Offline"), "edge": ("SingleStream", "Offline")},
    server_latency_ms=20_000.0,  # SPEC §2.0: 20 s @ p99
    ttft_ms=None,
    tpot_ms=None,
    offline_min_samples=5000,
    equal_issue=False,
    token_metrics="none",
    token_latency_scaling_factor=None,
    multistream_samples_per_query=MULTISTREAM_SAMPLES_PER_QUERY,
    compliance_tests=("TEST01", "TEST04"),  # SPEC §4 (also v4.1, Appendix A)
    accuracy_log_sampling_target=128,  # SPEC §4
    loadgen_seeds=ROUND_SEEDS["v5.0"],
)

_IDS = ("N", TOKENIZER_MAX_LENGTH)

BENCHMARK = Benchmark(
    name="stable-diffusion-xl",
    variants=("99",),
    loadgen_key="stable-diffusion-xl",  # SPEC §0
    dataset="coco2014-val-captions-5000",
    metric="CLIP score and FID (closed ranges)",
    # One sample = positive/negative prompt pair, each tokenized by both tokenizers (SPEC §2.9).
    # Names follow diffusers' text_encoder / text_encoder_2.
    model_card=ModelCard(
        inputs=(
            TensorSpec("prompt_ids", "int32", _IDS),
            TensorSpec("prompt_ids_2", "int32", _IDS),
            TensorSpec("negative_prompt_ids", "int32", _IDS),
            TensorSpec("negative_prompt_ids_2", "int32", _IDS),
        ),
        outputs=(TensorSpec("image", "uint8", ("N", IMAGE_SIZE, IMAGE_SIZE, 3)),),  # RGB, HWC
        source=(
            "stabilityai/stable-diffusion-xl-base-1.0 diffusers snapshot "
            "(MLCommons R2 stable-diffusion-xl-1-0-fp32-checkpoint / -fp16-checkpoint)"
        ),
    ),
    payload=PayloadSpec("uint8", IMAGE_SIZE * IMAGE_SIZE * 3),  # SPEC §1.2: 3,145,728 bytes
    default_precisions={
        "trt": {"99": "fp8"},  # the UNet's precision; encoders and VAE are chosen by the backend
        "ort": {"99": "fp32"},
        "null": {"99": "fp32"},
    },
    round_rules={"v5.0": _V50, "v4.1": derive_rules(_V50, "v4.1")},
    targets={(r, "99"): (CLIP_SCORE, FID_SCORE) for r in ("v4.1", "v5.0")},
    aliases=("sdxl",),
)
