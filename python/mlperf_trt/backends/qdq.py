"""Explicit quantisation: QuantizeLinear/DequantizeLinear pairs in the layout TensorRT expects.

`insert_qdq(model, ranges, precision)` returns a copy of an FP32 ONNX model in which the inputs
of every Conv, MatMul and Gemm are quantised:

- activations (tensors computed at run time): symmetric, per tensor, from the calibrated range,
  `x -> QuantizeLinear -> DequantizeLinear -> op`;
- weights (float32 initializers): symmetric, per output channel (Conv W axis 0; MatMul B its last
  axis; Gemm B axis 0 with transB=1, else 1), stored already quantised (int8 or float8e4m3fn
  initializer `<w>_q`) followed by a DequantizeLinear, the "pre-quantised weights" form that
  TensorRT 10 reads as well as the float-weights-with-Q/DQ form, at a quarter of the size;
- Conv and Gemm biases stay float (TensorRT computes them in the accumulator's precision).

INT8: scale = amax / 127, int8 zero point 0 (opset >= 13, raised when lower). FP8 (E4M3): scale =
amax / 448, float8e4m3fn zero point 0, opset >= 19 (raised with onnx.version_converter when
lower). Both run in ONNX Runtime's CPU provider, and TensorRT builds them as explicit precision
(strongly typed: no INT8/FP8 builder flags). Layout and measured errors: docs/quantization.md.

New names are derived from the tensor's: `<t>_scale`, `<t>_zero_point`, `<t>_q` (the quantised
tensor: the QuantizeLinear output, or the quantised weight initializer), `<t>_dq`, and nodes
`<t>_QuantizeLinear`, `<t>_DequantizeLinear`. Activations missing from `ranges` stay float; their
names are logged and recorded in the returned model's metadata_props under UNQUANTIZED_KEY.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mlperf_trt.backends.calibrators import element_types
from mlperf_trt.errors import BackendError, ModelError, closest

if TYPE_CHECKING:
    import onnx

__all__ = [
    "FP8_E4M3_MAX",
    "INT8_QMAX",
    "PRECISION_KEY",
    "QDQ_PRECISIONS",
    "SUPPORTED_OPS",
    "UNQUANTIZED_KEY",
    "insert_qdq",
    "unquantized_tensors",
]

log = logging.getLogger(__name__)

QDQ_PRECISIONS: tuple[str, ...] = ("int8", "fp8")
SUPPORTED_OPS: tuple[str, ...] = ("Conv", "MatMul", "Gemm")
INT8_QMAX = 127  # symmetric INT8: [-127, 127], as TensorRT's dynamic range means
FP8_E4M3_MAX = 448.0  # largest finite float8 E4M3 (FN) value
# metadata_props keys of the returned model
UNQUANTIZED_KEY = "mlperf_trt.qdq.unquantized"
PRECISION_KEY = "mlperf_trt.qdq.precision"
_MIN_OPSET = {"int8": 13, "fp8": 19}  # per-axis DequantizeLinear: 13; float8 types: 19
_MIN_IR_FP8 = 9  # float8 element types exist from IR version 9


@dataclass(frozen=True)
class _Format:
    qmax: float
    zero_point_type: int  # onnx.TensorProto element type


def _format(precision: str) -> _Format:
    from onnx import TensorProto

    if precision == "int8":
        return _Format(float(INT8_QMAX), TensorProto.INT8)
    return _Format(FP8_E4M3_MAX, TensorProto.FLOAT8E4M3FN)


def _quantize_weight(values: np.ndarray, scale: np.ndarray, precision: str) -> np.ndarray:
    """Round-to-nearest-even as QuantizeLinear does, saturated to the format's range."""
    scaled: np.ndarray = values / scale
    if precision == "int8":
        as_int8: np.ndarray = np.clip(np.rint(scaled), -INT8_QMAX, INT8_QMAX).astype(np.int8)
        return as_int8
    import ml_dtypes  # onnx's own dependency for its float8 types

    clipped = np.clip(scaled, -FP8_E4M3_MAX, FP8_E4M3_MAX).astype(np.float32)
    as_fp8: np.ndarray = clipped.astype(ml_dtypes.float8_e4m3fn)
    return as_fp8


