"""RetinaNet (ResNeXt50-32x4d FPN, 264 classes) built in code as an ONNX graph (SPEC §2.2).

The architecture is the MLPerf reference model's (the MLPerf Training SSD reference, a copy of
torchvision's RetinaNet v1):

- ImageNet normalisation inside the model (SPEC §2.2): input `images` float32 [N,3,800,800], RGB
  in [0,1]; (x - [0.485,0.456,0.406]) / [0.229,0.224,0.225] are the graph's first nodes.
- Backbone ResNeXt50-32x4d: 7x7/2 stem + 3x3/2 max-pool, bottleneck stages [3,4,6,3] with
  grouped 3x3 convolutions (32 groups of 4 x planes/64 channels: widths 128/256/512/1024),
  outputs 256/512/1024/2048, stride on the 3x3 conv, projection shortcut on each stage's first
  block; batch-norm folded into the convolutions (the reference freezes it).
- FPN on C3..C5 (torchvision `returned_layers=[2,3,4]`): 1x1 lateral convs to 256 channels,
  nearest 2x top-down upsampling and add, 3x3 output convs; P6 = 3x3/2 conv of P5 and
  P7 = 3x3/2 conv of ReLU(P6) (`LastLevelP6P7(256, 256)`: in == out, so P6 comes from P5).
  At 800x800 the levels are 100, 50, 25, 13 and 7 cells square.
- Heads shared by all levels: 4 x (3x3 conv 256 + ReLU), no GroupNorm (the reference's
  RetinaNetClassificationHead / RegressionHead have none; torchvision's v2 heads added it), then a
  3x3 conv to 9 x 264 class logits and one to 9 x 4 box deltas.

Our model emits the RAW head outputs, reshaped as torchvision does before post-processing:
`cls_logits` float32 [N, A, 264] and `bbox_regression` float32 [N, A, 4], with
A = 9 x (100^2 + 50^2 + 25^2 + 13^2 + 7^2) = 120,087 in torchvision order (level-major P3..P7,
then y, x, anchor). The post-processing (decode, thresholds, class-wise NMS; `retinanet_post`)
runs outside the graph, in C++. The official ONNX (benchmarks.retinanet's model card) has NMS
inside and outputs boxes/labels/scores instead.

Sizes: `full` is the architecture above; `tiny` keeps the interface with 1 block per stage,
widths/8 (4 groups), 16 FPN channels and 2 convs per head.

Seeded weights, initialised from data so that the stand-in behaves like a detector:
- every convolution has a ternary "box" kernel (one random sign per channel pair over the k x k
  window, low-pass) and its (folded) bias and scale are fitted on a fixed batch of synthetic
  images (data.synthetic_images, preprocessed as SPEC §2.2): unit variance per channel, a small
  positive shift before each ReLU (LSUV, as models.resnet50 does);
- classification: the bias is RetinaNet's prior, -log((1 - 0.01) / 0.01). Only ACTIVE_CLASSES
  classes get weights; the others keep the prior alone (score 0.01 < 0.05: never a candidate).
  Active classes have 3x3 centre-minus-surround kernels (no response to a uniform region, so
  they fire on local structure such as the drawn shapes' edges, not on an image's overall
  level), and their logit is prior + offset + t * z, z the standardised response: two quantiles
  of z on the init batch fix offset and t so that CANDIDATE_FRACTION (0.05%) of the active
  (cell, anchor, class) responses score above 0.05 and CONFIDENT_FRACTION (0.003%) above 0.5.
  On synthetic images that is a few dozen detections above 0.5 per image (measured: 14-52),
  which is what makes the synthetic ground truth (the FP32 model's confident detections);
- box deltas are standardised responses times REGRESSION_STD (0.1): boxes stay near their
  anchors, shifted and resized by image content.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from mlperf_trt.benchmarks.base import ModelCard, TensorSpec
from mlperf_trt.errors import ModelError

__all__ = [
    "ANCHOR_SIZES",
    "ARCHITECTURES",
    "ASPECT_RATIOS",
    "Architecture",
    "ConvSpec",
    "LEVEL_SIZES",
    "NUM_ANCHORS",
    "NUM_CLASSES",
    "RAW_CARD",
    "TOTAL_ANCHORS",
    "anchors",
    "build",
    "feature_sizes",
    "layer_table",
]

SIZES: tuple[str, ...] = ("full", "tiny")
OPSET = 13
INPUT_NAME = "images"  # SPEC §2.2
CLS_NAME = "cls_logits"
REG_NAME = "bbox_regression"
BATCH_DIM = "N"
IMAGE_SIZE = 800  # SPEC §2.2
NUM_CLASSES = 264  # SPEC §2.2
MEAN = (0.485, 0.456, 0.406)  # SPEC §2.2: ImageNet normalisation inside the model
STD = (0.229, 0.224, 0.225)
# torchvision RetinaNet's anchor generator: 3 scales (2^0, 2^(1/3), 2^(2/3)) x 3 aspect ratios
# per level, base sizes 32..512 on P3..P7 (SPEC §2.2: 9 anchors per location on 5 levels).
ANCHOR_SIZES: tuple[tuple[int, int, int], ...] = tuple(
    (x, int(x * 2 ** (1.0 / 3)), int(x * 2 ** (2.0 / 3))) for x in (32, 64, 128, 256, 512)
)
ASPECT_RATIOS = (0.5, 1.0, 2.0)
NUM_ANCHORS = len(ASPECT_RATIOS) * 3
PRIOR_PROBABILITY = 0.01  # RetinaNet's classification-bias prior
PRIOR_BIAS = -math.log((1 - PRIOR_PROBABILITY) / PRIOR_PROBABILITY)


@dataclass(frozen=True)
class Architecture:
    """The shape of one size of the network."""

    blocks: tuple[int, ...]  # bottleneck blocks per stage
    planes: tuple[int, ...]  # torchvision's `planes` per stage (output = planes * expansion)
    groups: int  # cardinality of the grouped 3x3 convs
    width_per_group: int
    stem: int
    fpn: int  # FPN / head channels
    head_convs: int  # 3x3 conv + ReLU layers per head before the output conv
    expansion: int = 4

    def width(self, planes: int) -> int:
        """Channels of a bottleneck's grouped 3x3 conv (torchvision's ResNeXt formula)."""
        return int(planes * (self.width_per_group / 64.0)) * self.groups


ARCHITECTURES: dict[str, Architecture] = {
    "full": Architecture((3, 4, 6, 3), (64, 128, 256, 512), 32, 4, 64, 256, 4),
    "tiny": Architecture((1, 1, 1, 1), (8, 16, 32, 64), 4, 16, 8, 16, 2),
}

# Data-dependent initialisation (module docstring).
INIT_IMAGES = {"full": 2, "tiny": 6}
INIT_SEED = 20_240_802
RESIDUAL_GAIN = 0.5
RELU_SHIFT = 0.5
VARIANCE_FLOOR = 0.02
ACTIVE_CLASSES = 16
CANDIDATE_FRACTION = 0.0005  # of active (location, anchor, class) responses above score 0.05
CONFIDENT_FRACTION = 0.00003  # ... and above score 0.5
REGRESSION_STD = 0.1


def feature_sizes(image_size: int = IMAGE_SIZE) -> tuple[int, ...]:
    """Side of each FPN level P3..P7 for a square input (the convolutions' arithmetic)."""

    def conv(n: int, k: int, s: int, p: int) -> int:
        return (n + 2 * p - k) // s + 1

    n = conv(conv(image_size, 7, 2, 3), 3, 2, 1)  # stem conv, max-pool: C2
    sizes = []
    for _ in range(3):  # C3, C4, C5: stride 2 on the 3x3 conv of each stage's first block
        n = conv(n, 3, 2, 1)
        sizes.append(n)
    for _ in range(2):  # P6, P7
        n = conv(n, 3, 2, 1)
        sizes.append(n)
    return tuple(sizes)


LEVEL_SIZES: tuple[int, ...] = tuple(NUM_ANCHORS * s * s for s in feature_sizes())
TOTAL_ANCHORS = sum(LEVEL_SIZES)  # 120,087 at 800x800

# The engine interface of our built model (raw heads; the official card is NMS-inside).
RAW_CARD = ModelCard(
    inputs=(TensorSpec(INPUT_NAME, "float32", (BATCH_DIM, 3, IMAGE_SIZE, IMAGE_SIZE)),),
    outputs=(
        TensorSpec(CLS_NAME, "float32", (BATCH_DIM, TOTAL_ANCHORS, NUM_CLASSES)),
        TensorSpec(REG_NAME, "float32", (BATCH_DIM, TOTAL_ANCHORS, 4)),
    ),
    source="mlperf_trt's built-in RetinaNet (raw head outputs; models/retinanet.py)",
)


def _cell_anchors(scales: Sequence[int]) -> np.ndarray:
    """torchvision AnchorGenerator.generate_anchors in float32: ratio-major, scale-minor."""
    s = np.asarray(scales, dtype=np.float32)
    ratios = np.asarray(ASPECT_RATIOS, dtype=np.float32)
    h_ratios = np.sqrt(ratios)
    w_ratios = np.float32(1) / h_ratios
    ws = (w_ratios[:, None] * s[None, :]).reshape(-1)
    hs = (h_ratios[:, None] * s[None, :]).reshape(-1)
    base: np.ndarray = np.round(np.stack([-ws, -hs, ws, hs], axis=1) / np.float32(2))
    return base


def anchors(image_size: int = IMAGE_SIZE) -> np.ndarray:
    """float32 [A,4] (x1,y1,x2,y2) in torchvision order: level, then y, x, anchor.

    Strides are image_size // grid (torchvision's integer division: 8, 16, 32, 61, 114 at 800).
    """
    out = []
    for grid, scales in zip(feature_sizes(image_size), ANCHOR_SIZES, strict=True):
        stride = np.float32(image_size // grid)
        shifts = np.arange(grid, dtype=np.float32) * stride
        shift_y, shift_x = np.meshgrid(shifts, shifts, indexing="ij")
        sx, sy = shift_x.reshape(-1), shift_y.reshape(-1)
        shift = np.stack([sx, sy, sx, sy], axis=1)
        out.append((shift[:, None, :] + _cell_anchors(scales)[None, :, :]).reshape(-1, 4))
    return np.concatenate(out).astype(np.float32)


@dataclass(frozen=True)
class ConvSpec:
    """One convolution of the graph (weights [out, in/groups, k, k] plus a bias)."""

    name: str
    out_channels: int
    in_channels: int
    kernel: int
    stride: int
    groups: int = 1

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        return (self.out_channels, self.in_channels // self.groups, self.kernel, self.kernel)


def layer_table(size: str = "full") -> list[ConvSpec]:
    """Every convolution of `size`, in graph order, without building anything."""
    builder = _Builder(np.random.default_rng(0), None, size)
    _assemble(builder, _arch(size))
    return builder.table


def build(size: str = "full", seed: int = 0) -> onnx.ModelProto:
    """Build the RetinaNet stand-in of `size` ("full" or "tiny") with weights from `seed`."""
    arch = _arch(size)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ModelError(f"model seed must be a non-negative integer, got {seed!r}")
    builder = _Builder(np.random.default_rng(seed), _init_images(INIT_IMAGES[size]), size)
    _assemble(builder, arch)
    return builder.finish(seed)


def _arch(size: str) -> Architecture:
    if size not in ARCHITECTURES:
        raise ModelError(
            f"unknown retinanet model size {size!r}: expected one of {', '.join(SIZES)}"
        )
    return ARCHITECTURES[size]


def _init_images(count: int) -> np.ndarray:
    """`count` images of the data layer's synthetic kind, preprocessed as SPEC §2.2, NCHW."""
    from mlperf_trt.data.openimages import preprocess
    from mlperf_trt.data.synthetic_images import image_spec, render_image

    out = np.empty((count, 3, IMAGE_SIZE, IMAGE_SIZE), np.float32)
    for i in range(count):
        spec = image_spec(INIT_SEED, i)
        rgb = render_image(np.random.default_rng([INIT_SEED, i, 1]), spec.height, spec.width)
        out[i] = preprocess(np.ascontiguousarray(rgb[:, :, ::-1]))  # decode() gives BGR
    return out


def _assemble(b: _Builder, arch: Architecture) -> None:
    x = b.normalise()
    x = b.conv([x], arch.stem, 7, 2, name="backbone/stem")[0]
    b.acts.pop("transform/normalised")
    x = b.max_pool(x, "backbone/stem/pool")
    features = []
    for stage, (blocks, planes) in enumerate(zip(arch.blocks, arch.planes, strict=True), start=1):
        for block in range(blocks):
            x = b.bottleneck(
                x,
                arch.width(planes),
                planes * arch.expansion,
                arch.groups,
                stride=2 if stage > 1 and block == 0 else 1,
                project=block == 0,
                name=f"backbone/layer{stage}/{block}",
            )
        if stage >= 2:
            features.append(x)  # C3, C4, C5
            b.keep.add(x)
    levels = b.fpn(features, arch.fpn)
    cls = levels
    reg = levels
    for i in range(arch.head_convs):
        cls = b.conv(cls, arch.fpn, 3, 1, name=f"head/cls/conv{i}")
        reg = b.conv(reg, arch.fpn, 3, 1, name=f"head/reg/conv{i}")
    b.outputs(b.cls_logits(cls, "head/cls/logits"), b.box_deltas(reg, "head/reg/deltas"))


class _Builder:
    """Nodes, initialisers and (live mode) the init batch's value of each live tensor.

    With `images` None it only records the convolution table (shapes, no weights).
    """

    def __init__(self, rng: np.random.Generator, images: np.ndarray | None, size: str) -> None:
        self.rng = rng
        self.live = images is not None
        self.size = size
        self.table: list[ConvSpec] = []
        self.nodes: list[onnx.NodeProto] = []
        self.weights: list[onnx.TensorProto] = []
        # live: the init batch's activation; dry: (channels, side)
        self.acts: dict[str, Any] = {}
        self.acts[INPUT_NAME] = images if images is not None else (3, IMAGE_SIZE)
        self.keep: set[str] = set()  # tensors a later layer reads again

    # -- helpers ----------------------------------------------------------------------------------

    def _channels(self, x: str) -> int:
        value = self.acts[x]
        return int(value.shape[1]) if self.live else int(value[0])

    def _const(self, name: str, value: np.ndarray) -> str:
        self.weights.append(numpy_helper.from_array(value, name))
        return name

    def normalise(self) -> str:
        mean = np.asarray(MEAN, np.float32).reshape(1, 3, 1, 1)
        std = np.asarray(STD, np.float32).reshape(1, 3, 1, 1)
        self._const("transform/mean", mean)
        self._const("transform/std", std)
        self.nodes.append(
            helper.make_node("Sub", [INPUT_NAME, "transform/mean"], ["transform/sub"])
        )
        self.nodes.append(
            helper.make_node("Div", ["transform/sub", "transform/std"], ["transform/normalised"])
        )
        if self.live:
            self.acts["transform/normalised"] = (self.acts.pop(INPUT_NAME) - mean) / std
        else:
            self.acts["transform/normalised"] = self.acts.pop(INPUT_NAME)
        return "transform/normalised"

    def _kernel(self, out_ch: int, in_per_group: int, k: int) -> np.ndarray:
        signs = self.rng.integers(0, 2, size=(out_ch, in_per_group, 1, 1)) * 2.0 - 1.0
        weight = np.broadcast_to(signs, (out_ch, in_per_group, k, k))
        scaled: np.ndarray = (weight * np.sqrt(2.0 / (in_per_group * k * k))).astype(np.float32)
        return scaled

    def _surround_kernel(self, out_ch: int, in_ch: int) -> np.ndarray:
        """3x3 centre-minus-surround kernels with a random sign per channel pair: zero response
        to a uniform region, so a class fires on local structure, not on an image's overall
        level."""
        signs = self.rng.integers(0, 2, size=(out_ch, in_ch, 1, 1)) * 2.0 - 1.0
        pattern = np.full((3, 3), -1.0 / 8.0)
        pattern[1, 1] = 1.0
        weight: np.ndarray = (signs * pattern[None, None] / np.sqrt(in_ch)).astype(np.float32)
        return weight

    def _raw(
        self, xs: Sequence[str], weight: np.ndarray, attrs: dict[str, Any]
    ) -> list[np.ndarray]:
        return [_run_conv(self.acts[x], weight, attrs) for x in xs]

    @staticmethod
    def _stats(raws: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel mean and variance pooled over every position of every level."""
        count = sum(r.shape[0] * r.shape[2] * r.shape[3] for r in raws)
        total = sum(r.sum(axis=(0, 2, 3), dtype=np.float64) for r in raws)
        mean = total / count
        centre = mean.astype(np.float32)[None, :, None, None]
        sq = sum(((r - centre) ** 2).sum(axis=(0, 2, 3), dtype=np.float64) for r in raws)
        return mean, sq / count

    def _emit_conv(
        self,
        xs: Sequence[str],
        spec: ConvSpec,
        weight: np.ndarray,
        bias: np.ndarray,
        attrs: dict[str, Any],
        suffix: str = "conv",
    ) -> list[str]:
        w_name = self._const(f"{spec.name}/weight", weight)
        b_name = self._const(f"{spec.name}/bias", bias)
        outs = []
        for level, x in enumerate(xs):
            y = f"{spec.name}/{suffix}" + (f"/p{level + 3}" if len(xs) > 1 else "")
            self.nodes.append(helper.make_node("Conv", [x, w_name, b_name], [y], name=y, **attrs))
            outs.append(y)
        return outs

    # -- layers -----------------------------------------------------------------------------------

    def conv(
        self,
        xs: Sequence[str],
        out_ch: int,
        k: int,
        stride: int,
        *,
        name: str,
        groups: int = 1,
        relu: bool = True,
        gain: float = 1.0,
    ) -> list[str]:
        """Conv (+ ReLU) shared by the inputs `xs`, scale and bias fitted on the init batch."""
        in_ch = self._channels(xs[0])
        spec = ConvSpec(name, out_ch, in_ch, k, stride, groups)
        self.table.append(spec)
        attrs: dict[str, Any] = {
            "kernel_shape": [k, k],
            "strides": [stride, stride],
            "pads": [k // 2] * 4,
            "group": groups,
        }
        if not self.live:
            outs = []
            for x in xs:
                side = (self.acts[x][1] + 2 * (k // 2) - k) // stride + 1
                self.acts[f"{name}/{x}"] = (out_ch, side)
                outs.append(f"{name}/{x}")
            return [self._relu_dry(o) for o in outs] if relu else outs
        weight = self._kernel(out_ch, in_ch // groups, k)
        raws = self._raw(xs, weight, attrs)
        mean, var = self._stats(raws)
        var = var + VARIANCE_FLOOR * float(var.mean()) + 1e-12
        scale = gain / np.sqrt(var)
        shift = RELU_SHIFT * gain if relu else 0.0
        bias = (shift - mean * scale).astype(np.float32)
        outs = self._emit_conv(
            xs, spec, (weight * scale[:, None, None, None]).astype(np.float32), bias, attrs
        )
        s32 = scale.astype(np.float32)[None, :, None, None]
        for y, raw in zip(outs, raws, strict=True):
            raw *= s32
            raw += bias[None, :, None, None]
            self.acts[y] = raw
        return [self._relu(y) for y in outs] if relu else outs

    def _relu_dry(self, x: str) -> str:
        y = f"{x}/relu"
        self.acts[y] = self.acts.pop(x)
        return y

    def _relu(self, x: str) -> str:
        y = f"{x}/relu"
        self.nodes.append(helper.make_node("Relu", [x], [y], name=y))
        value = self.acts.pop(x)
        self.acts[y] = np.maximum(value, 0.0, out=value)
        return y

    def max_pool(self, x: str, name: str) -> str:
        y = f"{name}/maxpool"
        attrs: dict[str, Any] = {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}
        self.nodes.append(helper.make_node("MaxPool", [x], [y], name=y, **attrs))
        value = self.acts.pop(x)
        if self.live:
            self.acts[y] = _run_node("MaxPool", value, attrs)
        else:
            self.acts[y] = (value[0], (value[1] + 2 - 3) // 2 + 1)
        return y

    def add(self, a: str, b: str, name: str, relu: bool) -> str:
        y = f"{name}/add"
        self.nodes.append(helper.make_node("Add", [a, b], [y], name=y))
        va, vb = self.acts.pop(a), self.acts.pop(b)
        self.acts[y] = va + vb if self.live else va
        return (self._relu(y) if self.live else self._relu_dry(y)) if relu else y

    def bottleneck(
        self,
        x: str,
        width: int,
        out_ch: int,
        groups: int,
        *,
        stride: int,
        project: bool,
        name: str,
    ) -> str:
        shortcut = x
        if project:
            shortcut = self.conv([x], out_ch, 1, stride, relu=False, name=f"{name}/downsample")[0]
        h = self.conv([x], width, 1, 1, name=f"{name}/conv1")[0]
        if project and x not in self.keep:  # C3, C4 also feed the FPN
            self.acts.pop(x)
        h2 = self.conv([h], width, 3, stride, groups=groups, name=f"{name}/conv2")[0]
        self.acts.pop(h)
        h3 = self.conv([h2], out_ch, 1, 1, relu=False, gain=RESIDUAL_GAIN, name=f"{name}/conv3")[0]
        self.acts.pop(h2)
        return self.add(h3, shortcut, name, relu=True)

    def upsample_add(self, top: str, lateral: str, name: str) -> str:
        """Nearest 2x upsampling of `top` (torchvision: floor(x / 2) source index) + lateral."""
        scales = self._const(f"{name}/scales", np.array([1, 1, 2, 2], np.float32))
        up = f"{name}/upsample"
        self.nodes.append(
            helper.make_node(
                "Resize",
                [top, "", scales],
                [up],
                name=up,
                mode="nearest",
                coordinate_transformation_mode="asymmetric",
                nearest_mode="floor",
            )
        )
        value = self.acts[top]
        if self.live:
            self.acts[up] = value.repeat(2, axis=2).repeat(2, axis=3)
        else:
            self.acts[up] = (value[0], value[1] * 2)
        return self.add(up, lateral, name, relu=False)

    def fpn(self, features: list[str], channels: int) -> list[str]:
        """P3..P7 from C3..C5 (torchvision FeaturePyramidNetwork + LastLevelP6P7(256, 256))."""
        inner = [
            self.conv([c], channels, 1, 1, relu=False, name=f"fpn/inner{i}")[0]
            for i, c in enumerate(features)
        ]
        for c in features:
            self.acts.pop(c)
        last = inner[-1]
        merged = [last]
        for i in range(len(inner) - 2, -1, -1):
            last = self.upsample_add(last, inner[i], f"fpn/topdown{i}")  # keeps `last` alive
            merged.insert(0, last)
        outs = [
            self.conv([m], channels, 3, 1, relu=False, name=f"fpn/layer{i}")[0]
            for i, m in enumerate(merged)
        ]
        for m in merged:
            self.acts.pop(m)
        p6 = self.conv([outs[-1]], channels, 3, 2, relu=False, name="fpn/p6")[0]
        p6_relu = f"{p6}/relu_for_p7"
        self.nodes.append(helper.make_node("Relu", [p6], [p6_relu], name=p6_relu))
        value = self.acts[p6]
        self.acts[p6_relu] = np.maximum(value, 0.0) if self.live else value
        p7 = self.conv([p6_relu], channels, 3, 2, relu=False, name="fpn/p7")[0]
        self.acts.pop(p6_relu)
        return [*outs, p6, p7]

    def _head_output(
        self, xs: Sequence[str], name: str, out_ch: int
    ) -> tuple[ConvSpec, dict[str, Any]]:
        spec = ConvSpec(name, out_ch, self._channels(xs[0]), 3, 1)
        self.table.append(spec)
        attrs: dict[str, Any] = {"kernel_shape": [3, 3], "strides": [1, 1], "pads": [1] * 4}
        return spec, attrs

    def cls_logits(self, xs: Sequence[str], name: str) -> list[str]:
        """9 x 264 logits per cell: the prior for idle classes, fitted responses for active ones."""
        out_ch = NUM_ANCHORS * NUM_CLASSES
        spec, attrs = self._head_output(xs, name, out_ch)
        if not self.live:
            return self._dry_heads(xs)
        in_ch = spec.in_channels
        classes = np.sort(self.rng.choice(NUM_CLASSES, ACTIVE_CLASSES, replace=False))
        active = (np.arange(NUM_ANCHORS)[:, None] * NUM_CLASSES + classes[None, :]).reshape(-1)
        kernel = self._surround_kernel(len(active), in_ch)
        raws = self._raw(xs, kernel, attrs)
        mean, var = self._stats(raws)
        std = np.sqrt(var + 1e-12)
        z = np.concatenate(
            [((r - mean[None, :, None, None]) / std[None, :, None, None]).ravel() for r in raws]
        )
        # Two quantiles of the init responses fix the affine map z -> logit: CANDIDATE_FRACTION
        # of them land above score 0.05 and CONFIDENT_FRACTION above score 0.5.
        z_cand, z_conf = np.quantile(z, [1.0 - CANDIDATE_FRACTION, 1.0 - CONFIDENT_FRACTION])
        temperature = -math.log(0.05 / 0.95) / max(float(z_conf - z_cand), 1e-3)
        offset = -PRIOR_BIAS - temperature * float(z_conf)
        scale = temperature / std
        weight = np.zeros((out_ch, in_ch, 3, 3), np.float32)
        weight[active] = kernel * scale[:, None, None, None].astype(np.float32)
        bias = np.full(out_ch, PRIOR_BIAS, np.float64)
        bias[active] += offset - mean * scale
        outs = self._emit_conv(xs, spec, weight, bias.astype(np.float32), attrs)
        for x in xs:
            self.acts.pop(x)
        return self._flatten_heads(outs, NUM_CLASSES, f"{name}/flat")

    def box_deltas(self, xs: Sequence[str], name: str) -> list[str]:
        out_ch = NUM_ANCHORS * 4
        spec, attrs = self._head_output(xs, name, out_ch)
        if not self.live:
            return self._dry_heads(xs)
        kernel = self._kernel(out_ch, spec.in_channels, 3)
        mean, var = self._stats(self._raw(xs, kernel, attrs))
        scale = REGRESSION_STD / np.sqrt(var + 1e-12)
        weight = (kernel * scale[:, None, None, None]).astype(np.float32)
        outs = self._emit_conv(xs, spec, weight, (-mean * scale).astype(np.float32), attrs)
        for x in xs:
            self.acts.pop(x)
        return self._flatten_heads(outs, 4, f"{name}/flat")

    def _dry_heads(self, xs: Sequence[str]) -> list[str]:
        for x in xs:
            self.acts.pop(x)
        return []

    def _flatten_heads(self, outs: Sequence[str], per_anchor: int, name: str) -> list[str]:
        """(N, A*K, H, W) -> (N, H*W*A, K) per level: torchvision's view/permute/reshape."""
        split = self._const(
            f"{name}/split_shape", np.array([0, NUM_ANCHORS, per_anchor, -1], np.int64)
        )
        flat = self._const(f"{name}/flat_shape", np.array([0, -1, per_anchor], np.int64))
        result = []
        for level, y in enumerate(outs):
            a, t, f = (f"{name}/p{level + 3}/{s}" for s in ("split", "perm", "out"))
            self.nodes.append(helper.make_node("Reshape", [y, split], [a], name=a))
            self.nodes.append(helper.make_node("Transpose", [a], [t], name=t, perm=[0, 3, 1, 2]))
            self.nodes.append(helper.make_node("Reshape", [t, flat], [f], name=f))
            result.append(f)
        return result

    def outputs(self, cls: list[str], reg: list[str]) -> None:
        if not self.live:
            return
        self.nodes.append(helper.make_node("Concat", cls, [CLS_NAME], name=CLS_NAME, axis=1))
        self.nodes.append(helper.make_node("Concat", reg, [REG_NAME], name=REG_NAME, axis=1))

    def finish(self, seed: int) -> onnx.ModelProto:
        n = BATCH_DIM
        graph = helper.make_graph(
            self.nodes,
            f"retinanet_resnext50_32x4d_fpn_{self.size}",
            [
                helper.make_tensor_value_info(
                    INPUT_NAME, TensorProto.FLOAT, [n, 3, IMAGE_SIZE, IMAGE_SIZE]
                )
            ],
            [
                helper.make_tensor_value_info(
                    CLS_NAME, TensorProto.FLOAT, [n, TOTAL_ANCHORS, NUM_CLASSES]
                ),
                helper.make_tensor_value_info(REG_NAME, TensorProto.FLOAT, [n, TOTAL_ANCHORS, 4]),
            ],
            self.weights,
        )
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET)],
            producer_name="mlperf_trt",
            producer_version="1",
            doc_string=f"RetinaNet ResNeXt50-32x4d FPN stand-in ({self.size}, seed {seed}): raw"
            " head outputs, seeded data-initialised weights (SPEC §2.2)",
        )
        model.ir_version = 8
        return model


def _session(model: onnx.ModelProto) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def _run_node(
    op: str, x: np.ndarray, attrs: dict[str, Any], w: np.ndarray | None = None
) -> np.ndarray:
    """One ONNX node on the init batch through onnxruntime (the graph's own arithmetic)."""
    inputs = ["x"] + (["w"] if w is not None else [])
    graph = helper.make_graph(
        [helper.make_node(op, inputs, ["y"], **attrs)],
        op.lower(),
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, "w")] if w is not None else [],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    (out,) = _session(model).run(["y"], {"x": np.ascontiguousarray(x, dtype=np.float32)})
    return np.asarray(out, dtype=np.float32)


def _run_conv(x: np.ndarray, weight: np.ndarray, attrs: dict[str, Any]) -> np.ndarray:
    return _run_node("Conv", x, attrs, weight)
