"""The 3D U-Net of the KiTS19 reference built in code as an ONNX graph (SPEC §2.3).

Architecture (MLPerf Training image_segmentation `Unet3D`, as the inference reference's
pytorch_checkpoint_SUT.py restates it for the released checkpoint):

- every conv block is Conv3d (no bias) -> InstanceNorm3d (affine, eps 1e-5) -> ReLU; the inference
  checkpoint uses ReLU (training code also offers leaky ReLU; the released model is ReLU);
- input block: two 3x3x3 conv blocks 1 -> F0 -> F0;
- 4 down blocks F[i] -> F[i+1] (3x3x3 stride 2, then 3x3x3) and a bottleneck down block
  F4 -> F4, so 128 -> 64 -> 32 -> 16 -> 8 -> 4 voxels;
- 5 up blocks: ConvTranspose3d 2x2x2 stride 2 (with bias, no norm), concatenated with the skip
  (upsampled first), then two conv blocks 2*out -> out -> out;
- output: 1x1x1 conv F0 -> 3 with bias: bg / kidney / tumour logits.

`full` has the reference filters (32, 64, 128, 256, 320); `tiny` has (4, 4, 8, 8, 8): the same
graph with few channels, well under a second per 128^3 window on two CPU cores. Interface: input
`input` float32 [N,1,128,128,128], output `output` float32 [N,3,128,128,128], dynamic batch N.

Weights are seeded He-normal, with one structured path so that the FP32 model segments CT-like
volumes into something meaningful (a purely random U-Net with instance norm predicts one class or
noise):

- channel 0 of the input block's first conv is a 3x3x3 box mean of the image; its instance norm
  turns it into z = the smoothed intensity standardised over the window, and its shift
  (`PATH_SHIFT` = 4) keeps the ReLU linear, so the channel carries z + 4;
- channel 0 of every conv on the full-resolution path (input block conv2, the last up block's
  conv1, which reads the skip's channel 0, and conv2) is a centre tap of the previous channel 0:
  instance norm of (z + 4) gives z again, so z reaches the last block unchanged;
- the last block's conv2 also makes two ramps r_t = ReLU(s (z - a)) and r_k = ReLU(s (z - b))
  (channels 1 and 2, slope `RAMP_SLOPE`) and the output conv maps them to logits bg = `BG_MARGIN`,
  tumour = r_t, kidney = 3 r_k: voxels whose window-standardised intensity is above `Z_TUMOUR`
  become tumour, above `Z_KIDNEY` kidney (enhancing kidney is the brightest soft tissue, tumours
  enhance less, SPEC-free modelling choice). All other channels are random and feed the logits
  with small weights (`NOISE_WEIGHT`), so the whole network, quantisation included, moves the
  decision boundaries a little, as a trained network's would be moved.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from mlperf_trt.errors import ModelError

SIZES: tuple[str, ...] = ("full", "tiny")
OPSET = 13
INPUT_NAME = "input"  # SPEC §2.3: the official ONNX interface
OUTPUT_NAME = "output"
BATCH_DIM = "N"
ROI = 128  # SPEC §2.3
NUM_CLASSES = 3  # SPEC §2.3: bg / kidney / tumour
EPSILON = 1e-5  # torch.nn.InstanceNorm3d's default

# The structured path (module docstring).
PATH_SHIFT = 4.0  # instance-norm shift of the z channel: ReLU(z + 4) = z + 4 for z > -4
RAMP_SLOPE = 4.0
BG_MARGIN = 1.0
Z_TUMOUR = 1.45  # window-standardised smoothed intensity where tumour starts to win
Z_KIDNEY = 2.7  # ... and where kidney wins over tumour
NOISE_WEIGHT = 0.02  # weight of each random channel in the logits


@dataclass(frozen=True)
class Architecture:
    filters: tuple[int, int, int, int, int]


ARCHITECTURES: dict[str, Architecture] = {
    "full": Architecture(filters=(32, 64, 128, 256, 320)),  # MLPerf Training Unet3D
    "tiny": Architecture(filters=(4, 4, 8, 8, 8)),
}


def ramp_offsets() -> tuple[float, float]:
    """(a, b) of the ramps so that tumour wins above Z_TUMOUR and kidney above Z_KIDNEY.

    tumour > bg  <=> s (z - a) > BG_MARGIN  <=> z > a + BG_MARGIN / s;
    kidney > tumour  <=> 3 s (z - b) > s (z - a)  <=> z > (3 b - a) / 2.
    """
    a = Z_TUMOUR - BG_MARGIN / RAMP_SLOPE
    b = (2.0 * Z_KIDNEY + a) / 3.0
    return a, b


def build(size: str = "full", seed: int = 0) -> onnx.ModelProto:
    """Build the 3D U-Net of `size` ("full" or "tiny") with weights from `seed`."""
    if size not in ARCHITECTURES:
        raise ModelError(f"unknown 3d-unet model size {size!r}: expected one of {', '.join(SIZES)}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ModelError(f"model seed must be a non-negative integer, got {seed!r}")
    filters = ARCHITECTURES[size].filters
    b = _GraphBuilder(np.random.default_rng(seed))
    f0 = filters[0]
    # Input block: channel 0 = box mean of the image, then carried by a centre tap.
    x = b.conv_block(INPUT_NAME, 1, f0, name="input_block/conv1", path="box")
    x = b.conv_block(x, f0, f0, name="input_block/conv2", path="tap0")
    skips = [(x, f0)]
    channels = f0
    for i, out in enumerate(filters[1:]):
        x = b.conv_block(x, channels, out, stride=2, name=f"downsample{i}/conv1")
        x = b.conv_block(x, out, out, name=f"downsample{i}/conv2")
        skips.append((x, out))
        channels = out
    x = b.conv_block(x, channels, channels, stride=2, name="bottleneck/conv1")
    x = b.conv_block(x, channels, channels, name="bottleneck/conv2")
    ups = [filters[-1], *reversed(filters[:-1])]  # up-block output channels: 320, 256, ..., 32
    for i, ((skip, skip_ch), out) in enumerate(zip(reversed(skips), ups, strict=True)):
        last = i == len(ups) - 1
        up = b.transpose_conv(x, channels, out, name=f"upsample{i}/upsample_conv")
        cat = f"upsample{i}/concat"
        b.nodes.append(helper.make_node("Concat", [up, skip], [cat], name=cat, axis=1))
        # On the last block, channel 0 reads the skip's channel 0 (index `out` of the concat).
        x = b.conv_block(
            cat, out + skip_ch, out, name=f"upsample{i}/conv1", path="skip0" if last else ""
        )
        x = b.conv_block(x, out, out, name=f"upsample{i}/conv2", path="ramps" if last else "")
        channels = out
    b.output_layer(x, channels)
    return b.finish(f"unet3d_kits19_{size}", size, seed)


class _GraphBuilder:
    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.nodes: list[onnx.NodeProto] = []
        self.weights: list[onnx.TensorProto] = []

    def _add(self, array: np.ndarray, name: str) -> str:
        self.weights.append(numpy_helper.from_array(np.ascontiguousarray(array, np.float32), name))
        return name

    def conv_block(
        self,
        x: str,
        cin: int,
        cout: int,
        *,
        name: str,
        stride: int = 1,
        path: str = "",
    ) -> str:
        """Conv3d 3x3x3 (no bias) -> InstanceNormalization -> Relu, with the structured path."""
        std = np.sqrt(2.0 / (cin * 27))
        weight = self.rng.standard_normal((cout, cin, 3, 3, 3)) * std
        scale = np.ones(cout)
        shift = np.zeros(cout)
        if path:
            weight[0] = 0.0
            scale[0], shift[0] = 1.0, PATH_SHIFT
            if path == "box":
                weight[0, 0] = 1.0 / 27.0
            elif path in ("tap0", "ramps"):
                weight[0, 0, 1, 1, 1] = 1.0
            elif path == "skip0":
                weight[0, cin - cout, 1, 1, 1] = (
                    1.0  # skip channel 0 follows the `cout` up channels
                )
            if path == "ramps":
                a, b = ramp_offsets()
                for ch, offset in ((1, a), (2, b)):
                    weight[ch] = 0.0
                    weight[ch, 0, 1, 1, 1] = 1.0
                    scale[ch], shift[ch] = RAMP_SLOPE, -RAMP_SLOPE * offset
        w = self._add(weight, f"{name}/weight")
        conv = f"{name}/conv"
        self.nodes.append(
            helper.make_node(
                "Conv",
                [x, w],
                [conv],
                name=conv,
                kernel_shape=[3, 3, 3],
                strides=[stride] * 3,
                pads=[1] * 6,
            )
        )
        norm = f"{name}/instance_norm"
        self.nodes.append(
            helper.make_node(
                "InstanceNormalization",
                [
                    conv,
                    self._add(scale, f"{name}/norm_scale"),
                    self._add(shift, f"{name}/norm_bias"),
                ],
                [norm],
                name=norm,
                epsilon=EPSILON,
            )
        )
        relu = f"{name}/relu"
        self.nodes.append(helper.make_node("Relu", [norm], [relu], name=relu))
        return relu

    def transpose_conv(self, x: str, cin: int, cout: int, *, name: str) -> str:
        """ConvTranspose3d 2x2x2 stride 2 with bias (no norm, no activation)."""
        std = np.sqrt(1.0 / (cin * 8))
        weight = self.rng.standard_normal((cin, cout, 2, 2, 2)) * std
        bias = np.zeros(cout)
        y = f"{name}/conv_transpose"
        self.nodes.append(
            helper.make_node(
                "ConvTranspose",
                [x, self._add(weight, f"{name}/weight"), self._add(bias, f"{name}/bias")],
                [y],
                name=y,
                kernel_shape=[2, 2, 2],
                strides=[2, 2, 2],
            )
        )
        return y

    def output_layer(self, x: str, cin: int) -> None:
        """1x1x1 conv -> 3 logits: the ramps decide, the random channels nudge (docstring)."""
        weight = self.rng.standard_normal((NUM_CLASSES, cin, 1, 1, 1)) * NOISE_WEIGHT
        weight[:, :3] = 0.0
        weight[1, 2] = 3.0  # kidney = 3 r_k
        weight[2, 1] = 1.0  # tumour = r_t
        bias = np.array([BG_MARGIN, 0.0, 0.0])
        # The random channels' mean contribution is cancelled so they shift no class on average
        # (ReLU of a standard normal has mean 1/sqrt(2 pi)).
        bias -= weight[:, 3:, 0, 0, 0].sum(axis=1) / np.sqrt(2.0 * np.pi)
        self.nodes.append(
            helper.make_node(
                "Conv",
                [x, self._add(weight, "output/weight"), self._add(bias, "output/bias")],
                [OUTPUT_NAME],
                name="output/conv",
                kernel_shape=[1, 1, 1],
            )
        )

    def finish(self, graph_name: str, size: str, seed: int) -> onnx.ModelProto:
        inputs = [
            helper.make_tensor_value_info(
                INPUT_NAME, TensorProto.FLOAT, [BATCH_DIM, 1, ROI, ROI, ROI]
            )
        ]
        outputs = [
            helper.make_tensor_value_info(
                OUTPUT_NAME, TensorProto.FLOAT, [BATCH_DIM, NUM_CLASSES, ROI, ROI, ROI]
            )
        ]
        graph = helper.make_graph(self.nodes, graph_name, inputs, outputs, self.weights)
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET)],
            producer_name="mlperf_trt",
            producer_version="1",
            doc_string=f"3D U-Net KiTS19 stand-in ({size}, seed {seed}): seeded weights with a"
            " structured intensity path behind the official interface (SPEC §2.3)",
        )
        model.ir_version = 8
        return model