def _weight_axis(op_type: str, index: int, node: onnx.NodeProto, ndim: int) -> int | None:
    """The output-channel axis of a weight input, or None for per-tensor."""
    if ndim < 2:
        return None
    if op_type == "Conv" and index == 1:
        return 0  # W is [M, C/group, kH, kW]: M output channels
    if op_type == "MatMul" and index == 1:
        return ndim - 1  # B is [..., K, N]: N outputs
    if op_type == "Gemm" and index == 1:
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        return 0 if trans_b else 1  # B is [N, K] with transB, else [K, N]
    return None  # a constant A/X input: per tensor


def _opset(model: onnx.ModelProto) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return 1


def _with_opset(model: onnx.ModelProto, target: int, precision: str) -> onnx.ModelProto:
    import onnx as _onnx
    from onnx import version_converter

    current = _opset(model)
    if current >= target:
        copy = _onnx.ModelProto()
        copy.CopyFrom(model)
        return copy
    try:
        converted = version_converter.convert_version(model, target)
    except Exception as err:
        raise ModelError(
            f"{precision} Q/DQ needs ONNX opset >= {target}, the model has opset {current} and"
            f" onnx.version_converter cannot convert it ({err}); re-export the model at opset"
            f" {target} or later"
        ) from err
    log.info("converted the model from opset %d to %d for %s Q/DQ", current, target, precision)
    return converted


def _check_ranges(ranges: Mapping[str, tuple[float, float]]) -> dict[str, float]:
    amax: dict[str, float] = {}
    for name, pair in ranges.items():
        try:
            lo, hi = (float(v) for v in pair)
        except (TypeError, ValueError):
            raise BackendError(
                f"ranges[{name!r}] is {pair!r}: expected a (min, max) pair of numbers"
            ) from None
        if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
            raise BackendError(
                f"ranges[{name!r}] is ({lo}, {hi}): expected finite min <= max; recalibrate"
            )
        amax[name] = max(abs(lo), abs(hi))
    return amax


class _Builder:
    """Collects the new initializers and nodes, and refuses a name the graph already uses."""

    def __init__(self, model: onnx.ModelProto, precision: str) -> None:
        graph = model.graph
        self.precision = precision
        self.fmt = _format(precision)
        self.taken: set[str] = {i.name for i in graph.initializer}
        self.taken.update(i.name for i in graph.input)
        self.taken.update(o.name for o in graph.output)
        self.taken.update(name for n in graph.node for name in (*n.input, *n.output, n.name))
        self.initializers: list[onnx.TensorProto] = []
        self.done: dict[tuple[str, int | None], str] = {}  # (tensor, axis) -> its _dq name

    def name(self, base: str) -> str:
        if base in self.taken:
            raise ModelError(
                f"cannot insert Q/DQ: the name {base!r} is already used in the graph; rename"
                " that tensor or node in the model"
            )
        self.taken.add(base)
        return base

    def _scale_and_zero(self, tensor: str, scale: np.ndarray) -> tuple[str, str]:
        from onnx import helper, numpy_helper

        scale_name, zero_name = self.name(f"{tensor}_scale"), self.name(f"{tensor}_zero_point")
        self.initializers.append(numpy_helper.from_array(scale.astype(np.float32), scale_name))
        zeros = [0] * int(scale.size)
        self.initializers.append(
            helper.make_tensor(zero_name, self.fmt.zero_point_type, list(scale.shape), zeros)
        )
        return scale_name, zero_name

    def activation(self, tensor: str, amax: float) -> list[onnx.NodeProto]:
        from onnx import helper

        scale_name, zero_name = self._scale_and_zero(
            tensor, np.asarray(amax / self.fmt.qmax, np.float32)
        )
        q, dq = self.name(f"{tensor}_q"), self.name(f"{tensor}_dq")
        self.done[(tensor, None)] = dq
        return [
            helper.make_node(
                "QuantizeLinear",
                [tensor, scale_name, zero_name],
                [q],
                name=self.name(f"{tensor}_QuantizeLinear"),
            ),
            helper.make_node(
                "DequantizeLinear",
                [q, scale_name, zero_name],
                [dq],
                name=self.name(f"{tensor}_DequantizeLinear"),
            ),
        ]

    def weight(self, init: onnx.TensorProto, axis: int | None) -> list[onnx.NodeProto]:
        from onnx import helper, numpy_helper

        values = numpy_helper.to_array(init).astype(np.float64)
        if axis is None:
            amax = np.asarray(np.max(np.abs(values)) if values.size else 0.0)
        else:
            others = tuple(a for a in range(values.ndim) if a != axis)
            amax = np.max(np.abs(values), axis=others)
        # An all-zero channel quantises to zeros at any scale; 1.0 keeps the scale positive, as
        # TensorRT requires.
        scale = np.where(amax > 0, amax / self.fmt.qmax, 1.0).astype(np.float32)
        shape = [1] * values.ndim
        if axis is not None:
            shape[axis] = -1
        quantized = _quantize_weight(
            values, scale.astype(np.float64).reshape(shape), self.precision
        )
        # A second use of the same weight along another axis gets its own, suffixed names.
        base = (
            init.name
            if not any(k[0] == init.name for k in self.done)
            else f"{init.name}_axis{axis}"
        )
        scale_name, zero_name = self._scale_and_zero(base, scale)
        q = self.name(f"{base}_q")
        self.initializers.append(numpy_helper.from_array(quantized, q))
        dq = self.name(f"{base}_dq")
        self.done[(init.name, axis)] = dq
        node = helper.make_node(
            "DequantizeLinear",
            [q, scale_name, zero_name],
            [dq],
            name=self.name(f"{base}_DequantizeLinear"),
        )
        if axis is not None:
            node.attribute.append(helper.make_attribute("axis", axis))
        return [node]


