"""RetinaNet post-processing (SPEC §2.2): the C++ kernel and post-processors against a plain numpy
reference written here from the SPEC (torchvision's postprocess_detections structure: per level
threshold + top-k + decode + clip, then class-wise NMS one class at a time); CUDA twin against the
CPU kernel (gpu)."""

from __future__ import annotations

import importlib
import math

import numpy as np
import pytest

from mlperf_trt import _C
from mlperf_trt.errors import BackendError, KernelError

K = _C.kernels
H = _C.harness
CLIP = np.float32(math.log(1000.0 / 16))


# --- the reference ------------------------------------------------------------------------------
def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-x.astype(np.float64)))).astype(np.float32)


def _decode(deltas: np.ndarray, anchors: np.ndarray, size: float) -> np.ndarray:
    """torchvision BoxCoder.decode_single (weights 1) + clip_boxes_to_image, in float32."""
    w = anchors[:, 2] - anchors[:, 0]
    h = anchors[:, 3] - anchors[:, 1]
    cx = anchors[:, 0] + np.float32(0.5) * w
    cy = anchors[:, 1] + np.float32(0.5) * h
    dw = np.minimum(deltas[:, 2], CLIP)
    dh = np.minimum(deltas[:, 3], CLIP)
    pcx = deltas[:, 0] * w + cx
    pcy = deltas[:, 1] * h + cy
    pw = np.exp(dw.astype(np.float64)).astype(np.float32) * w
    ph = np.exp(dh.astype(np.float64)).astype(np.float32) * h
    boxes = np.stack(
        [
            pcx - np.float32(0.5) * pw,
            pcy - np.float32(0.5) * ph,
            pcx + np.float32(0.5) * pw,
            pcy + np.float32(0.5) * ph,
        ],
        axis=1,
    )
    return np.clip(boxes, np.float32(0), np.float32(size)).astype(np.float32)


def _nms(boxes: np.ndarray, iou_threshold: float) -> list[int]:
    """Greedy NMS over boxes already in processing order; returns kept row numbers."""
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    suppressed = np.zeros(len(boxes), bool)
    keep = []
    for i in range(len(boxes)):
        if suppressed[i]:
            continue
        keep.append(i)
        rest = np.arange(i + 1, len(boxes))
        xx1 = np.maximum(boxes[i, 0], boxes[rest, 0])
        yy1 = np.maximum(boxes[i, 1], boxes[rest, 1])
        xx2 = np.minimum(boxes[i, 2], boxes[rest, 2])
        yy2 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.maximum(np.float32(0), xx2 - xx1) * np.maximum(np.float32(0), yy2 - yy1)
        with np.errstate(invalid="ignore"):  # 0 / 0 for two empty boxes: not suppressed
            iou = inter / (areas[i] + areas[rest] - inter)
        suppressed[rest[iou > iou_threshold]] = True
    return keep


