"""The official RetinaNet ONNX interface (post-processing inside the graph) around our raw-head
model: an architecture-faithful stand-in of `resnext50_32x4d_fpn.onnx` (SPEC §2.2).

The reference ONNX is torchvision's RetinaNet exported with `postprocess_detections` traced into
the graph. It takes `images` float32 [1,3,800,800] and returns `boxes` float32 [K,4] (x1, y1, x2,
y2 in pixels of the 800 x 800 input), `labels` int64 [K] and `scores` float32 [K], K <= 300, by
descending score. `with_nms` appends the same post-processing, in standard opset-13 ONNX ops
(ONNX Runtime runs them; all are in TensorRT's ONNX-parser support list, TopK's k < 3840), to
`models.retinanet`'s raw heads (`cls_logits` [N,A,264], `bbox_regression` [N,A,4]), so the
harness's `--model-path` route can be tested end to end without the download.

The head outputs are split back into FPN levels (`retinanet.LEVEL_SIZES` anchors each, as
torchvision's `split_head_outputs` does), then per level:
  sigmoid of the level's logits flattened anchor-major (flat index = anchor * 264 + class);
  keep score > 0.05 (Greater + NonZero + Gather); TopK with k = min(1000, kept count), computed in
  the graph; anchor = index // 264, label = index % 264.
Then over the concatenated levels (P3 first): decode against the anchors (an initializer from
`retinanet.anchors()`) with BoxCoder weights (1,1,1,1), dw/dh clamped at log(1000/16), clip to
[0, 800]; batched NMS by torchvision's coordinate trick (each box offset by label * (max
coordinate + 1), so boxes of different classes never overlap) through one NonMaxSuppression
(IoU 0.5, at most 300 boxes); gather the un-offset boxes, labels and scores of the kept ones.

The arithmetic follows `retinanet_post` (the numpy reference) op for op, in float32. Where the two
can differ on ONNX Runtime's CPU provider (measured with onnxruntime 1.32):
- `Sigmoid` is a float32 approximation, up to ~50 ulp (1.8e-7) from the reference's correctly
  rounded value, and not monotone at that scale: a score within ~2e-7 of 0.05 can flip the
  threshold, and two scores that close can swap places in TopK/NMS order;
- `Exp` is within 1 ulp of the reference's (box coordinates agree to ~1e-4 px);
- the coordinate trick computes IoU on offset boxes (coordinates up to 263 * 801 + 800, float32
  spacing 1/64 there), where the reference computes it per class on the plain boxes: an IoU
  within ~1e-3 of 0.5 between two same-class boxes can be decided the other way.
The reference ONNX run by ONNX Runtime has the same three properties. tests/test_retinanet_nms.py
checks the agreement on the tiny model and on hand-made head outputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from mlperf_trt.errors import ModelError
from mlperf_trt.models import retinanet
from mlperf_trt.models.retinanet_post import (
    BBOX_XFORM_CLIP,
    DETECTIONS_PER_IMAGE,
    NMS_IOU,
    SCORE_THRESH,
    TOPK_CANDIDATES,
)

__all__ = [
    "BOXES_NAME",
    "LABELS_NAME",
    "OPSET",
    "SCORES_NAME",
    "with_nms",
    "write_official",
]

# SPEC §2.2: the reference ONNX's interface; its post-processing constants are retinanet_post's.
OPSET = retinanet.OPSET  # 13, as the official model
IR_VERSION = 8
BOXES_NAME = "boxes"
LABELS_NAME = "labels"
SCORES_NAME = "scores"
DETECTIONS_DIM = "K"

_P = "postprocess"  # prefix of every node and initializer added here


def _check_raw(raw: onnx.ModelProto) -> None:
    """The raw model must be `models.retinanet`'s interface at opset 13."""
    graph = raw.graph
    inits = {t.name for t in graph.initializer}
    inputs = [i.name for i in graph.input if i.name not in inits]
    outputs = [o.name for o in graph.output]
    expected_out = [retinanet.CLS_NAME, retinanet.REG_NAME]
    if inputs != [retinanet.INPUT_NAME] or sorted(outputs) != sorted(expected_out):
        raise ModelError(
            f"raw RetinaNet model: expected input [{retinanet.INPUT_NAME!r}] and outputs"
            f" {expected_out}, got inputs {inputs} and outputs {outputs}: pass the model of"
            " models.retinanet.build(), not an already post-processed one"
        )
    opsets = {o.domain: o.version for o in raw.opset_import}
    if opsets.get("", opsets.get("ai.onnx")) != OPSET:
        raise ModelError(
            f"raw RetinaNet model: default-domain opset {opsets}, expected {OPSET} (the official"
            " model's opset, SPEC §2.2); rebuild it with models.retinanet.build()"
        )
    total = sum(retinanet.LEVEL_SIZES)
    wanted = {
        retinanet.CLS_NAME: (total, retinanet.NUM_CLASSES),
        retinanet.REG_NAME: (total, 4),
    }
    for out in graph.output:
        dims = out.type.tensor_type.shape.dim
        tail = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in dims[1:])
        if len(dims) != 3 or any(
            t not in (-1, w) for t, w in zip(tail, wanted[out.name], strict=True)
        ):
            shape = [d.dim_value or d.dim_param for d in dims]
            raise ModelError(
                f"raw RetinaNet output {out.name!r} has shape {shape}, expected [N, *"
                f"{list(wanted[out.name])}] (anchors per level {retinanet.LEVEL_SIZES})"
            )