def _quantize_inputs(
    node: onnx.NodeProto,
    builder: _Builder,
    initializers: Mapping[str, onnx.TensorProto],
    types: Mapping[str, int],
    amax: Mapping[str, float],
    unquantized: dict[str, str],
    per_channel_weights: bool,
) -> list[onnx.NodeProto]:
    """Rewires `node`'s data inputs (0 and 1) through Q/DQ; returns the nodes to put before it.

    A node is quantised whole or not at all: when one of its activations cannot be (no range,
    an all-zero range, not float32), its weights stay float too, since a float input makes the
    op run in float and rounded weights would only add error (this is how a caller keeps a layer,
    such as a classifier head, in float: leave its input out of `ranges`).
    """
    from onnx import TensorProto

    plan: list[tuple[int, str, int | None, bool]] = []  # (index, tensor, axis, is weight)
    blocked: list[str] = []
    for index in (0, 1):
        if index >= len(node.input) or not node.input[index]:
            continue
        name = node.input[index]
        init = initializers.get(name)
        if init is not None and init.data_type == TensorProto.FLOAT:
            axis = _weight_axis(node.op_type, index, node, len(init.dims))
            plan.append((index, name, axis if per_channel_weights else None, True))
            continue
        elem = init.data_type if init is not None else types.get(name)
        if elem is not None and elem != TensorProto.FLOAT:
            unquantized.setdefault(name, f"element type {elem} is not float32")
        elif name not in amax:
            unquantized.setdefault(name, "no calibrated range")
        elif amax[name] <= 0.0:
            unquantized.setdefault(name, "calibrated range is all zero")
        else:
            plan.append((index, name, None, False))
            continue
        blocked.append(name)
    if blocked:
        return []
    added: list[onnx.NodeProto] = []
    for index, name, axis, is_weight in plan:
        if (name, axis) not in builder.done:
            if is_weight:
                added.extend(builder.weight(initializers[name], axis))
            else:
                added.extend(builder.activation(name, amax[name]))
        node.input[index] = builder.done[(name, axis)]
    return added


