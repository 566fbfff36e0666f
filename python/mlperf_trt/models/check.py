"""Checking an ONNX model's interface against a benchmark's model card (SPEC §2.x).

The card names every input and output the harness feeds or reads, with its dtype and shape: an int
is a fixed size, "N" the batch dimension (the model may leave it symbolic or fix it to any size),
and any other string a dynamic size. A model matches when every card input and output is there
under its name, with the card's dtype and rank, and no fixed size contradicts the card. A symbolic
or unknown size where the card fixes one cannot contradict it, so it passes; extra outputs are
fine (the harness does not read them), extra required inputs are not (the harness cannot feed
them). Every mismatch is reported at once, one line each.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import onnx

from mlperf_trt.benchmarks.base import ModelCard, TensorSpec
from mlperf_trt.errors import ModelError

log = logging.getLogger(__name__)

BATCH_DIM = "N"  # the card's name for the batch dimension (benchmarks.base.TensorSpec)

Dim = int | str | None  # a fixed size, a symbolic name, or unknown
_Declared = tuple[str, tuple[Dim, ...] | None]  # (dtype name, dims or None when no shape)


def check_model(model: onnx.ModelProto, card: ModelCard, source: str) -> None:
    """Raise ModelError listing every way `model`'s inputs and outputs differ from `card`.

    `source` names the model in the message (a file path, or "built-in resnet50").
    """
    if not model.HasField("graph"):
        raise ModelError(f"{source}: not an ONNX model (no graph); expected {card.source}")
    graph = model.graph
    initialisers = {t.name for t in graph.initializer}
    inputs = [vi for vi in graph.input if vi.name not in initialisers]  # IR < 4 lists weights
    outputs = list(graph.output)
    if any(not _has_shape(vi) for vi in outputs if vi.name in {s.name for s in card.outputs}):
        outputs = _inferred_outputs(model, outputs)
    problems = _compare_all("input", card.inputs, inputs)
    card_inputs = {spec.name for spec in card.inputs}
    for vi in inputs:
        if vi.name not in card_inputs:
            problems.append(
                f"unexpected required input {vi.name!r} {_describe_declared(_declared(vi))}: "
                f"the harness feeds only {_quoted(sorted(card_inputs))}"
            )
    problems += _compare_all("output", card.outputs, outputs)
    if problems:
        lines = [f"{source}: {problem}" for problem in problems]
        lines.append(
            f"(the model card follows {card.source}; pass that model, or one exported with the "
            "same tensor names, dtypes and shapes)"
        )
        raise ModelError("\n".join(lines))


def describe(spec: TensorSpec) -> str:
    """A card tensor as messages show it: "float32 [N,3,224,224]"."""
    return f"{spec.dtype} [{','.join(str(d) for d in spec.shape)}]"


def _compare_all(
    kind: str, specs: Sequence[TensorSpec], values: Sequence[onnx.ValueInfoProto]
) -> list[str]:
    by_name = {vi.name: vi for vi in values}
    problems: list[str] = []
    for spec in specs:
        vi = by_name.get(spec.name)
        if vi is None:
            present = _quoted([v.name for v in values]) if values else f"no {kind}s"
            problems.append(
                f"{kind} {spec.name!r} missing (the model has {present}); expected {describe(spec)}"
            )
            continue
        problems += _compare(kind, spec, vi)
    return problems


def _compare(kind: str, spec: TensorSpec, vi: onnx.ValueInfoProto) -> list[str]:
    """The mismatches of one tensor: dtype, rank, then each contradicting fixed size."""
    if not vi.type.HasField("tensor_type"):
        which = vi.type.WhichOneof("value") or "no type"
        return [f"{kind} {spec.name!r} is not a tensor ({which}); expected {describe(spec)}"]
    dtype, dims = _declared(vi)
    problems = []
    if dtype != spec.dtype:
        problems.append(f"{kind} {spec.name!r} has dtype {dtype}, expected {spec.dtype}")
    if dims is None:
        log.warning("%s %r declares no shape; its rank and sizes are not checked", kind, spec.name)
        return problems
    shown = _shape(dims)
    if len(dims) != len(spec.shape):
        problems.append(
            f"{kind} {spec.name!r} has rank {len(dims)} {shown}, "
            f"expected rank {len(spec.shape)} [{','.join(str(d) for d in spec.shape)}]"
        )
        return problems
    wrong = [
        f"dim {i} is {got}, expected {want}"
        for i, (got, want) in enumerate(zip(dims, spec.shape, strict=True))
        if isinstance(want, int) and isinstance(got, int) and got != want
    ]
    if wrong:
        problems.append(
            f"{kind} {spec.name!r} has shape {shown}, expected "
            f"[{','.join(str(d) for d in spec.shape)}] ({'; '.join(wrong)})"
        )
    return problems


def _declared(vi: onnx.ValueInfoProto) -> _Declared:
    """(dtype name, dims) of a tensor value; dims None when it declares no shape."""
    tensor = vi.type.tensor_type
    dims: tuple[Dim, ...] | None = None
    if tensor.HasField("shape"):
        dims = tuple(_dim(d) for d in tensor.shape.dim)
    return _dtype_name(tensor.elem_type), dims


def _dim(dim: onnx.TensorShapeProto.Dimension) -> Dim:
    if dim.HasField("dim_value"):
        return int(dim.dim_value)
    if dim.HasField("dim_param"):
        return str(dim.dim_param)
    return None


def _dtype_name(elem_type: int) -> str:
    """numpy's name of an ONNX element type ("float32", "int64"); ONNX's name otherwise."""
    if elem_type == onnx.TensorProto.UNDEFINED:
        return "undefined"
    try:
        return str(np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type)).name)
    except (KeyError, TypeError, ValueError):
        return str(onnx.TensorProto.DataType.Name(elem_type)).lower()


def _has_shape(vi: onnx.ValueInfoProto) -> bool:
    return bool(vi.type.HasField("tensor_type") and vi.type.tensor_type.HasField("shape"))


def _inferred_outputs(
    model: onnx.ModelProto, outputs: list[onnx.ValueInfoProto]
) -> list[onnx.ValueInfoProto]:
    """Outputs with shapes filled in by ONNX shape inference where the file declares none."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception as exc:  # inference is a best effort: any failure leaves the declared types
        log.debug("shape inference failed: %s", exc)
        return outputs
    known = {vi.name: vi for vi in (*inferred.graph.value_info, *inferred.graph.output)}
    return [known.get(vi.name, vi) if not _has_shape(vi) else vi for vi in outputs]


def _shape(dims: tuple[Dim, ...]) -> str:
    return "[" + ",".join("?" if d is None else str(d) for d in dims) + "]"


def _describe_declared(declared: _Declared) -> str:
    dtype, dims = declared
    return f"{dtype} {_shape(dims)}" if dims is not None else f"{dtype} (no shape)"


def _quoted(names: Sequence[str]) -> str:
    return ", ".join(repr(n) for n in names)