class _Nodes:
    """Nodes and constants of the post-processing, each named under `postprocess/`."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: dict[str, onnx.TensorProto] = {}

    def const(self, name: str, value: np.ndarray) -> str:
        """An initializer, made once: a second call with the same name returns the first."""
        full = f"{_P}/{name}"
        if full not in self.inits:
            self.inits[full] = numpy_helper.from_array(value, full)
        return full

    def f32(self, name: str, value: float, shape: tuple[int, ...] = ()) -> str:
        return self.const(name, np.full(shape, value, np.float32))

    def i64(self, name: str, *values: int) -> str:
        return self.const(name, np.asarray(values, np.int64))

    def op(
        self, op: str, inputs: list[str], name: str, outputs: int = 1, **attrs: Any
    ) -> list[str]:
        outs = [f"{_P}/{name}"] if outputs == 1 else [f"{_P}/{name}:{i}" for i in range(outputs)]
        self.nodes.append(helper.make_node(op, inputs, outs, name=f"{_P}/{name}", **attrs))
        return outs

    def one(self, op: str, inputs: list[str], name: str, **attrs: Any) -> str:
        return self.op(op, inputs, name, **attrs)[0]


def _level(n: _Nodes, logits: str, level: int, start: int) -> tuple[str, str, str]:
    """One level's candidates: (scores, anchor indices, labels), best first, at most 1000."""
    classes = retinanet.NUM_CLASSES
    p = f"p{level + 3}"
    sigmoid = n.one("Sigmoid", [logits], f"{p}/sigmoid")
    flat = n.one("Reshape", [sigmoid, n.i64("flat_shape", -1)], f"{p}/scores")
    thresh = n.f32("score_thresh", float(SCORE_THRESH))
    keep = n.one("Greater", [flat, thresh], f"{p}/keep")
    nonzero = n.one("NonZero", [keep], f"{p}/nonzero")  # [1, M], ascending flat index
    cand = n.one("Reshape", [nonzero, n.i64("flat_shape", -1)], f"{p}/candidates")
    cand_scores = n.one("Gather", [flat, cand], f"{p}/candidate_scores", axis=0)
    count = n.one("Shape", [cand_scores], f"{p}/count")
    k = n.one("Min", [count, n.i64("topk_limit", TOPK_CANDIDATES)], f"{p}/k")
    # ONNX TopK orders equal values by the lower index: ties go to the smaller flat index.
    top_scores, top_pos = n.op(
        "TopK", [cand_scores, k], f"{p}/topk", outputs=2, axis=0, largest=1, sorted=1
    )
    index = n.one("Gather", [cand, top_pos], f"{p}/index", axis=0)
    num_classes = n.i64("num_classes", classes)
    local = n.one("Div", [index, num_classes], f"{p}/anchor_local")  # int64: floor for >= 0
    offset = n.i64(f"{p}/anchor_start", start)
    anchor = n.one("Add", [local, offset], f"{p}/anchor")
    label = n.one("Mod", [index, num_classes], f"{p}/label")
    return top_scores, anchor, label