def reference(
    cls: np.ndarray,
    box: np.ndarray,
    anchors: np.ndarray,
    level_sizes: list[int],
    *,
    topk: int = 1000,
    max_detections: int = 300,
    size: float = 800.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    classes = cls.shape[1]
    all_boxes, all_scores, all_labels = [], [], []
    start = 0
    for n in level_sizes:
        scores = _sigmoid(cls[start : start + n]).reshape(-1)
        idx = np.nonzero(scores > np.float32(0.05))[0]
        order = np.lexsort((idx, -scores[idx]))[:topk]  # score desc, then flat index asc
        idx = idx[order]
        anchor = start + idx // classes
        all_boxes.append(_decode(box[anchor], anchors[anchor], size))
        all_scores.append(scores[idx])
        all_labels.append(idx % classes)
        start += n
    boxes = np.concatenate(all_boxes)
    scores = np.concatenate(all_scores)
    labels = np.concatenate(all_labels).astype(np.int64)
    order = np.lexsort((np.arange(len(scores)), -scores))  # stable: level order on ties
    kept: list[int] = []
    for c in np.unique(labels):  # torchvision's batched NMS, one class at a time
        members = order[labels[order] == c]
        kept.extend(members[_nms(boxes[members], 0.5)].tolist())
    kept_arr = np.array(sorted(kept, key=lambda p: (-scores[p], p)), dtype=np.int64)
    kept_arr = kept_arr[:max_detections]
    return boxes[kept_arr].reshape(-1, 4), scores[kept_arr], labels[kept_arr]


# --- synthetic heads ----------------------------------------------------------------------------
def make_heads(
    rng: np.random.Generator,
    level_sizes: list[int],
    classes: int,
    candidates: int,
    *,
    cluster: float = 60.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Logits far below the threshold except `candidates` distinct ones, well apart in score;
    anchors packed into a small area so that many same-class boxes overlap around IoU 0.5."""
    a = sum(level_sizes)
    cls = np.full((a, classes), -9.0, np.float32)
    flat = rng.choice(a * classes, size=min(candidates, a * classes), replace=False)
    cls.reshape(-1)[flat] = rng.permutation(np.linspace(-2.9, 4.0, len(flat))).astype(np.float32)
    centre = rng.uniform(0, 800, (a, 2))
    centre = np.round(centre / cluster) * cluster + rng.normal(0, cluster / 6, (a, 2))
    half = rng.uniform(8, 120, (a, 2))
    anchors = np.concatenate([centre - half, centre + half], axis=1).astype(np.float32)
    deltas = rng.normal(0, 0.25, (a, 4)).astype(np.float32)
    return cls, deltas, anchors


def assert_same_detections(
    got: tuple[np.ndarray, np.ndarray, np.ndarray],
    want: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    boxes, scores, labels = got
    np.testing.assert_array_equal(labels, want[2])
    np.testing.assert_allclose(scores, want[1], rtol=1e-6)
    np.testing.assert_allclose(boxes, want[0], rtol=0, atol=1e-3)


# --- the kernel ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("level_sizes", "classes", "candidates", "seed"),
    [
        ([37, 11, 5], 7, 120, 0),
        ([300, 81, 20, 9, 3], 5, 1400, 1),  # level 0 holds more than 1000 candidates
        ([450, 120, 30, 8, 2], 3, 2000, 2),
        ([1], 1, 1, 3),
    ],
)
def test_matches_reference(
    level_sizes: list[int], classes: int, candidates: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    cls, box, anchors = make_heads(rng, level_sizes, classes, candidates)
    got = K.retinanet_decode_nms(cls, box, anchors, level_sizes)
    want = reference(cls, box, anchors, level_sizes)
    assert_same_detections(got, want)
    assert got[0].dtype == np.float32 and got[1].dtype == np.float32 and got[2].dtype == np.int64
    assert np.all(np.diff(got[1]) <= 0), "detections must come in descending score order"


def test_more_than_1000_candidates_in_a_level_keeps_the_best_1000() -> None:
    # 1500 candidates in one level, boxes far apart (no suppression), one class per box.
    n = 1500
    cls = np.full((n, 1), -9.0, np.float32)
    cls[:, 0] = np.linspace(-2.5, 3.0, n, dtype=np.float32)
    x = (np.arange(n) % 40 * 20).astype(np.float32)
    y = (np.arange(n) // 40 * 20).astype(np.float32)
    anchors = np.stack([x, y, x + 10, y + 10], axis=1)
    box = np.zeros((n, 4), np.float32)
    boxes, scores, _ = K.retinanet_decode_nms(cls, box, anchors, [n], max_detections=5000)
    assert len(scores) == 1000
    np.testing.assert_array_equal(scores, _sigmoid(cls[::-1, 0][:1000]))
    assert_same_detections(
        (boxes, scores, _), reference(cls, box, anchors, [n], max_detections=5000)
    )


def test_more_than_300_after_nms_keeps_the_best_300() -> None:
    rng = np.random.default_rng(7)
    level_sizes = [500, 100]
    cls, box, anchors = make_heads(rng, level_sizes, 11, 1500, cluster=1.0)
    got = K.retinanet_decode_nms(cls, box, anchors, level_sizes)
    assert len(got[1]) == 300
    assert_same_detections(got, reference(cls, box, anchors, level_sizes))
    more = K.retinanet_decode_nms(cls, box, anchors, level_sizes, max_detections=1000)
    assert len(more[1]) > 300
    np.testing.assert_array_equal(more[2][:300], got[2])


def test_nothing_above_the_threshold_gives_no_detection() -> None:
    cls = np.full((30, 4), -2.95, np.float32)  # sigmoid 0.0497
    cls[3, 2] = np.nan
    box = np.zeros((30, 4), np.float32)
    anchors = np.tile(np.array([[0, 0, 10, 10]], np.float32), (30, 1))
    boxes, scores, labels = K.retinanet_decode_nms(cls, box, anchors, [20, 10])
    assert boxes.shape == (0, 4) and scores.shape == (0,) and labels.shape == (0,)


def test_threshold_is_strict_at_005() -> None:
    # sigmoid(-2.9443) = 0.050001 passes, sigmoid(-2.9445) = 0.049999 does not.
    cls = np.array([[-2.9443], [-2.9445]], np.float32)
    anchors = np.array([[0, 0, 10, 10], [100, 100, 110, 110]], np.float32)
    _, scores, _ = K.retinanet_decode_nms(cls, np.zeros((2, 4), np.float32), anchors, [2])
    assert len(scores) == 1 and scores[0] > np.float32(0.05)


def test_ties_go_to_the_lower_flat_index_and_level() -> None:
    # Equal scores everywhere, disjoint boxes: the order is the flat index (anchor * C + class)
    # over the levels in order.
    n, classes = 6, 2
    cls = np.full((n, classes), 1.25, np.float32)
    x = np.arange(n, dtype=np.float32) * 100
    anchors = np.stack([x, x, x + 50, x + 50], axis=1)
    boxes, scores, labels = K.retinanet_decode_nms(
        cls, np.zeros((n, 4), np.float32), anchors, [4, 2]
    )
    assert len(scores) == n * classes and np.all(scores == scores[0])
    np.testing.assert_array_equal(labels, np.tile(np.arange(classes), n))
    np.testing.assert_array_equal(boxes[::2, 0], x)
    # Among tied candidates top-k keeps the lower flat indices.
    _, _, labels3 = K.retinanet_decode_nms(
        cls, np.zeros((n, 4), np.float32), anchors, [4, 2], topk_per_level=3
    )
    np.testing.assert_array_equal(labels3, [0, 1, 0, 0, 1, 0])


def test_nms_is_class_wise() -> None:
    cls = np.full((2, 3), -9.0, np.float32)
    cls[0, 1], cls[1, 1], cls[1, 2] = 2.0, 1.0, 0.5
    anchors = np.array([[10, 10, 60, 60], [12, 12, 62, 62]], np.float32)  # IoU 0.85
    boxes, scores, labels = K.retinanet_decode_nms(cls, np.zeros((2, 4), np.float32), anchors, [2])
    np.testing.assert_array_equal(labels, [1, 2])  # class 1's second box suppressed, not class 2's
    np.testing.assert_array_equal(boxes, anchors)


def test_iou_of_exactly_half_is_kept() -> None:
    # IoU = 50 / (100 + 100 - 50) = 1/3 and IoU = 100/200 = 0.5 (not > 0.5): both kept.
    cls = np.array([[3.0], [2.0], [1.0]], np.float32)
    anchors = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [0, 0, 10, 20]], np.float32)
    _, scores, _ = K.retinanet_decode_nms(cls, np.zeros((3, 4), np.float32), anchors, [3])
    assert len(scores) == 3


def test_decode_clamps_and_clips() -> None:
    cls = np.array([[2.0]], np.float32)
    anchors = np.array([[700, 10, 780, 30]], np.float32)
    box = np.array([[0.5, -1.0, 9.0, 0.1]], np.float32)  # dw above log(1000/16) is clamped
    boxes, _, _ = K.retinanet_decode_nms(cls, box, anchors, [1])
    np.testing.assert_allclose(boxes, reference(cls, box, anchors, [1])[0], atol=1e-4)
    assert boxes[0, 0] == 0.0 and boxes[0, 2] == 800.0  # 80 * 62.5 wide, clipped to the image


def test_rejects_bad_input() -> None:
    cls = np.zeros((10, 3), np.float32)
    box = np.zeros((10, 4), np.float32)
    with pytest.raises(KernelError, match="level_sizes sum to 9"):
        K.retinanet_decode_nms(cls, box, box, [5, 4])
    with pytest.raises(KernelError, match="float32"):
        K.retinanet_decode_nms(cls.astype(np.float64), box, box, [10])
    with pytest.raises(KernelError, match=r"bbox_regression must have shape \(10, 4\)"):
        K.retinanet_decode_nms(cls, box[:9], box, [10])
    with pytest.raises(KernelError, match="level_sizes is empty"):
        K.retinanet_decode_nms(cls, box, box, [])


# --- the post-processors (SPEC §2.2 payload) ----------------------------------------------------
def _payload(qsl: int, boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray) -> bytes:
    rows = [
        [qsl, b[1] / 800, b[0] / 800, b[3] / 800, b[2] / 800, s, float(lab)]
        for b, s, lab in zip(boxes.astype(np.float32), scores, labels, strict=True)
    ]
    return np.array(rows, np.float32).reshape(-1, 7).tobytes()


def test_retinanet_postprocessor_payloads() -> None:
    rng = np.random.default_rng(11)
    level_sizes = [60, 15, 4]
    heads = [make_heads(rng, level_sizes, 5, 200) for _ in range(2)]
    anchors = heads[0][2]
    cls = np.stack([heads[0][0], np.full_like(heads[0][0], -9.0), heads[1][0]])  # sample 1: none
    box = np.stack([heads[0][1], heads[0][1], heads[1][1]])
    post = H.RetinaNetPostprocessor(anchors=anchors, level_sizes=level_sizes)
    assert post.anchors == 79 and post.level_sizes == level_sizes
    payloads = post.process([5, 17, 24781 - 1], [cls, box])
    assert payloads[1] == b""
    for i, qsl in ((0, 5), (2, 24780)):
        kernel = K.retinanet_decode_nms(cls[i], box[i], anchors, level_sizes)
        assert payloads[i] == _payload(qsl, *kernel)
        records = np.frombuffer(payloads[i], np.float32).reshape(-1, 7)
        want = reference(cls[i], box[i], anchors, level_sizes)
        np.testing.assert_array_equal(records[:, 0], qsl)
        np.testing.assert_array_equal(records[:, 6], want[2])
        np.testing.assert_allclose(records[:, [2, 1, 4, 3]] * 800, want[0], atol=2e-3)
        np.testing.assert_allclose(records[:, 5], want[1], rtol=1e-6)


def test_retinanet_postprocessor_checks_outputs() -> None:
    anchors = np.zeros((10, 4), np.float32)
    with pytest.raises(Exception, match="level_sizes sum to 9"):
        H.RetinaNetPostprocessor(anchors=anchors, level_sizes=[9])
    post = H.RetinaNetPostprocessor(anchors=anchors, level_sizes=[10], cls_output=1, box_output=0)
    cls = np.full((2, 10, 3), -4.0, np.float32)
    box = np.zeros((2, 10, 4), np.float32)
    assert post.process([0, 1], [box, cls]) == [b"", b""]
    with pytest.raises(BackendError, match=r"expected float32 \[2, 10, C\]"):
        post.process([0, 1], [box, np.ascontiguousarray(cls[:, :9])])
    with pytest.raises(BackendError, match="reads output 1"):
        post.process([0, 1], [box])


def test_detections_postprocessor_stops_below_005() -> None:
    boxes = np.array([[10, 20, 110, 220], [0, 0, 800, 800], [5, 5, 6, 6]], np.float32)
    scores = np.array([0.9, 0.05, 0.0499], np.float32)
    labels = np.array([263, 7, 1], np.int64)
    post = H.DetectionsPostprocessor()
    (payload,) = post.process([42], [boxes, labels, scores])
    assert payload == _payload(42, boxes[:2], scores[:2], labels[:2])
    # A leading batch axis of 1, int32 labels, other output order.
    post2 = H.DetectionsPostprocessor(boxes=2, labels=0, scores=1)
    (payload2,) = post2.process([42], [labels[None].astype(np.int32), scores[None], boxes[None]])
    assert payload2 == payload
    empty = post.process([3], [np.zeros((0, 4), np.float32), np.zeros(0, np.int64), scores[:0]])
    assert empty == [b""]
    with pytest.raises(BackendError, match="batch 1"):
        post.process([1, 2], [boxes, labels, scores])
    with pytest.raises(BackendError, match="labels output 1"):
        post.process([1], [boxes, labels.astype(np.float32), scores])


# --- the teammates' numpy reference (mlperf_trt.models.retinanet_post) ---------------------------
def _models_reference():  # type: ignore[no-untyped-def]
    try:
        return importlib.import_module("mlperf_trt.models.retinanet_post")
    except ImportError:
        pytest.skip("mlperf_trt.models.retinanet_post is not there yet")


@pytest.mark.parametrize("seed", [5, 6])
def test_matches_models_retinanet_post_reference(seed: int) -> None:
    ref = _models_reference()
    rng = np.random.default_rng(seed)
    level_sizes = [90, 25, 9, 4, 1]
    cls, box, anchors = make_heads(rng, level_sizes, 264, 1500 if seed == 5 else 30000)
    got = K.retinanet_decode_nms(cls, box, anchors, level_sizes)
    want = ref.postprocess_image(cls, box, anchors, level_sizes)
    assert_same_detections(got, tuple(np.asarray(w) for w in want))  # type: ignore[arg-type]
    # The post-processor's payload against the reference payload of the reference detections.
    post = H.RetinaNetPostprocessor(anchors=anchors, level_sizes=level_sizes)
    (payload,) = post.process([9], [cls[None], box[None]])
    records = np.frombuffer(payload, np.float32)
    np.testing.assert_allclose(records, ref.payload_reference(9, *want), rtol=1e-6, atol=2e-6)


# --- CUDA twin (gpu) ----------------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.parametrize(
    ("level_sizes", "classes", "candidates", "seed"),
    [([37, 11, 5], 7, 120, 0), ([300, 81, 20, 9, 3], 5, 1400, 1), ([500, 100], 11, 1500, 7)],
)
def test_cuda_matches_cpu(level_sizes: list[int], classes: int, candidates: int, seed: int) -> None:
    from mlperf_trt import _cuda

    rng = np.random.default_rng(seed)
    cls, box, anchors = make_heads(rng, level_sizes, classes, candidates, cluster=30.0)
    for args in ({}, {"topk_per_level": 7}, {"max_detections": 1000}):
        want = K.retinanet_decode_nms(cls, box, anchors, level_sizes, **args)
        got = _cuda.retinanet_decode_nms(cls, box, anchors, level_sizes, **args)
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g, w)


@pytest.mark.gpu
def test_cuda_dense_scores_and_ties_match_cpu() -> None:
    from mlperf_trt import _cuda

    rng = np.random.default_rng(3)
    level_sizes = [400, 100, 25]
    cls = rng.normal(0, 2, (525, 9)).astype(np.float32)
    cls[::7] = 1.5  # ties
    box = rng.normal(0, 0.3, (525, 4)).astype(np.float32)
    anchors = make_heads(rng, level_sizes, 9, 1)[2]
    want = K.retinanet_decode_nms(cls, box, anchors, level_sizes)
    got = _cuda.retinanet_decode_nms(cls, box, anchors, level_sizes)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)
    empty = _cuda.retinanet_decode_nms(np.full_like(cls, -5.0), box, anchors, level_sizes)
    assert empty[1].shape == (0,)
