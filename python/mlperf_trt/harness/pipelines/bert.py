"""BERT-Large on SQuAD v1.1 (SPEC §2.4): length-bucketed batches run at the shortest padded
length that fits them, the [384][2] start/end payload, and F1/EM."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mlperf_trt import _C
from mlperf_trt.errors import ConfigError
from mlperf_trt.harness.pipelines import Batching, Pipeline, Synthesized

MAX_SEQ_LEN = 384  # SPEC §2.4
OUTPUTS = ("output_start_logits", "output_end_logits")
INPUTS = ("input_ids", "input_mask", "segment_ids")
# The reference's accuracy script pads short payloads with -10000 (SPEC §2.4); positions the
# engine did not run get the same value, so the payload decodes exactly as a padded one would.
PAD_LOGIT = -10000.0
# Default length buckets: steps of 64 tokens. A batch runs at its bucket's bound, so every
# engine shape comes from this short list (TensorRT: one optimisation profile per bucket).
DEFAULT_BUCKETS = (64, 128, 192, 256, 320, 384)


def length_buckets(config: Any) -> tuple[int, ...]:
    """The `length_buckets` setting as bounds; () when length grouping is off."""
    text = str(config["length_buckets"]).strip().lower()
    if text == "auto":
        return DEFAULT_BUCKETS
    if text == "none":
        return ()
    try:
        bounds = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise ConfigError(
            f"length_buckets={text!r}: expected ascending integers such as '128,256,384',"
            " 'auto' or 'none'"
        ) from None
    if list(bounds) != sorted(set(bounds)) or bounds[0] < 1 or bounds[-1] != MAX_SEQ_LEN:
        raise ConfigError(
            f"length_buckets={text!r}: bounds must ascend strictly, start at 1 or more and end"
            f" at {MAX_SEQ_LEN} (the padded length every sample fits, SPEC §2.4)"
        )
    return bounds


class TrimmedSequences:
    """An executor that runs a batch at the shortest bucket length holding its longest sample.

    The stored samples are padded to 384; BERT's attention mask makes positions past a sample's
    length irrelevant to the positions before it, so the engine runs [N, L] with L the bucket
    bound of the batch's longest sample, and the post-processor pads the outputs back to 384.
    """

    def __init__(self, executor: Any, buckets: tuple[int, ...]) -> None:
        self.executor = executor
        self.buckets = np.asarray(buckets or (MAX_SEQ_LEN,), dtype=np.int64)
        self.padded_tokens = 0  # tokens run, padding included
        self.real_tokens = 0  # tokens of the samples

    def length_for(self, mask: np.ndarray) -> int:
        longest = int(mask.sum(axis=1).max()) if len(mask) else 1
        i = int(np.searchsorted(self.buckets, longest))
        return int(self.buckets[min(i, len(self.buckets) - 1)])

    def run(
        self, inputs: Mapping[str, np.ndarray], batch_size: int | None = None
    ) -> Mapping[str, np.ndarray]:
        mask = inputs["input_mask"]
        length = self.length_for(mask)
        self.padded_tokens += length * len(mask)
        self.real_tokens += int(mask.sum())
        if length < mask.shape[1]:
            inputs = {k: np.ascontiguousarray(v[:, :length]) for k, v in inputs.items()}
        out: Mapping[str, np.ndarray] = self.executor.run(inputs, batch_size)
        return out


def _batching(data: Any, config: Any) -> Batching:
    from mlperf_trt.data.squad import Squad

    buckets = length_buckets(config)
    if not buckets:
        return Batching()
    costs = Squad().sequence_lengths(data.prepared).astype(np.uint32)
    return Batching(costs=costs, bucket_bounds=buckets)


def _wrap(executor: Any, data: Any, config: Any, model: Any) -> TrimmedSequences:
    return TrimmedSequences(executor, length_buckets(config))


def synthesize(model: Any, raw: Path, count: int, show_progress: bool) -> Synthesized:
    import onnxruntime as ort

    from mlperf_trt.data.squad import Squad

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])

    def model_fn(feeds: dict[str, np.ndarray]) -> Mapping[str, np.ndarray]:
        outs = session.run(list(OUTPUTS), {k: feeds[k] for k in INPUTS})
        return dict(zip(OUTPUTS, outs, strict=True))

    made = Squad().synthesize(raw, count, seed=0, model_fn=model_fn, show_progress=show_progress)
    return Synthesized(
        float(made["fp32_f1"]),
        {
            "answers": "the FP32 model's own best spans, decoded by the metric's post-processing",
            "fp32_exact_match": float(made["fp32_exact_match"]),
        },
    )


def _pipeline() -> Pipeline:
    from mlperf_trt.accuracy import squad
    from mlperf_trt.data.squad import Squad

    return Pipeline(
        benchmark="bert",
        dataset=Squad,
        output_names=OUTPUTS,
        # SPEC §1.2, §2.4: float32 [384][2], start and end logits interleaved per position.
        postprocessor=lambda: _C.harness.InterleavePostprocessor([0, 1], MAX_SEQ_LEN, PAD_LOGIT),
        evaluate=squad.evaluate,
        truth=lambda raw: Squad().ground_truth(raw),
        synthesize=synthesize,
        metric="F1",
        unit="features",
        ort_int8_mode="dynamic",
        batching=_batching,
        wrap_executor=_wrap,
    )


PIPELINE = _pipeline()
