"""ResNet50-v1.5 built in code as an ONNX graph, with the official interface (SPEC §2.1).

The graph is the inference graph of the official tf2onnx export: batch-norm folded into the
convolutions' weights and biases, NCHW input `input_tensor:0` float32 [N,3,224,224] (RGB minus the
means [123.68, 116.78, 103.94], no /255), outputs `ArgMax:0` int64 [N] and `softmax_tensor:0`
float32 [N,1001] with class 0 = background (SPEC §2.1).

Sizes:
- `full`: ResNet50-v1.5: 7x7/2 stem conv + ReLU + 3x3/2 max-pool, bottleneck stages [3, 4, 6, 3] of
  widths 64/128/256/512 with expansion 4, stride 2 on the 3x3 conv (the v1.5 change), projection
  shortcuts (1x1 conv with the stage's stride) on the first block of each stage, global average
  pool, fully connected 2048 -> 1001.
- `tiny`: the same interface and structure with 1 block per stage and every width divided by 8
  (stem 8, widths 8/16/32/64, 256 features); a few ms per image on two CPU cores.

Weights are seeded (`numpy.random.default_rng(seed)`) and initialised from data, so that the
stand-in behaves like a classifier where the harness can tell:

- Kernels are ternary "box" kernels: each (output, input) channel pair gets one random sign over
  the whole k x k window. Per output channel every weight then has the same magnitude, so
  per-channel symmetric INT8 represents the folded weights exactly (weight quantisation adds no
  error), and the filters are low-pass, so the network follows image structure rather than pixel
  noise, as trained filters do.
- Each convolution is run through onnxruntime on a fixed, seeded batch of image-like inputs made
  here, and its batch-norm is folded from the statistics its output has on that batch (LSUV, per
  channel): unit variance (half that on the last conv of a residual branch) and a small positive
  shift before each ReLU, so activations neither explode nor vanish.
- The classifier whitens the centred features along their leading principal directions and scores
  them against random unit prototypes times a temperature: standardised logits, with the
  `ACTIVE_CLASSES` prototype classes used about equally on image-like inputs. The other classes
  (and the background) sit at a constant logit that the best prototype score beats, so in
  practice they are never predicted.

Two builds with the same size and seed give identical bytes (on one machine: the statistics come
from onnxruntime's float32 convolutions).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from mlperf_trt.errors import ModelError

SIZES: tuple[str, ...] = ("full", "tiny")
OPSET = 13
# The official interface (SPEC §2.1).
INPUT_NAME = "input_tensor:0"
ARGMAX_NAME = "ArgMax:0"
SOFTMAX_NAME = "softmax_tensor:0"
BATCH_DIM = "N"
NUM_CLASSES = 1001  # 1000 ImageNet classes + background at index 0 (SPEC §2.1)
IMAGE_SIZE = 224
CHANNEL_MEANS = (123.68, 116.78, 103.94)  # RGB means subtracted by pre_process_vgg (SPEC §2.1)


@dataclass(frozen=True)
class Architecture:
    """The shape of one size of the network."""

    blocks: tuple[int, ...]  # bottleneck blocks per stage
    widths: tuple[int, ...]  # bottleneck width per stage (output = width * expansion)
    stem: int  # channels of the 7x7 stem conv
    expansion: int = 4

    @property
    def features(self) -> int:
        return self.widths[-1] * self.expansion


ARCHITECTURES: dict[str, Architecture] = {
    "full": Architecture(blocks=(3, 4, 6, 3), widths=(64, 128, 256, 512), stem=64),
    "tiny": Architecture(blocks=(1, 1, 1, 1), widths=(8, 16, 32, 64), stem=8),
}

# Data-dependent initialisation (see the module docstring).
INIT_IMAGES = {"full": 48, "tiny": 96}  # image-like inputs the statistics come from
INIT_SEED = 20_240_501  # the init images do not depend on the weight seed: a fixed "data set"
RESIDUAL_GAIN = 0.5  # std of the last conv of a residual branch (the shortcut has 1)
RELU_SHIFT = 0.5  # pre-ReLU mean, in stds: about 70% of units active
VARIANCE_FLOOR = 0.02  # per-channel variance floor, relative to the layer's mean variance
PRINCIPAL_DIRECTIONS = 8  # feature directions the classifier reads
ACTIVE_CLASSES = 128  # classes with a prototype, spread over 1..1000
TEMPERATURE = 4.0  # logit scale: standardised scores times this
IDLE_PERCENTILE = 5.0  # the constant logit of the other classes: this percentile of the scores


def build(size: str = "full", seed: int = 0) -> onnx.ModelProto:
    """Build the ResNet50-v1.5 stand-in of `size` ("full" or "tiny") with weights from `seed`."""
    if size not in ARCHITECTURES:
        raise ModelError(
            f"unknown resnet50 model size {size!r}: expected one of {', '.join(SIZES)}"
        )
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ModelError(f"model seed must be a non-negative integer, got {seed!r}")
    arch = ARCHITECTURES[size]
    images = _init_images(INIT_IMAGES[size], np.random.default_rng(INIT_SEED))
    builder = _GraphBuilder(np.random.default_rng(seed), images)
    x = builder.conv(INPUT_NAME, arch.stem, kernel=7, stride=2, name="stem")
    x = builder.max_pool(x, name="stem/pool")
    builder.forget(INPUT_NAME)
    for stage, (blocks, width) in enumerate(zip(arch.blocks, arch.widths, strict=True), start=1):
        for block in range(blocks):
            x = builder.bottleneck(
                x,
                width,
                width * arch.expansion,
                stride=2 if stage > 1 and block == 0 else 1,  # v1.5: stride on the 3x3 conv
                project=block == 0,
                name=f"stage{stage}/block{block + 1}",
            )
    features = builder.global_pool(x, name="pool")
    logits = builder.classifier(features, name="fc")
    builder.head(logits)
    return builder.finish(f"resnet50_v1.5_{size}", size, seed)


def _init_images(count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` image-like inputs, preprocessed as SPEC §2.1: NCHW float32 RGB minus the means.

    Smooth random colour fields, blended with linear gradients, with random rectangles and
    ellipses and some pixel noise, rounded to uint8 like a decoded JPEG.
    """
    size = IMAGE_SIZE
    coords = np.linspace(0.0, 1.0, size)
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    means = np.asarray(CHANNEL_MEANS, np.float32).reshape(3, 1, 1)
    out = np.empty((count, 3, size, size), np.float32)
    for i in range(count):
        grid = int(rng.integers(2, 9))
        interp = _bilinear_matrix(grid, size)
        coarse = rng.uniform(0.0, 255.0, size=(3, grid, grid))
        image = np.einsum("yi,cij,xj->cyx", interp, coarse, interp)
        if rng.random() < 0.6:
            angle = rng.uniform(0.0, 2.0 * np.pi)
            ramp = np.cos(angle) * xx + np.sin(angle) * yy
            ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
            ends = rng.uniform(0.0, 255.0, size=(2, 3, 1, 1))
            blend = rng.uniform(0.3, 1.0)
            image = (1 - blend) * image + blend * (ends[0] * (1 - ramp) + ends[1] * ramp)
        for _ in range(int(rng.integers(0, 7))):
            cy, cx = rng.uniform(0.0, 1.0, size=2)
            hy, hx = rng.uniform(0.05, 0.35, size=2)
            if rng.random() < 0.5:
                mask = (np.abs(yy - cy) < hy) & (np.abs(xx - cx) < hx)
            else:
                mask = ((yy - cy) / hy) ** 2 + ((xx - cx) / hx) ** 2 < 1.0
            image[:, mask] = rng.uniform(0.0, 255.0, size=(3, 1))
        image += rng.normal(0.0, rng.uniform(0.0, 16.0), size=image.shape)
        out[i] = np.clip(np.round(image), 0, 255).astype(np.float32) - means
    return out


