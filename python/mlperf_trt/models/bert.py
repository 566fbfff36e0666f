"""BERT-Large for SQuAD v1.1 built in code as an ONNX graph with the official interface (SPEC §2.4).

Inputs `input_ids`, `input_mask`, `segment_ids` int64 [N,S]; outputs `output_start_logits` and
`output_end_logits` float32 [N,S] (SPEC §2.4; the card fixes S = 384, the graph leaves it symbolic
so the harness may run shorter padded lengths, any S <= 512, the position table's size).

Sizes:
- `full`: BERT-Large uncased: 24 post-LN encoder layers, hidden 1024, 16 heads, FFN 4096 with the
  erf GELU, vocab 30,522, 512 positions, 2 token types, LayerNorm eps 1e-12; QA head
  Linear(1024 -> 2). 334,094,338 parameters (no pooler: QA does not use it), 1.34 GB of FP32.
- `tiny`: the same graph and vocabulary with 2 layers, hidden 128, 2 heads, FFN 512.

The graph is written in the form onnxruntime's transformer fusions recognise (the PyTorch export
pattern): separate Q/K/V MatMul + Add + Reshape [0,0,heads,head_size] + Transpose, scores divided
by sqrt(head_size) plus the mask term (1 - mask) * -10000 built by Unsqueeze, Unsqueeze, Cast, Sub,
Mul; ONNX LayerNormalization (opset 17) after each residual Add; GELU as x * 0.5 * (1 + erf(x /
sqrt 2)); position ids from Shape -> Gather -> Range -> Unsqueeze -> Expand of `input_ids`.
Measured with onnxruntime 1.32: its BERT optimiser (`onnxruntime.transformers.optimizer`,
model_type "bert") fuses every block (1 EmbedLayerNormalization, per layer 1 Attention, 2
SkipLayerNormalization, 1 BiasGelu); a session's own ORT_ENABLE_ALL pass fuses only the GELUs
(BiasGelu) and the score scaling (FusedMatMul), because its Attention mask matcher accepts Add/Mul/
Sub up to opset 13 and Unsqueeze with an `axes` attribute (opset <= 12), not opset 17's versions.

Weights are seeded (`numpy.random.default_rng(seed)`), N(0, 0.02) as BERT initialises (biases too,
so a reference that drops one is caught), LayerNorm gamma 1 and beta 0. A randomly initialised
BERT gives near-Gaussian logits over the positions: the best start beats the second by a fraction
of a logit, so any precision change moves the predicted span. The synthetic-data benchmark needs
decisive, input-dependent spans, as a fine-tuned model gives, so two things are added:

- Answer salience in the word embeddings. Two unit directions of the hidden space, u_start and
  u_end (orthogonal to each other and to the all-ones vector, which LayerNorm removes), carry a
  per-token salience: a seeded random subset of the ordinary vocabulary (1 word in `SALIENT_EVERY`)
  has `SALIENCE_SHIFT` + Exponential(`SALIENCE_SCALE`) added along each direction, in units of the
  embeddings' per-dimension std; the special and [unused] tokens below `FIRST_WORD_ID` get
  -`SALIENCE_SHIFT`, so [CLS]/[SEP]/[PAD] never win a row. A random 384-token row holds a few
  salient words, and the exponential tail makes the gap between the best two a clear one (the gap
  between the top two of exponential samples is itself exponential, whatever their number).
- A protected answer subspace. The attention and FFN output projections (kernels and biases) and
  the position and token-type tables have u_start and u_end projected out, so no layer writes noise
  along them: what the final hidden state holds there is the token's salience, scaled by the
  LayerNorms on the way, whose scale depends on the context (so the mask still matters, a little).
  Leaving the attention projections unprotected was tried: in `full`, 24 layers of random
  attention bury the salience (best-vs-second margins fall below 0.5 logit on most rows).

The QA head reads the two directions, standardised on a fixed seeded batch of random-token rows run
through the encoder in numpy (median and MAD, so the salient tail does not set the scale): the bulk
of positions gets logits around `BULK_LOGIT` with robust std `BULK_STD`, salient words stand
several to 15 (tiny) or 30 (full, less LayerNorm saturation) logits above them, as a fine-tuned
model's answer tokens stand out. The calibration figures
are rounded to 4 significant digits, so two builds with the same size and seed give identical bytes
(and, barring a rounding boundary, across machines too).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from mlperf_trt.errors import ModelError

SIZES: tuple[str, ...] = ("full", "tiny")
OPSET = 17  # ONNX LayerNormalization exists from opset 17
# The official interface (SPEC §2.4).
INPUT_IDS = "input_ids"
INPUT_MASK = "input_mask"
SEGMENT_IDS = "segment_ids"
START_LOGITS = "output_start_logits"
END_LOGITS = "output_end_logits"
BATCH_DIM = "N"
SEQ_DIM = "S"  # dynamic: the harness may run padded lengths shorter than 384

INIT_STD = 0.02  # BERT's initializer_range
LAYER_NORM_EPS = 1e-12
MASK_VALUE = -10000.0  # (1 - mask) * -10000 added to the attention scores, as BERT does

# Answer salience (module docstring).
FIRST_WORD_ID = 999  # uncased vocab.txt: 0 [PAD], 1-98 and 104-998 [unusedN], 100-103 specials
SALIENT_EVERY = 128  # one ordinary word in this many is salient, per direction
SALIENCE_SHIFT = 6.0  # in units of INIT_STD
SALIENCE_SCALE = 6.0  # mean of the exponential tail, same units
# QA head calibration (module docstring).
CALIBRATION_SEED = 20_240_517  # independent of the weight seed: a fixed "data set"
CALIBRATION_ROWS = 4
CALIBRATION_LEN = 128
CALIBRATION_QUERY = 24  # segment 0 tokens at the start of each calibration row
BULK_LOGIT = -2.0  # median logit of the non-salient positions
BULK_STD = 1.0  # their robust std (1.4826 * MAD), in logits


@dataclass(frozen=True)
class Architecture:
    """The shape of one size of the network."""

    layers: int
    hidden: int
    heads: int
    intermediate: int
    vocab: int = 30_522  # uncased WordPiece vocabulary (SPEC §2.4)
    max_positions: int = 512
    type_vocab: int = 2

    @property
    def head_size(self) -> int:
        return self.hidden // self.heads


ARCHITECTURES: dict[str, Architecture] = {
    "full": Architecture(layers=24, hidden=1024, heads=16, intermediate=4096),
    "tiny": Architecture(layers=2, hidden=128, heads=2, intermediate=512),
}


def parameter_shapes(size: str) -> dict[str, tuple[int, ...]]:
    """Every weight of `size` in build order: name -> shape (MatMul kernels are [in, out])."""
    arch = _architecture(size)
    h, f = arch.hidden, arch.intermediate
    shapes: dict[str, tuple[int, ...]] = {
        "bert/embeddings/word_embeddings": (arch.vocab, h),
        "bert/embeddings/position_embeddings": (arch.max_positions, h),
        "bert/embeddings/token_type_embeddings": (arch.type_vocab, h),
        "bert/embeddings/LayerNorm/gamma": (h,),
        "bert/embeddings/LayerNorm/beta": (h,),
    }
    for i in range(arch.layers):
        p = f"bert/encoder/layer_{i}"
        for name, fan_in, fan_out in (
            ("attention/self/query", h, h),
            ("attention/self/key", h, h),
            ("attention/self/value", h, h),
            ("attention/output/dense", h, h),
        ):
            shapes[f"{p}/{name}/kernel"] = (fan_in, fan_out)
            shapes[f"{p}/{name}/bias"] = (fan_out,)
        shapes[f"{p}/attention/output/LayerNorm/gamma"] = (h,)
        shapes[f"{p}/attention/output/LayerNorm/beta"] = (h,)
        shapes[f"{p}/intermediate/dense/kernel"] = (h, f)
        shapes[f"{p}/intermediate/dense/bias"] = (f,)
        shapes[f"{p}/output/dense/kernel"] = (f, h)
        shapes[f"{p}/output/dense/bias"] = (h,)
        shapes[f"{p}/output/LayerNorm/gamma"] = (h,)
        shapes[f"{p}/output/LayerNorm/beta"] = (h,)
    shapes["cls/squad/output_kernel"] = (h, 2)
    shapes["cls/squad/output_bias"] = (2,)
    return shapes


def parameter_count(size: str) -> int:
    """The number of weights of `size`, from `parameter_shapes` (nothing is built)."""
    return sum(math.prod(shape) for shape in parameter_shapes(size).values())


def build(size: str = "full", seed: int = 0) -> onnx.ModelProto:
    """Build the BERT-Large SQuAD stand-in of `size` ("full" or "tiny") with weights from `seed`."""
    arch = _architecture(size)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ModelError(f"model seed must be a non-negative integer, got {seed!r}")
    weights = _weights(arch, parameter_shapes(size), np.random.default_rng(seed))
    graph = _Graph(arch)
    hidden = graph.embeddings()
    for i in range(arch.layers):
        hidden = graph.layer(hidden, f"bert/encoder/layer_{i}")
    graph.qa_head(hidden)
    initialisers = [numpy_helper.from_array(array, name) for name, array in weights.items()]
    initialisers += graph.constants
    tokens = [BATCH_DIM, SEQ_DIM]
    inputs = [
        helper.make_tensor_value_info(name, TensorProto.INT64, tokens)
        for name in (INPUT_IDS, INPUT_MASK, SEGMENT_IDS)
    ]
    outputs = [
        helper.make_tensor_value_info(name, TensorProto.FLOAT, tokens)
        for name in (START_LOGITS, END_LOGITS)
    ]
    model = helper.make_model(
        helper.make_graph(graph.nodes, f"bert_large_squad_{size}", inputs, outputs, initialisers),
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="mlperf_trt",
        producer_version="1",
        doc_string=f"BERT-Large SQuAD v1.1 stand-in ({size}, seed {seed}): seeded weights with "
        "answer salience behind the official interface (SPEC §2.4), dynamic batch and sequence",
    )
    model.ir_version = 8  # readable by every onnxruntime the harness supports
    return model


def _architecture(size: str) -> Architecture:
    try:
        return ARCHITECTURES[size]
    except (KeyError, TypeError):
        raise ModelError(
            f"unknown bert model size {size!r}: expected one of {', '.join(SIZES)}"
        ) from None


def _weights(
    arch: Architecture, shapes: dict[str, tuple[int, ...]], rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Every initialiser of `shapes`: N(0, 0.02) with the answer subspace; head calibrated."""
    weights: dict[str, np.ndarray] = {}
    for name, shape in shapes.items():
        if name.endswith("/gamma"):
            weights[name] = np.ones(shape, np.float32)
        elif name.endswith("/beta"):
            weights[name] = np.zeros(shape, np.float32)
        else:
            array = rng.standard_normal(shape, dtype=np.float32)
            array *= np.float32(INIT_STD)
            weights[name] = array
    answer = _answer_directions(arch.hidden, rng)  # (hidden, 2): u_start, u_end
    salience = _salience(arch.vocab, rng)  # (vocab, 2), in units of INIT_STD
    words = weights["bert/embeddings/word_embeddings"]
    for lo in range(0, arch.vocab, 4096):  # in chunks: the full table is 125 MB
        words[lo : lo + 4096] += (INIT_STD * salience[lo : lo + 4096]) @ answer.T
    protected = ["bert/embeddings/position_embeddings", "bert/embeddings/token_type_embeddings"]
    for i in range(arch.layers):
        for dense in ("attention/output/dense", "output/dense"):
            protected += [f"bert/encoder/layer_{i}/{dense}/{part}" for part in ("kernel", "bias")]
    for name in protected:  # rows (or the bias vector) lose their answer components
        array = weights[name]
        array -= (array @ answer) @ answer.T
    # The head: standardised reads of the two directions (calibrated below).
    centre, spread = _calibrate(arch, weights, answer)
    scale = (BULK_STD / spread).astype(np.float32)
    weights["cls/squad/output_kernel"] = (answer * scale).astype(np.float32)
    weights["cls/squad/output_bias"] = (BULK_LOGIT - centre * scale).astype(np.float32)
    return weights