def insert_qdq(
    model: onnx.ModelProto,
    ranges: Mapping[str, tuple[float, float]],
    precision: str = "int8",
    *,
    per_channel_weights: bool = True,
    ops: Sequence[str] = SUPPORTED_OPS,
) -> onnx.ModelProto:
    """A copy of `model` with Q/DQ pairs on the inputs of its `ops` nodes (module docstring).

    ranges: calibrated (min, max) per activation tensor (`CalibrationCache.ranges()` or
    `calibrators.compute_ranges`); only max(|min|, |max|) is used (symmetric). Activations not in
    `ranges`, or whose range is all zero, stay float and are listed in the returned model's
    metadata_props[UNQUANTIZED_KEY] (a JSON list) and in a warning. Weights need no range.
    The result passes onnx.checker; the caller's model is not changed.
    """
    import onnx as _onnx

    if precision not in QDQ_PRECISIONS:
        raise BackendError(
            f"Q/DQ precision {precision!r} is not supported: expected one of"
            f" {', '.join(QDQ_PRECISIONS)}{closest(str(precision), QDQ_PRECISIONS)}"
        )
    bad_ops = [op for op in ops if op not in SUPPORTED_OPS]
    if bad_ops:
        raise BackendError(
            f"insert_qdq ops {bad_ops} are not supported: expected a subset of"
            f" {list(SUPPORTED_OPS)}{closest(bad_ops[0], SUPPORTED_OPS)}"
        )
    amax = _check_ranges(ranges)
    out = _with_opset(model, _MIN_OPSET[precision], precision)
    if precision == "fp8" and out.ir_version < _MIN_IR_FP8:
        out.ir_version = _MIN_IR_FP8
    graph = out.graph
    types = element_types(out)
    initializers = {i.name: i for i in graph.initializer}
    builder = _Builder(out, precision)
    unquantized: dict[str, str] = {}  # tensor -> why
    nodes: list[onnx.NodeProto] = []
    for original in graph.node:
        node = _onnx.NodeProto()
        node.CopyFrom(original)
        if node.op_type in ops:
            nodes.extend(
                _quantize_inputs(
                    node, builder, initializers, types, amax, unquantized, per_channel_weights
                )
            )
        nodes.append(node)
    # The float weights that every consumer now reads through a DequantizeLinear are dropped.
    used = {name for n in nodes for name in n.input}
    used.update(o.name for o in graph.output)
    replaced = {key[0] for key in builder.done}
    kept = [i for i in graph.initializer if i.name in used or i.name not in replaced]
    dropped = {i.name for i in graph.initializer} - {i.name for i in kept}
    graph.ClearField("initializer")
    graph.initializer.extend(kept)
    # Old (IR < 4) models also list initializers as graph inputs: drop those entries too.
    inputs = [i for i in graph.input if i.name not in dropped]
    if len(inputs) != len(graph.input):
        graph.ClearField("input")
        graph.input.extend(inputs)
    graph.ClearField("node")
    graph.node.extend(nodes)
    graph.initializer.extend(builder.initializers)
    for key, value in (
        (PRECISION_KEY, precision),
        (UNQUANTIZED_KEY, json.dumps(sorted(unquantized))),
    ):
        entry = next((p for p in out.metadata_props if p.key == key), None)
        if entry is None:
            entry = out.metadata_props.add()
            entry.key = key
        entry.value = value
    if unquantized:
        log.warning(
            "%d %s tensors stay float: %s",
            len(unquantized),
            ", ".join(ops),
            "; ".join(f"{n} ({why})" for n, why in sorted(unquantized.items())),
        )
    try:
        _onnx.checker.check_model(out)
    except _onnx.checker.ValidationError as err:
        raise ModelError(f"the {precision} Q/DQ model fails onnx.checker: {err}") from err
    return out


def unquantized_tensors(model: onnx.ModelProto) -> list[str]:
    """The activations that insert_qdq left float (from the model's metadata_props)."""
    for entry in model.metadata_props:
        if entry.key == UNQUANTIZED_KEY:
            names: list[str] = json.loads(entry.value)
            return names
    raise ModelError(
        f"the model has no {UNQUANTIZED_KEY!r} metadata: it was not made by insert_qdq"
    )