def _decode(n: _Nodes, deltas: str, anchor_table: str, anchor: str) -> str:
    """BoxCoder(1,1,1,1).decode_single + clip, in retinanet_post.decode_boxes' order."""
    a = n.one("Gather", [anchor_table, anchor], "decode/anchors", axis=0)
    d = n.one("Gather", [deltas, anchor], "decode/deltas", axis=0)
    ax1, ay1, ax2, ay2 = n.op("Split", [a], "decode/anchor_split", outputs=4, axis=1)
    dx, dy, dw, dh = n.op("Split", [d], "decode/delta_split", outputs=4, axis=1)
    half = n.f32("half", 0.5)
    clip = n.f32("bbox_xform_clip", float(BBOX_XFORM_CLIP))
    w = n.one("Sub", [ax2, ax1], "decode/w")
    h = n.one("Sub", [ay2, ay1], "decode/h")
    cx = n.one("Add", [ax1, n.one("Mul", [half, w], "decode/half_w")], "decode/cx")
    cy = n.one("Add", [ay1, n.one("Mul", [half, h], "decode/half_h")], "decode/cy")
    dw = n.one("Min", [dw, clip], "decode/dw_clamped")
    dh = n.one("Min", [dh, clip], "decode/dh_clamped")
    px = n.one("Add", [n.one("Mul", [dx, w], "decode/dx_w"), cx], "decode/px")
    py = n.one("Add", [n.one("Mul", [dy, h], "decode/dy_h"), cy], "decode/py")
    pw = n.one("Mul", [n.one("Exp", [dw], "decode/exp_dw"), w], "decode/pw")
    ph = n.one("Mul", [n.one("Exp", [dh], "decode/exp_dh"), h], "decode/ph")
    hw = n.one("Mul", [half, pw], "decode/half_pw")
    hh = n.one("Mul", [half, ph], "decode/half_ph")
    corners = [
        n.one("Sub", [px, hw], "decode/x1"),
        n.one("Sub", [py, hh], "decode/y1"),
        n.one("Add", [px, hw], "decode/x2"),
        n.one("Add", [py, hh], "decode/y2"),
    ]
    boxes = n.one("Concat", corners, "decode/boxes", axis=1)
    low = n.one("Max", [boxes, n.f32("clip_low", 0.0)], "decode/clip_low")
    return n.one("Min", [low, n.f32("clip_high", float(retinanet.IMAGE_SIZE))], "decode/clipped")


def _batched_nms(n: _Nodes, boxes: str, scores: str, labels: str) -> str:
    """torchvision's coordinate trick + one NonMaxSuppression: kept positions, best first."""
    # max(0, boxes.max()): the boxes are clipped to [0, 800], so the 0 changes nothing when
    # there are boxes and gives a finite value (not ReduceMax's -inf) when there are none.
    flat = n.one("Reshape", [boxes, n.i64("flat_shape", -1)], "nms/flat_boxes")
    padded = n.one("Concat", [flat, n.f32("nms/zero", 0.0, (1,))], "nms/padded", axis=0)
    max_coord = n.one("ReduceMax", [padded], "nms/max_coordinate", keepdims=0)
    stride = n.one("Add", [max_coord, n.f32("nms/one", 1.0)], "nms/stride")
    label_f = n.one("Cast", [labels], "nms/label_float", to=TensorProto.FLOAT)
    offsets = n.one("Mul", [label_f, stride], "nms/offsets")
    offsets = n.one("Unsqueeze", [offsets, n.i64("axes1", 1)], "nms/offsets_column")
    shifted = n.one("Add", [boxes, offsets], "nms/shifted_boxes")
    nms_boxes = n.one("Unsqueeze", [shifted, n.i64("axis0", 0)], "nms/boxes")  # [1, M, 4]
    nms_scores = n.one("Unsqueeze", [scores, n.i64("axes01", 0, 1)], "nms/scores")  # [1, 1, M]
    selected = n.one(
        "NonMaxSuppression",
        [
            nms_boxes,
            nms_scores,
            n.i64("nms/max_output", DETECTIONS_PER_IMAGE),
            n.f32("nms/iou_threshold", NMS_IOU, (1,)),
        ],
        "nms/selected",
        center_point_box=0,
    )
    # One batch, one class: selected is [S, 3] rows (0, 0, position) by descending score.
    column = n.const("nms/box_column", np.asarray(2, np.int64))
    return n.one("Gather", [selected, column], "nms/keep", axis=1)