def _answer_directions(hidden: int, rng: np.random.Generator) -> np.ndarray:
    """Two orthonormal directions orthogonal to the all-ones vector (LayerNorm's mean)."""
    basis = np.concatenate([np.ones((hidden, 1)), rng.standard_normal((hidden, 2))], axis=1)
    q, _ = np.linalg.qr(basis)
    directions: np.ndarray = q[:, 1:].astype(np.float32)
    return directions


def _salience(vocab: int, rng: np.random.Generator) -> np.ndarray:
    """(vocab, 2) salience along u_start and u_end: zero except a random subset of the words,
    negative for the special and [unused] tokens (a fine-tuned SQuAD v1.1 model never answers
    [CLS] or [SEP])."""
    out = np.zeros((vocab, 2), np.float32)
    out[:FIRST_WORD_ID] = -SALIENCE_SHIFT
    words = np.arange(FIRST_WORD_ID, vocab)
    for column in range(2):
        chosen = rng.choice(words, size=len(words) // SALIENT_EVERY, replace=False)
        out[chosen, column] = SALIENCE_SHIFT + rng.exponential(SALIENCE_SCALE, size=len(chosen))
    return out


def _calibrate(
    arch: Architecture, weights: dict[str, np.ndarray], answer: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Median and robust std (1.4826 * MAD) of the final hidden states along the two directions,
    on a fixed batch of random-token rows, rounded to 4 significant digits."""
    rng = np.random.default_rng(CALIBRATION_SEED)
    ids = rng.integers(FIRST_WORD_ID, arch.vocab, size=(CALIBRATION_ROWS, CALIBRATION_LEN))
    segments = np.zeros_like(ids)
    segments[:, CALIBRATION_QUERY:] = 1
    hidden = _encode(arch, weights, ids, segments)
    reads = hidden.reshape(-1, arch.hidden).astype(np.float64) @ answer.astype(np.float64)
    centre = np.median(reads, axis=0)
    spread = 1.4826 * np.median(np.abs(reads - centre), axis=0)
    return _round(centre), _round(np.maximum(spread, 1e-6))


def _round(values: np.ndarray) -> np.ndarray:
    return np.array([float(f"{v:.4g}") for v in values])


def _encode(
    arch: Architecture, w: dict[str, np.ndarray], ids: np.ndarray, segments: np.ndarray
) -> np.ndarray:
    """The encoder's final hidden states (rows of full length, no padding), in float32 numpy."""
    from scipy.special import erf

    rows, length = ids.shape
    e = "bert/embeddings"
    x = (
        w[f"{e}/word_embeddings"][ids]
        + w[f"{e}/position_embeddings"][:length]
        + w[f"{e}/token_type_embeddings"][segments]
    )
    x = _layer_norm(x, w[f"{e}/LayerNorm/gamma"], w[f"{e}/LayerNorm/beta"])
    heads, size = arch.heads, arch.head_size
    for i in range(arch.layers):
        p = f"bert/encoder/layer_{i}"

        def dense(t: np.ndarray, name: str, p: str = p) -> np.ndarray:
            out: np.ndarray = t @ w[f"{p}/{name}/kernel"] + w[f"{p}/{name}/bias"]
            return out

        def split(t: np.ndarray) -> np.ndarray:
            out: np.ndarray = t.reshape(rows, length, heads, size).transpose(0, 2, 1, 3)
            return out

        q = split(dense(x, "attention/self/query"))
        k = split(dense(x, "attention/self/key"))
        v = split(dense(x, "attention/self/value"))
        scores = q @ k.transpose(0, 1, 3, 2) / np.float32(math.sqrt(size))
        scores -= scores.max(axis=-1, keepdims=True)
        probs = np.exp(scores)
        probs /= probs.sum(axis=-1, keepdims=True)
        context = (probs @ v).transpose(0, 2, 1, 3).reshape(rows, length, arch.hidden)
        x = _layer_norm(
            dense(context, "attention/output/dense") + x,
            w[f"{p}/attention/output/LayerNorm/gamma"],
            w[f"{p}/attention/output/LayerNorm/beta"],
        )
        inner = dense(x, "intermediate/dense")
        inner = inner * np.float32(0.5) * (np.float32(1.0) + erf(inner / np.float32(math.sqrt(2))))
        x = _layer_norm(
            dense(inner.astype(np.float32), "output/dense") + x,
            w[f"{p}/output/LayerNorm/gamma"],
            w[f"{p}/output/LayerNorm/beta"],
        )
    return x


def _layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
    centred = x - x.mean(axis=-1, keepdims=True)
    variance = (centred * centred).mean(axis=-1, keepdims=True)
    out: np.ndarray = centred / np.sqrt(variance + np.float32(LAYER_NORM_EPS)) * gamma + beta
    return out.astype(np.float32)


class _Graph:
    """Accumulates the nodes and the small constant initialisers of the graph."""

    def __init__(self, arch: Architecture) -> None:
        self.arch = arch
        self.nodes: list[onnx.NodeProto] = []
        self.constants: list[onnx.TensorProto] = []
        self._const("zero_i64", np.array(0, np.int64))
        self._const("one_i64", np.array(1, np.int64))
        self._const("axes_0", np.array([0], np.int64))
        self._const("axes_1", np.array([1], np.int64))
        self._const("axes_2", np.array([2], np.int64))
        self._const("one_f32", np.array(1.0, np.float32))
        self._const("half_f32", np.array(0.5, np.float32))
        self._const("sqrt2_f32", np.array(math.sqrt(2.0), np.float32))
        self._const("mask_value_f32", np.array(MASK_VALUE, np.float32))
        self._const("score_scale_f32", np.array(math.sqrt(arch.head_size), np.float32))
        self._const("heads_shape", np.array([0, 0, arch.heads, arch.head_size], np.int64))
        self._const("hidden_shape", np.array([0, 0, arch.hidden], np.int64))

    def _const(self, name: str, value: np.ndarray) -> None:
        self.constants.append(numpy_helper.from_array(value, name))

    def op(self, op_type: str, inputs: list[str], name: str, **attrs: Any) -> str:
        self.nodes.append(helper.make_node(op_type, inputs, [name], name=name, **attrs))
        return name

    def embeddings(self) -> str:
        """word + position + token type, LayerNorm; also the attention mask term."""
        e = "bert/embeddings"
        shape = self.op("Shape", [INPUT_IDS], f"{e}/input_shape")
        length = self.op("Gather", [shape, "one_i64"], f"{e}/seq_len", axis=0)
        positions = self.op("Range", ["zero_i64", length, "one_i64"], f"{e}/range")
        positions = self.op("Unsqueeze", [positions, "axes_0"], f"{e}/range_2d")
        positions = self.op("Expand", [positions, shape], f"{e}/position_ids")
        words = self.op("Gather", [f"{e}/word_embeddings", INPUT_IDS], f"{e}/words", axis=0)
        where = self.op("Gather", [f"{e}/position_embeddings", positions], f"{e}/positions", axis=0)
        types = self.op("Gather", [f"{e}/token_type_embeddings", SEGMENT_IDS], f"{e}/types", axis=0)
        total = self.op("Add", [words, where], f"{e}/add_positions")
        total = self.op("Add", [total, types], f"{e}/add_types")
        # The mask term [N,1,1,S], shared by every layer.
        m = self.op("Unsqueeze", [INPUT_MASK, "axes_1"], "mask/unsqueeze_1")
        m = self.op("Unsqueeze", [m, "axes_2"], "mask/unsqueeze_2")
        m = self.op("Cast", [m], "mask/cast", to=TensorProto.FLOAT)
        m = self.op("Sub", ["one_f32", m], "mask/inverted")
        self.mask = self.op("Mul", [m, "mask_value_f32"], "mask/bias")
        return self._layer_norm(total, f"{e}/LayerNorm")

    def _layer_norm(self, x: str, prefix: str) -> str:
        return self.op(
            "LayerNormalization",
            [x, f"{prefix}/gamma", f"{prefix}/beta"],
            f"{prefix}/output",
            axis=-1,
            epsilon=LAYER_NORM_EPS,
        )

    def _dense(self, x: str, prefix: str) -> str:
        y = self.op("MatMul", [x, f"{prefix}/kernel"], f"{prefix}/matmul")
        return self.op("Add", [y, f"{prefix}/bias"], f"{prefix}/output")

    def layer(self, x: str, p: str) -> str:
        """One post-LN encoder layer: self-attention, Add & LayerNorm, GELU FFN, Add & LayerNorm."""
        a = f"{p}/attention/self"
        heads = {}
        for part, perm in (("query", [0, 2, 1, 3]), ("key", [0, 2, 3, 1]), ("value", [0, 2, 1, 3])):
            y = self._dense(x, f"{a}/{part}")
            y = self.op("Reshape", [y, "heads_shape"], f"{a}/{part}/heads")
            heads[part] = self.op("Transpose", [y], f"{a}/{part}/transpose", perm=perm)
        scores = self.op("MatMul", [heads["query"], heads["key"]], f"{a}/scores")
        scores = self.op("Div", [scores, "score_scale_f32"], f"{a}/scaled_scores")
        scores = self.op("Add", [scores, self.mask], f"{a}/masked_scores")
        probs = self.op("Softmax", [scores], f"{a}/probs", axis=3)
        context = self.op("MatMul", [probs, heads["value"]], f"{a}/context")
        context = self.op("Transpose", [context], f"{a}/context_transpose", perm=[0, 2, 1, 3])
        context = self.op("Reshape", [context, "hidden_shape"], f"{a}/context_merged")
        o = f"{p}/attention/output"
        y = self._dense(context, f"{o}/dense")
        y = self.op("Add", [y, x], f"{o}/residual")
        x = self._layer_norm(y, f"{o}/LayerNorm")
        i = f"{p}/intermediate/dense"
        y = self._dense(x, i)
        g = self.op("Div", [y, "sqrt2_f32"], f"{i}/gelu/scaled")
        g = self.op("Erf", [g], f"{i}/gelu/erf")
        g = self.op("Add", [g, "one_f32"], f"{i}/gelu/one_plus")
        g = self.op("Mul", [y, g], f"{i}/gelu/product")
        g = self.op("Mul", [g, "half_f32"], f"{i}/gelu/output")
        y = self._dense(g, f"{p}/output/dense")
        y = self.op("Add", [y, x], f"{p}/output/residual")
        return self._layer_norm(y, f"{p}/output/LayerNorm")

    def qa_head(self, x: str) -> None:
        """Linear(hidden -> 2), split into start and end logits [N,S]."""
        q = "cls/squad"
        logits = self.op("MatMul", [x, f"{q}/output_kernel"], f"{q}/matmul")
        logits = self.op("Add", [logits, f"{q}/output_bias"], f"{q}/logits")
        self.nodes.append(
            helper.make_node(
                "Split", [logits], [f"{q}/start", f"{q}/end"], name=f"{q}/split", axis=2
            )
        )
        self.op("Squeeze", [f"{q}/start", "axes_2"], START_LOGITS)
        self.op("Squeeze", [f"{q}/end", "axes_2"], END_LOGITS)
