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
widths/8 (4 groups), 16 FPN channels, 2 convs per head and 1x1 head output convs. A 1x1 output
conv is one matrix product per cell, so the tiny graph computes it as a single Gemm over the
cells of all levels in NHWC order: [cells, 16] x [16, 9 x 264] is already torchvision's
(level, y, x, anchor, class) order, with no transpose or concatenation of the 127 MB of class
logits. On two vCPUs that took one tiny image from 310 to 114 ms on one ONNX Runtime thread
(190 to 79 ms on two; measured): the 3x3 output conv over 16 channels was 9 GFLOP, and the
transpose, layout reorder and concatenation of its output three more passes over 127 MB.

Seeded weights, initialised from data so that the stand-in behaves like a detector:
- every convolution has a ternary "box" kernel (one random sign per channel pair over the k x k
  window, low-pass) and its (folded) bias and scale are fitted on a fixed batch of synthetic
  images (data.synthetic_images, preprocessed as SPEC §2.2): unit variance per channel, a small
  positive shift before each ReLU (LSUV, as models.resnet50 does);
- classification: the bias is RetinaNet's prior, -log((1 - 0.01) / 0.01). Only ACTIVE_CLASSES
  classes get weights; the others keep the prior alone (score 0.01 < 0.05: never a candidate).
  Active classes have 3x3 centre-minus-surround kernels (no response to a uniform region, so
  they fire on local structure such as the drawn shapes' edges, not on an image's overall
  level); with 1x1 logits (tiny) the cls head's last 3x3 conv has the surround kernels and the
  logits weigh half the channels +1 and half -1 (a channel contrast). Their logit is
  prior + offset + t * z, z the standardised response: two quantiles of z on the init batch fix
  offset and t so that CANDIDATE_FRACTION (0.05%) of the active (cell, anchor, class) responses
  score above 0.05 and CONFIDENT_FRACTION (0.003%) above 0.5. On synthetic images that is a few
  dozen detections above 0.5 per image (measured on 12 held-out images: 5-123 with the tiny 1x1
  logits, 29-121 when tiny had 3x3 ones),
  which is what makes the synthetic ground truth (the FP32 model's confident detections);
- box deltas are standardised responses times REGRESSION_STD (0.1): boxes stay near their
  anchors, shifted and resized by image content.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx

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
    head_kernel: int = 3  # of the heads' output convs (class logits, box deltas)
    expansion: int = 4

    def width(self, planes: int) -> int:
        """Channels of a bottleneck's grouped 3x3 conv (torchvision's ResNeXt formula)."""
        return int(planes * (self.width_per_group / 64.0)) * self.groups


ARCHITECTURES: dict[str, Architecture] = {
    "full": Architecture((3, 4, 6, 3), (64, 128, 256, 512), 32, 4, 64, 256, 4),
    "tiny": Architecture((1, 1, 1, 1), (8, 16, 32, 64), 4, 16, 8, 16, 2, head_kernel=1),
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
    from mlperf_trt.models.retinanet_graph import Builder, assemble

    builder = Builder(np.random.default_rng(0), None, size)
    assemble(builder, _arch(size))
    return builder.table


def build(size: str = "full", seed: int = 0) -> onnx.ModelProto:
    """Build the RetinaNet stand-in of `size` ("full" or "tiny") with weights from `seed`."""
    arch = _arch(size)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ModelError(f"model seed must be a non-negative integer, got {seed!r}")
    from mlperf_trt.models.retinanet_graph import Builder, assemble

    builder = Builder(np.random.default_rng(seed), _init_images(INIT_IMAGES[size]), size)
    assemble(builder, arch)
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
