"""Numpy reference of RetinaNet's timed post-processing (SPEC §2.2): the definition the C++ and
CUDA post-processors are tested against.

It follows torchvision's `RetinaNet.postprocess_detections` (the MLPerf reference model's copy of
it) on the raw head outputs of `models.retinanet`, per image:

1. per FPN level: scores = sigmoid(logits) over (anchor x class), flattened anchor-major
   (flat index = anchor * 264 + class); keep score > 0.05; keep the best 1000 of those;
2. decode each kept (anchor, class) box with BoxCoder weights (1, 1, 1, 1), dw and dh clamped at
   log(1000 / 16), and clip it to the 800 x 800 image;
3. class-wise ("batched") NMS at IoU 0.5 over the candidates of all levels; keep the best 300.

torchvision leaves some details to the kernel that runs it (tie order of topk and sort, the
precision of exp). This reference fixes every one of them, so that another implementation can
reproduce it bit for bit on boxes and labels (and to 1e-6 on scores):

- Arithmetic is float32, one rounding per operation, in the order written below (no fused
  multiply-add, no reassociation). Two functions are computed in float64 and rounded once to
  float32: the sigmoid, `float32(1 / (1 + exp(-float64(logit))))`, and the exp of the size
  deltas, `float32(exp(float64(min(dw, clip))))` with clip = float32(log(1000 / 16)).
- The thresholds are float32 values: keep score > float32(0.05); suppress IoU > 0.5 (strict, as
  torchvision); a NaN IoU (0/0 for two empty boxes) suppresses nothing.
- Ties: every ordering is by descending score, ties broken by the smaller position: within a
  level, the flat index (anchor * 264 + class); across levels, the candidate position in the
  concatenation of the levels' top-1000 lists (level P3 first). The final list of at most 300 is
  in that order too.
- Decoding, for anchor (ax1, ay1, ax2, ay2) and deltas (dx, dy, dw, dh):
  w = ax2 - ax1; h = ay2 - ay1; cx = ax1 + 0.5 * w; cy = ay1 + 0.5 * h;
  px = dx * w + cx; py = dy * h + cy; pw = exp(dw') * w; ph = exp(dh') * h;
  x1 = px - 0.5 * pw; y1 = py - 0.5 * ph; x2 = px + 0.5 * pw; y2 = py + 0.5 * ph;
  then each coordinate is clamped to [0, 800] (min(max(v, 0), 800)).
- IoU of boxes i, j (float32): area = (x2 - x1) * (y2 - y1);
  inter = max(0, min(x2i, x2j) - max(x1i, x1j)) * max(0, min(y2i, y2j) - max(y1i, y1j));
  iou = inter / ((area_i + area_j) - inter), as torchvision's CPU NMS kernel computes it.

The payload (SPEC §1.2, §2.2) is `payload_reference`: 7 float32 per detection,
[qsl_idx, y1/800, x1/800, y2/800, x2/800, score, label], in descending score order, stopping at
the first score < 0.05. The divisions are float32; they give the same bits as the reference's
float64 division rounded to float32, because x/800 = (x/32)/25 and a float32 divided by 25 never
lands within a float64 rounding of a float32 halfway point (its binary expansion repeats with
period 20).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from mlperf_trt.errors import ModelError

__all__ = [
    "BBOX_XFORM_CLIP",
    "DETECTIONS_PER_IMAGE",
    "IMAGE_SIZE",
    "NMS_IOU",
    "NUM_CLASSES",
    "SCORE_THRESH",
    "TOPK_CANDIDATES",
    "Detections",
    "batched_nms",
    "decode_boxes",
    "payload_reference",
    "postprocess_image",
    "postprocess_reference",
    "sigmoid",
]

# SPEC §2.2: the constants of the reference model's post-processing.
NUM_CLASSES = 264
IMAGE_SIZE = 800
SCORE_THRESH = np.float32(0.05)
TOPK_CANDIDATES = 1000
NMS_IOU = 0.5
DETECTIONS_PER_IMAGE = 300
BBOX_XFORM_CLIP = np.float32(math.log(1000.0 / 16))  # torchvision BoxCoder's default clamp
FLOATS_PER_DETECTION = 7  # SPEC §1.2

# A logit below this bound cannot give a score > 0.05 (logit(0.05) = -2.944..., less a margin
# far wider than float32 rounding): the exact test runs on the survivors of this cheap filter.
_LOGIT_PREFILTER = math.log(0.05 / 0.95) - 1e-3

# (boxes float32 [K,4] x1,y1,x2,y2 in 800x800 pixels, scores float32 [K], labels int64 [K])
Detections = tuple[np.ndarray, np.ndarray, np.ndarray]

_F32 = np.float32


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """float32(1 / (1 + exp(-x))) computed in float64 and rounded once."""
    x = np.asarray(logits, dtype=np.float64)
    out: np.ndarray = (1.0 / (1.0 + np.exp(-x))).astype(np.float32)
    return out


def decode_boxes(
    deltas: np.ndarray, anchors: np.ndarray, image_size: int = IMAGE_SIZE
) -> np.ndarray:
    """BoxCoder(1,1,1,1).decode_single + clip to the image, in the documented float32 order."""
    d = np.asarray(deltas, dtype=np.float32).reshape(-1, 4)
    a = np.asarray(anchors, dtype=np.float32).reshape(-1, 4)
    half = _F32(0.5)
    w = a[:, 2] - a[:, 0]
    h = a[:, 3] - a[:, 1]
    cx = a[:, 0] + half * w
    cy = a[:, 1] + half * h
    dw = np.minimum(d[:, 2], BBOX_XFORM_CLIP)
    dh = np.minimum(d[:, 3], BBOX_XFORM_CLIP)
    px = d[:, 0] * w + cx
    py = d[:, 1] * h + cy
    pw = np.exp(dw.astype(np.float64)).astype(np.float32) * w
    ph = np.exp(dh.astype(np.float64)).astype(np.float32) * h
    hw = half * pw
    hh = half * ph
    boxes = np.stack([px - hw, py - hh, px + hw, py + hh], axis=1)
    out: np.ndarray = np.minimum(np.maximum(boxes, _F32(0)), _F32(image_size))
    return out


def _iou_with(
    box: np.ndarray, area: np.float32, others: np.ndarray, areas: np.ndarray
) -> np.ndarray:
    xx1 = np.maximum(box[0], others[:, 0])
    yy1 = np.maximum(box[1], others[:, 1])
    xx2 = np.minimum(box[2], others[:, 2])
    yy2 = np.minimum(box[3], others[:, 3])
    zero = _F32(0)
    inter = np.maximum(zero, xx2 - xx1) * np.maximum(zero, yy2 - yy1)
    with np.errstate(invalid="ignore", divide="ignore"):
        iou: np.ndarray = inter / ((area + areas) - inter)
    return iou


def batched_nms(
    boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, iou_threshold: float = NMS_IOU
) -> np.ndarray:
    """Class-wise greedy NMS; the kept positions by descending score (ties: smaller position)."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float32).reshape(-1)
    labels = np.asarray(labels).reshape(-1)
    order = np.argsort(-scores, kind="stable")
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    kept: list[np.ndarray] = []
    for label in np.unique(labels[order]):
        idx = order[labels[order] == label]  # this class's candidates, in the global order
        alive = np.ones(len(idx), dtype=bool)
        cls_boxes, cls_areas = boxes[idx], areas[idx]
        for i in range(len(idx)):
            if not alive[i]:
                continue
            rest = slice(i + 1, len(idx))
            iou = _iou_with(cls_boxes[i], cls_areas[i], cls_boxes[rest], cls_areas[rest])
            alive[rest] &= ~(iou > iou_threshold)
        kept.append(idx[alive])
    if not kept:
        return np.zeros(0, dtype=np.int64)
    keep = np.concatenate(kept)
    # Back to the global order: descending score, ties by the smaller position.
    keep = keep[np.lexsort((keep, -scores[keep]))]
    return keep.astype(np.int64)