def with_nms(raw: onnx.ModelProto) -> onnx.ModelProto:
    """The raw-head RetinaNet `raw` with the reference post-processing appended (SPEC §2.2).

    Returns a new opset-13 model: input `images` float32 [1,3,800,800]; outputs `boxes` float32
    [K,4], `labels` int64 [K], `scores` float32 [K] (K <= 300, descending score); `raw` is not
    modified. Raises ModelError when `raw` is not `models.retinanet`'s raw interface.
    """
    _check_raw(raw)
    n = _Nodes()
    # torchvision splits the concatenated head outputs back into levels (split_head_outputs).
    sizes = n.i64("level_sizes", *retinanet.LEVEL_SIZES)
    levels = n.op(
        "Split", [retinanet.CLS_NAME, sizes], "level_logits", len(retinanet.LEVEL_SIZES), axis=1
    )
    per_level: list[tuple[str, str, str]] = []
    start = 0
    for level, (logits, size) in enumerate(zip(levels, retinanet.LEVEL_SIZES, strict=True)):
        per_level.append(_level(n, logits, level, start))
        start += size
    scores, anchor, labels = (
        n.one("Concat", [lv[i] for lv in per_level], f"all/{what}", axis=0)
        for i, what in enumerate(("scores", "anchor", "labels"))
    )
    anchors = np.ascontiguousarray(retinanet.anchors(), dtype=np.float32)
    if anchors.shape != (start, 4):
        raise ModelError(
            f"retinanet.anchors() has shape {anchors.shape}, but LEVEL_SIZES sum to {start}:"
            " models/retinanet.py is inconsistent"
        )
    table = n.const("anchors", anchors)
    deltas = n.one("Reshape", [retinanet.REG_NAME, n.i64("box_shape", -1, 4)], "flat_deltas")
    boxes = _decode(n, deltas, table, anchor)
    keep = _batched_nms(n, boxes, scores, labels)
    for src, dst in ((boxes, BOXES_NAME), (labels, LABELS_NAME), (scores, SCORES_NAME)):
        n.nodes.append(helper.make_node("Gather", [src, keep], [dst], name=f"{_P}/{dst}", axis=0))

    side = retinanet.IMAGE_SIZE
    graph = helper.make_graph(
        [*raw.graph.node, *n.nodes],
        f"{raw.graph.name}_nms",
        [
            helper.make_tensor_value_info(
                retinanet.INPUT_NAME, TensorProto.FLOAT, [1, 3, side, side]
            )
        ],
        [
            helper.make_tensor_value_info(BOXES_NAME, TensorProto.FLOAT, [DETECTIONS_DIM, 4]),
            helper.make_tensor_value_info(LABELS_NAME, TensorProto.INT64, [DETECTIONS_DIM]),
            helper.make_tensor_value_info(SCORES_NAME, TensorProto.FLOAT, [DETECTIONS_DIM]),
        ],
        [*raw.graph.initializer, *n.inits.values()],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="mlperf_trt",
        producer_version="1",
        doc_string=(
            "Architecture-faithful stand-in of the MLPerf reference RetinaNet ONNX"
            " (resnext50_32x4d_fpn.onnx, SPEC §2.2) and its interface: images float32"
            " [1,3,800,800] RGB in [0,1] -> boxes float32 [K,4] (x1,y1,x2,y2, pixels of the"
            " 800x800 input), labels int64 [K], scores float32 [K], K <= 300 by descending score;"
            " torchvision's post-processing (sigmoid, score > 0.05, top 1000 per level, BoxCoder"
            " decode, batched NMS at IoU 0.5) inside the graph, around mlperf_trt's seeded"
            f" RetinaNet stand-in. Raw model: {raw.doc_string}"
        ),
    )
    model.ir_version = IR_VERSION
    return model


def write_official(raw: onnx.ModelProto, path: Path) -> Path:
    """Write `with_nms(raw)` to `path` atomically (models.save_model) and return the path."""
    from mlperf_trt.models import save_model

    save_model(with_nms(raw), Path(path))
    return Path(path)
