"""The graph builder of models.retinanet: the layers as ONNX nodes, and (live mode) their
data-initialised weights (see models.retinanet's docstring for the architecture and the init)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from mlperf_trt.models.retinanet import (
    ACTIVE_CLASSES,
    ARCHITECTURES,
    BATCH_DIM,
    CANDIDATE_FRACTION,
    CLS_NAME,
    CONFIDENT_FRACTION,
    IMAGE_SIZE,
    INPUT_NAME,
    MEAN,
    NUM_ANCHORS,
    NUM_CLASSES,
    OPSET,
    PRIOR_BIAS,
    REG_NAME,
    REGRESSION_STD,
    RELU_SHIFT,
    RESIDUAL_GAIN,
    STD,
    TOTAL_ANCHORS,
    VARIANCE_FLOOR,
    Architecture,
    ConvSpec,
)


def assemble(b: Builder, arch: Architecture) -> None:
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
        # A 1x1 logits conv sees one cell: its last 3x3 conv brings the local contrast in.
        surround = arch.head_kernel == 1 and i == arch.head_convs - 1
        cls = b.conv(cls, arch.fpn, 3, 1, name=f"head/cls/conv{i}", surround=surround)
        reg = b.conv(reg, arch.fpn, 3, 1, name=f"head/reg/conv{i}")
    b.cls_logits(cls, "head/cls/logits")  # graph outputs cls_logits and bbox_regression
    b.box_deltas(reg, "head/reg/deltas")


class Builder:
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

    def _contrast_kernel(self, out_ch: int, in_ch: int) -> np.ndarray:
        """1x1 kernels that weigh half the channels +1 and half -1 (a random half per output):
        zero response where the channels agree, so a class fires on a channel contrast rather
        than on a region's overall activation level (the 1x1 analogue of the surround kernel)."""
        half = np.where(np.arange(in_ch) < in_ch // 2, 1.0, -1.0)
        signs = np.stack([self.rng.permutation(half) for _ in range(out_ch)])
        weight: np.ndarray = (signs / np.sqrt(in_ch)).astype(np.float32)
        return weight[:, :, None, None]

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
        surround: bool = False,
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
        if surround:
            weight = self._surround_kernel(out_ch, in_ch)
        else:
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
        k = ARCHITECTURES[self.size].head_kernel
        spec = ConvSpec(name, out_ch, self._channels(xs[0]), k, 1)
        self.table.append(spec)
        attrs: dict[str, Any] = {"kernel_shape": [k, k], "strides": [1, 1], "pads": [k // 2] * 4}
        return spec, attrs

    def cls_logits(self, xs: Sequence[str], name: str) -> None:
        """9 x 264 logits per cell: the prior for idle classes, fitted responses for active ones."""
        out_ch = NUM_ANCHORS * NUM_CLASSES
        spec, attrs = self._head_output(xs, name, out_ch)
        if not self.live:
            self._dry_heads(xs)
            return
        in_ch = spec.in_channels
        classes = np.sort(self.rng.choice(NUM_CLASSES, ACTIVE_CLASSES, replace=False))
        active = (np.arange(NUM_ANCHORS)[:, None] * NUM_CLASSES + classes[None, :]).reshape(-1)
        if spec.kernel == 3:
            kernel = self._surround_kernel(len(active), in_ch)
        else:
            kernel = self._contrast_kernel(len(active), in_ch)
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
        weight = np.zeros(spec.weight_shape, np.float32)
        weight[active] = kernel * scale[:, None, None, None].astype(np.float32)
        bias = np.full(out_ch, PRIOR_BIAS, np.float64)
        bias[active] += offset - mean * scale
        self._head(xs, spec, weight, bias.astype(np.float32), attrs, NUM_CLASSES, CLS_NAME)

    def box_deltas(self, xs: Sequence[str], name: str) -> None:
        out_ch = NUM_ANCHORS * 4
        spec, attrs = self._head_output(xs, name, out_ch)
        if not self.live:
            self._dry_heads(xs)
            return
        kernel = self._kernel(out_ch, spec.in_channels, spec.kernel)
        mean, var = self._stats(self._raw(xs, kernel, attrs))
        scale = REGRESSION_STD / np.sqrt(var + 1e-12)
        weight = (kernel * scale[:, None, None, None]).astype(np.float32)
        self._head(xs, spec, weight, (-mean * scale).astype(np.float32), attrs, 4, REG_NAME)

    def _head(
        self,
        xs: Sequence[str],
        spec: ConvSpec,
        weight: np.ndarray,
        bias: np.ndarray,
        attrs: dict[str, Any],
        per_anchor: int,
        output: str,
    ) -> None:
        """The output conv of a head on every level, written to the graph output `output`."""
        if spec.kernel == 1:
            self._pointwise_head(xs, spec.name, weight, bias, per_anchor, output)
        else:
            outs = self._emit_conv(xs, spec, weight, bias, attrs)
            flat = self._flatten_heads(outs, per_anchor, f"{spec.name}/flat")
            self.nodes.append(helper.make_node("Concat", flat, [output], name=output, axis=1))
        for x in xs:
            self.acts.pop(x)

    def _pointwise_head(
        self,
        xs: Sequence[str],
        name: str,
        weight: np.ndarray,
        bias: np.ndarray,
        per_anchor: int,
        output: str,
    ) -> None:
        """A 1x1 output conv shared by the levels as one Gemm over all their cells (NHWC): the
        product's rows are (image, level, y, x) and its columns (anchor, class), which is
        torchvision's (N, A, K) order once reshaped, with no copy of the large output."""
        channels = weight.shape[1]
        rows = self._const(f"{name}/rows_shape", np.array([0, -1, channels], np.int64))
        cells = []
        for level, x in enumerate(xs):
            t, r = (f"{name}/p{level + 3}/{s}" for s in ("nhwc", "rows"))
            self.nodes.append(helper.make_node("Transpose", [x], [t], name=t, perm=[0, 2, 3, 1]))
            self.nodes.append(helper.make_node("Reshape", [t, rows], [r], name=r))
            cells.append(r)
        cat, flat, gemm = (f"{name}/{s}" for s in ("cells", "flat", "gemm"))
        self.nodes.append(helper.make_node("Concat", cells, [cat], name=cat, axis=1))
        flat_shape = self._const(f"{name}/flat_shape", np.array([-1, channels], np.int64))
        self.nodes.append(helper.make_node("Reshape", [cat, flat_shape], [flat], name=flat))
        w = self._const(f"{name}/weight", np.ascontiguousarray(weight[:, :, 0, 0].T))
        b = self._const(f"{name}/bias", bias)
        self.nodes.append(helper.make_node("Gemm", [flat, w, b], [gemm], name=gemm))
        out_shape = self._const(
            f"{name}/out_shape", np.array([-1, TOTAL_ANCHORS, per_anchor], np.int64)
        )
        self.nodes.append(helper.make_node("Reshape", [gemm, out_shape], [output], name=output))

    def _dry_heads(self, xs: Sequence[str]) -> None:
        for x in xs:
            self.acts.pop(x)

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