def _check_level_sizes(level_sizes: Sequence[int], anchors_total: int) -> list[int]:
    sizes = [int(s) for s in level_sizes]
    if any(s < 0 for s in sizes) or sum(sizes) != anchors_total:
        raise ModelError(
            f"level sizes {sizes} sum to {sum(sizes)}, but the heads have {anchors_total} anchors:"
            " pass the anchors per FPN level of the model (models.retinanet.LEVEL_SIZES)"
        )
    return sizes


def postprocess_image(
    cls_logits: np.ndarray,
    bbox_regression: np.ndarray,
    anchors: np.ndarray,
    level_sizes: Sequence[int],
) -> Detections:
    """One image: cls_logits [A, K], bbox_regression [A, 4], anchors [A, 4] -> detections."""
    logits = np.asarray(cls_logits, dtype=np.float32)
    deltas = np.asarray(bbox_regression, dtype=np.float32)
    anchors = np.asarray(anchors, dtype=np.float32)
    if logits.ndim != 2 or deltas.shape != (logits.shape[0], 4) or anchors.shape != deltas.shape:
        raise ModelError(
            f"expected cls_logits [A,K], bbox_regression [A,4] and anchors [A,4] with the same A,"
            f" got {logits.shape}, {deltas.shape} and {anchors.shape}"
        )
    num_classes = logits.shape[1]
    sizes = _check_level_sizes(level_sizes, logits.shape[0])
    all_boxes, all_scores, all_labels = [], [], []
    start = 0
    for size in sizes:
        flat = logits[start : start + size].reshape(-1)
        cand = np.flatnonzero(flat > _LOGIT_PREFILTER)  # ascending flat index
        scores = sigmoid(flat[cand])
        exact = scores > SCORE_THRESH
        cand, scores = cand[exact], scores[exact]
        top = np.argsort(-scores, kind="stable")[:TOPK_CANDIDATES]  # ties: smaller flat index
        cand, scores = cand[top], scores[top]
        anchor_idx = cand // num_classes + start
        all_boxes.append(decode_boxes(deltas[anchor_idx], anchors[anchor_idx]))
        all_scores.append(scores)
        all_labels.append((cand % num_classes).astype(np.int64))
        start += size
    boxes = np.concatenate(all_boxes) if all_boxes else np.zeros((0, 4), np.float32)
    scores = np.concatenate(all_scores) if all_scores else np.zeros(0, np.float32)
    labels = np.concatenate(all_labels) if all_labels else np.zeros(0, np.int64)
    keep = batched_nms(boxes, scores, labels)[:DETECTIONS_PER_IMAGE]
    return boxes[keep], scores[keep], labels[keep]