def _bilinear_matrix(grid: int, size: int) -> np.ndarray:
    """The (size, grid) matrix of bilinear interpolation from `grid` samples to `size` pixels."""
    pos = np.linspace(0.0, grid - 1.0, size)
    low = np.minimum(np.floor(pos).astype(int), grid - 2)
    frac = pos - low
    matrix = np.zeros((size, grid))
    matrix[np.arange(size), low] = 1.0 - frac
    matrix[np.arange(size), low + 1] = frac
    return matrix


def _box_kernel(rng: np.random.Generator, out_ch: int, in_ch: int, kernel: int) -> np.ndarray:
    """Ternary box kernel: one random sign per channel pair over the k x k window, He-scaled."""
    signs = rng.integers(0, 2, size=(out_ch, in_ch, 1, 1)) * 2.0 - 1.0
    weight = np.broadcast_to(signs, (out_ch, in_ch, kernel, kernel))
    scaled: np.ndarray = (weight * np.sqrt(2.0 / (in_ch * kernel * kernel))).astype(np.float32)
    return scaled


class _GraphBuilder:
    """Accumulates nodes and initialisers, and the init batch's activation of the live tensors.

    Each conv's BN is folded from the statistics its raw output has on the init batch, so the
    activation cache always holds what the finished graph computes on that batch.
    """

    def __init__(self, rng: np.random.Generator, images: np.ndarray) -> None:
        self._rng = rng
        self._nodes: list[onnx.NodeProto] = []
        self._weights: list[onnx.TensorProto] = []
        self._acts: dict[str, np.ndarray] = {INPUT_NAME: images}

    def forget(self, name: str) -> None:
        """Drop the cached activation of `name` (no later node reads it)."""
        del self._acts[name]

    def conv(
        self,
        x: str,
        out_channels: int,
        *,
        kernel: int,
        stride: int,
        name: str,
        relu: bool = True,
        gain: float = 1.0,
    ) -> str:
        """Conv (+ ReLU) with its BN folded from the init batch (output std `gain` per channel)."""
        inputs = self._acts[x]
        weight = _box_kernel(self._rng, out_channels, inputs.shape[1], kernel)
        attrs: dict[str, Any] = {
            "kernel_shape": [kernel, kernel],
            "strides": [stride, stride],
            "pads": [kernel // 2] * 4,  # TF fixed_padding: k-1 split evenly, as the export has
        }
        raw = _run_node("Conv", [inputs], [weight], attrs)
        # Folded BN (the official graph is an inference graph, SPEC §2.1): per channel,
        # y = gain * (raw - mean) / std + shift.
        mean = raw.mean(axis=(0, 2, 3), dtype=np.float64)
        var = raw.var(axis=(0, 2, 3), dtype=np.float64)
        var = var + VARIANCE_FLOOR * float(var.mean()) + 1e-12
        scale = gain / np.sqrt(var)
        shift = RELU_SHIFT * gain if relu else 0.0
        weight = (weight * scale[:, None, None, None]).astype(np.float32)
        bias = (shift - mean * scale).astype(np.float32)
        out = raw * scale.astype(np.float32)[None, :, None, None]
        out += bias[None, :, None, None]
        w_name, b_name = f"{name}/weights", f"{name}/bias"
        self._weights.append(numpy_helper.from_array(weight, w_name))
        self._weights.append(numpy_helper.from_array(bias, b_name))
        y = f"{name}/conv"
        self._nodes.append(helper.make_node("Conv", [x, w_name, b_name], [y], name=y, **attrs))
        if not relu:
            self._acts[y] = out
            return y
        return self._relu(y, out, name)

    def _relu(self, x: str, value: np.ndarray, name: str) -> str:
        y = f"{name}/relu"
        self._nodes.append(helper.make_node("Relu", [x], [y], name=y))
        self._acts.pop(x, None)
        self._acts[y] = np.maximum(value, 0.0, out=value)
        return y

    def max_pool(self, x: str, *, name: str) -> str:
        attrs: dict[str, Any] = {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}
        y = f"{name}/maxpool"
        self._acts[y] = _run_node("MaxPool", [self._acts.pop(x)], [], attrs)
        self._nodes.append(helper.make_node("MaxPool", [x], [y], name=y, **attrs))
        return y

    def bottleneck(
        self, x: str, width: int, out_channels: int, *, stride: int, project: bool, name: str
    ) -> str:
        """v1.5 bottleneck: 1x1 -> 3x3 (stride here) -> 1x1, plus identity or 1x1 projection."""
        shortcut = x
        if project:
            shortcut = self.conv(
                x, out_channels, kernel=1, stride=stride, relu=False, name=f"{name}/shortcut"
            )
        h1 = self.conv(x, width, kernel=1, stride=1, name=f"{name}/conv1")
        if project:
            self.forget(x)  # an identity shortcut keeps it for the Add
        h2 = self.conv(h1, width, kernel=3, stride=stride, name=f"{name}/conv2")
        self.forget(h1)
        h3 = self.conv(
            h2,
            out_channels,
            kernel=1,
            stride=1,
            relu=False,
            gain=RESIDUAL_GAIN,
            name=f"{name}/conv3",
        )
        self.forget(h2)
        y = f"{name}/add"
        self._nodes.append(helper.make_node("Add", [h3, shortcut], [y], name=y))
        total = self._acts.pop(h3)
        total += self._acts.pop(shortcut)
        return self._relu(y, total, name)

    def global_pool(self, x: str, *, name: str) -> str:
        pooled, flat = f"{name}/global_avg", f"{name}/flatten"
        self._nodes.append(helper.make_node("GlobalAveragePool", [x], [pooled], name=pooled))
        self._nodes.append(helper.make_node("Flatten", [pooled], [flat], name=flat, axis=1))
        self._acts[flat] = self._acts.pop(x).mean(axis=(2, 3))
        return flat

    def classifier(self, x: str, *, name: str) -> str:
        """FC features -> 1001 logits: standardised scores against random unit prototypes.

        scores = P @ diag(1/s) @ V.T @ (f - mean), where V are the leading principal directions of
        the init batch's features and s their standard deviations: over image-like inputs each
        score is about a unit Gaussian and the prototype classes win about equally often.
        """
        features = self._acts.pop(x).astype(np.float64)
        count, dims = features.shape
        mean = features.mean(axis=0)
        _, singular, vt = np.linalg.svd(features - mean, full_matrices=False)
        k = min(PRINCIPAL_DIRECTIONS, count - 1)
        std = singular[:k] / np.sqrt(count - 1)
        whiten = vt[:k] / np.maximum(std, 1e-12)[:, None]  # (k, dims)
        prototypes = self._rng.standard_normal((ACTIVE_CLASSES, k))
        prototypes /= np.linalg.norm(prototypes, axis=1, keepdims=True)
        classes = np.sort(self._rng.choice(np.arange(1, NUM_CLASSES), ACTIVE_CLASSES, False))
        weight = np.zeros((NUM_CLASSES, dims))
        weight[classes] = TEMPERATURE * prototypes @ whiten
        scores = (features - mean) @ weight[classes].T
        # The other classes, and the background (class 0, SPEC §2.1) one temperature below them,
        # get a constant logit inside the range of the scores (not widening it) that the best
        # prototype score always beats.
        bias = np.full(NUM_CLASSES, float(np.percentile(scores, IDLE_PERCENTILE)))
        bias[0] -= TEMPERATURE
        bias[classes] = -weight[classes] @ mean
        w_name, b_name = f"{name}/weights", f"{name}/bias"
        self._weights.append(numpy_helper.from_array(weight.astype(np.float32), w_name))
        self._weights.append(numpy_helper.from_array(bias.astype(np.float32), b_name))
        y = f"{name}/logits"
        self._nodes.append(helper.make_node("Gemm", [x, w_name, b_name], [y], name=y, transB=1))
        return y

    def head(self, logits: str) -> None:
        """The official outputs (SPEC §2.1): softmax over the 1001 classes and its ArgMax."""
        self._nodes.append(
            helper.make_node("Softmax", [logits], [SOFTMAX_NAME], name="softmax", axis=1)
        )
        self._nodes.append(
            helper.make_node("ArgMax", [logits], [ARGMAX_NAME], name="argmax", axis=1, keepdims=0)
        )

    def finish(self, graph_name: str, size: str, seed: int) -> onnx.ModelProto:
        side = IMAGE_SIZE
        inputs = [
            helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [BATCH_DIM, 3, side, side])
        ]
        outputs = [
            helper.make_tensor_value_info(ARGMAX_NAME, TensorProto.INT64, [BATCH_DIM]),
            helper.make_tensor_value_info(
                SOFTMAX_NAME, TensorProto.FLOAT, [BATCH_DIM, NUM_CLASSES]
            ),
        ]
        graph = helper.make_graph(self._nodes, graph_name, inputs, outputs, self._weights)
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET)],
            producer_name="mlperf_trt",
            producer_version="1",
            doc_string=f"ResNet50-v1.5 stand-in ({size}, seed {seed}): seeded, data-initialised "
            "weights behind the official interface (SPEC §2.1)",
        )
        model.ir_version = 8  # readable by every onnxruntime the harness supports
        return model


def _run_node(
    op: str, inputs: Sequence[np.ndarray], weights: Sequence[np.ndarray], attrs: dict[str, Any]
) -> np.ndarray:
    """Run one ONNX node on `inputs` (fed) and `weights` (initialisers) through onnxruntime."""
    import onnxruntime as ort

    names = [f"x{i}" for i in range(len(inputs))]
    w_names = [f"w{i}" for i in range(len(weights))]
    graph = helper.make_graph(
        [helper.make_node(op, names + w_names, ["y"], **attrs)],
        op.lower(),
        [
            helper.make_tensor_value_info(n, TensorProto.FLOAT, list(a.shape))
            for n, a in zip(names, inputs, strict=True)
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, n) for n, w in zip(w_names, weights, strict=True)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (out,) = session.run(["y"], dict(zip(names, inputs, strict=True)))
    return np.asarray(out, dtype=np.float32)
