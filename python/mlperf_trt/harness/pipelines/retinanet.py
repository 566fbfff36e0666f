"""RetinaNet on OpenImages (SPEC §2.2): 800x800 images, decode + class-wise NMS in C++ after our
raw-head model, or the official ONNX with NMS inside (batch 1), and mAP."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mlperf_trt import _C
from mlperf_trt.harness.pipelines import Batching, Pipeline, Synthesized

RAW_OUTPUTS = ("cls_logits", "bbox_regression")
NMS_OUTPUTS = ("boxes", "labels", "scores")  # the official ONNX: bind outputs by name (SPEC §8)
# The raw heads of one 800x800 image are 120,087 x 264 class logits (127 MB): on the CPU a batch
# of more than a few images only costs memory.
MAX_CPU_BATCH = 4


def _raw_postprocessor() -> _C.harness.Postprocessor:
    from mlperf_trt.models import retinanet

    return _C.harness.RetinaNetPostprocessor(
        anchors=retinanet.anchors(), level_sizes=list(retinanet.LEVEL_SIZES)
    )


def _raw_batching(data: Any, config: Any) -> Batching:
    return Batching(max_batch=min(int(config["batch_size"]), MAX_CPU_BATCH))


def _batch_one(data: Any, config: Any) -> Batching:
    return Batching(max_batch=1)  # the official ONNX takes one image (SPEC §2.2)


def _for_model(model: Any) -> Pipeline:
    """Our raw-head model, or the official ONNX (outputs boxes/labels/scores, NMS inside)."""
    outputs = {o.name for o in model.graph.output}
    if set(NMS_OUTPUTS) <= outputs:
        return dataclasses.replace(
            PIPELINE,
            output_names=NMS_OUTPUTS,
            postprocessor=lambda: _C.harness.DetectionsPostprocessor(),
            batching=_batch_one,
        )
    return PIPELINE


def synthesize(model: Any, raw: Path, count: int, show_progress: bool) -> Synthesized:
    import onnxruntime as ort

    from mlperf_trt.data.openimages import OpenImages
    from mlperf_trt.models import retinanet

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    anchors, levels = retinanet.anchors(), list(retinanet.LEVEL_SIZES)

    def model_fn(images: np.ndarray) -> Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        out = []
        for image in images:  # one at a time: the raw heads are 127 MB per image
            cls, box = session.run(list(RAW_OUTPUTS), {"images": image[None]})
            out.append(_C.kernels.retinanet_decode_nms(cls[0], box[0], anchors, levels))
        return out

    made = OpenImages().synthesize(
        raw, count, seed=0, model_fn=model_fn, show_progress=show_progress
    )
    return Synthesized(
        float(made["fp32_map"]),
        {
            "ground_truth": "the FP32 model's own detections scoring >= 0.5",
            "gt_boxes": int(made["gt_boxes"]),
            "images_without_gt": int(made["images_without_gt"]),
        },
    )


def _pipeline() -> Pipeline:
    from mlperf_trt.accuracy import openimages
    from mlperf_trt.data.openimages import OpenImages
    from mlperf_trt.models.retinanet import RAW_CARD

    return Pipeline(
        benchmark="retinanet",
        dataset=OpenImages,
        output_names=RAW_OUTPUTS,
        # SPEC §2.2: 7 float32 per detection [qsl_idx, y1, x1, y2, x2 (/800), score, label].
        postprocessor=_raw_postprocessor,
        evaluate=openimages.evaluate,
        truth=lambda raw: OpenImages().ground_truth(raw),
        synthesize=synthesize,
        metric="mAP",
        unit="images",
        batching=_raw_batching,
        model_card=RAW_CARD,
        for_model=_for_model,
    )


PIPELINE = _pipeline()