def postprocess_reference(
    cls_logits: np.ndarray,
    bbox_regression: np.ndarray,
    anchors: np.ndarray,
    level_sizes: Sequence[int],
) -> list[Detections]:
    """A batch: cls_logits [N, A, K], bbox_regression [N, A, 4] -> one Detections per image."""
    logits = np.asarray(cls_logits)
    deltas = np.asarray(bbox_regression)
    if logits.ndim != 3 or deltas.ndim != 3 or len(logits) != len(deltas):
        raise ModelError(
            f"expected cls_logits [N,A,K] and bbox_regression [N,A,4], got {logits.shape} and"
            f" {deltas.shape}"
        )
    return [
        postprocess_image(logits[i], deltas[i], anchors, level_sizes) for i in range(len(logits))
    ]


def payload_reference(
    qsl_idx: int, boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray
) -> np.ndarray:
    """SPEC §2.2's response: float32 [K*7] = [qsl_idx, y1/800, x1/800, y2/800, x2/800, score,
    label] per detection, descending score (ties: input order), stop at the first score < 0.05."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float32).reshape(-1)
    labels = np.asarray(labels).reshape(-1)
    if not len(boxes) == len(scores) == len(labels):
        raise ModelError(
            f"payload: {len(boxes)} boxes, {len(scores)} scores and {len(labels)} labels: expected"
            " one of each per detection"
        )
    order = np.argsort(-scores, kind="stable")
    below = np.flatnonzero(scores[order] < SCORE_THRESH)
    if len(below):
        order = order[: below[0]]
    size = _F32(IMAGE_SIZE)
    out = np.empty((len(order), FLOATS_PER_DETECTION), dtype=np.float32)
    out[:, 0] = _F32(qsl_idx)
    b = boxes[order]
    out[:, 1] = b[:, 1] / size
    out[:, 2] = b[:, 0] / size
    out[:, 3] = b[:, 3] / size
    out[:, 4] = b[:, 2] / size
    out[:, 5] = scores[order]
    out[:, 6] = labels[order].astype(np.float32)
    return out.reshape(-1)
