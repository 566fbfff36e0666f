"""DLRMv2 (torchrec DLRM_DCN, SPEC §2.8) split as fast harnesses split it: tables + dense ONNX.

1. Embedding tables: one float32 `emb_XX.npy` [rows, 128] per categorical feature (26), memory-
   mapped. Pooling is a sum over the multi-hot ids of a pair (torchrec's EmbeddingBag default);
   the C++ gather does it fast, `embedding_bag_reference` is its numpy reference.
2. The dense part as ONNX, inputs `dense` float32 [N,13] and `embeddings` float32 [N,26,128]
   (pooled), output `probability` float32 [N], in torchrec's DLRM_DCN order:
   - bottom MLP (DenseArch): Linear+ReLU for every layer, 13 -> 512 -> 256 -> 128;
   - interaction (InteractionDCNArch): x0 = concat(bottom [N,1,128], embeddings [N,26,128]) on
     the feature axis, flattened to [N, 3456] (the dense vector first, then cat_0..cat_25);
   - LowRankCrossNet, 3 layers of rank 512: x_{l+1} = x0 * (W_l (V_l x_l) + b_l) + x_l with
     V_l [512, 3456] and W_l [3456, 512] as torch Linear weights (no bias on either product);
   - top MLP (OverArch): Linear+ReLU 3456 -> 1024 -> 1024 -> 512 -> 256, then a plain Linear
     256 -> 1; the reference applies sigmoid to the logit (one probability per pair).
   Initialisers are named after the torchrec state_dict keys (docs/dlrm.md), so an export of
   the official checkpoint can be poured into this graph by name.

Sizes: `full` has the SPEC widths; `tiny` keeps the interface (13 dense features, 26 x 128
embeddings, so x0 stays 3456 wide and the bottom MLP still ends at 128) and shrinks the other
widths. Weights are seeded and scaled from data (LSUV on a fixed batch of synthetic pairs) so
that probabilities spread over (0, 1) instead of sitting at 0.5 or saturating.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from mlperf_trt.benchmarks.base import ModelCard, TensorSpec
from mlperf_trt.benchmarks.dlrm import (
    EMBEDDING_DIM,
    EMBEDDING_ROWS,
    MULTI_HOT_SIZES,
    NUM_DENSE_FEATURES,
)
from mlperf_trt.errors import DataError, ModelError

__all__ = [
    "ARCHITECTURES",
    "DENSE_CARD",
    "SIZES",
    "TINY_TABLE_ROWS",
    "Architecture",
    "build",
    "build_dense",
    "build_tables",
    "embedding_bag_reference",
    "load_tables",
    "reference_forward",
    "reference_predict",
    "table_rows",
]

SIZES: tuple[str, ...] = ("full", "tiny")
OPSET = 13
BATCH_DIM = "N"
NUM_TABLES = len(MULTI_HOT_SIZES)  # 26
DENSE_INPUT = "dense"
EMBEDDINGS_INPUT = "embeddings"
OUTPUT = "probability"
TINY_TABLE_ROWS = 1000  # row cap of the tiny tables
TABLE_FILE = "emb_{:02d}.npy"
# Biggest table folder build_tables writes (the full tables are ~97 GB, SPEC §2.8).
MAX_TABLE_BYTES = 8 << 30

# The dense part's interface: what the executor feeds after the embedding gather.
DENSE_CARD = ModelCard(
    inputs=(
        TensorSpec(DENSE_INPUT, "float32", (BATCH_DIM, NUM_DENSE_FEATURES)),
        TensorSpec(EMBEDDINGS_INPUT, "float32", (BATCH_DIM, NUM_TABLES, EMBEDDING_DIM)),
    ),
    outputs=(TensorSpec(OUTPUT, "float32", (BATCH_DIM,)),),
    source="the dense part (MLPs + DCN) of DLRM-DCNv2, exported to ONNX (docs/dlrm.md)",
)

INIT_PAIRS = 1024  # synthetic pairs the layer statistics come from
INIT_SEED = 20_230_901  # the init batch does not depend on the weight seed
RELU_SHIFT = 0.5  # pre-ReLU mean, in stds
CROSS_GAIN = 0.5  # std of each cross term, relative to the std of x_l
LOGIT_STD = 2.0  # the spread of the logits on the init batch
LOGIT_MEAN = -1.0  # about 30% positives on average


@dataclass(frozen=True)
class Architecture:
    bottom: tuple[int, ...]  # DenseArch widths; the last one is EMBEDDING_DIM
    dcn_layers: int
    low_rank: int
    top: tuple[int, ...]  # OverArch widths; the last one is 1

    @property
    def interaction_width(self) -> int:
        return (NUM_TABLES + 1) * EMBEDDING_DIM  # 3456


ARCHITECTURES: dict[str, Architecture] = {
    "full": Architecture((512, 256, 128), 3, 512, (1024, 1024, 512, 256, 1)),  # SPEC §2.8
    # tiny: the interface and layer structure of full with narrow layers. Its cost is the 3456-wide
    # interaction (DCN and the first top layer): rank 8 and a 16-wide first top layer run 200
    # pairs in 5.4 ms on one core of the 2-vCPU development VM (rank 32 and 64: ~15 ms).
    "tiny": Architecture((64, 32, 128), 3, 8, (16, 16, 16, 8, 1)),
}


def _bottom_key(i: int, what: str) -> str:
    return f"dense_arch.model._mlp.{i}._linear.{what}"


def _top_key(i: int, what: str, last: bool) -> str:
    return f"over_arch.model.1.{what}" if last else f"over_arch.model.0._mlp.{i}._linear.{what}"


def _cross_key(kind: str, layer: int) -> str:
    return f"inter_arch.crossnet.{kind}.{layer}"


# ------------------------------------------------------------------------------- dense ONNX


def _check_size_seed(size: str, seed: int) -> Architecture:
    if size not in ARCHITECTURES:
        raise ModelError(f"unknown dlrm-v2 model size {size!r}: expected one of {', '.join(SIZES)}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ModelError(f"model seed must be a non-negative integer, got {seed!r}")
    return ARCHITECTURES[size]


def _init_batch() -> tuple[np.ndarray, np.ndarray]:
    """Fixed synthetic pairs: dense features as the data set has them, pooled embeddings N(0,1)."""
    from mlperf_trt.data.criteo import synthetic_dense

    rng = np.random.default_rng(INIT_SEED)
    dense = synthetic_dense(rng, INIT_PAIRS).astype(np.float64)
    pooled = rng.standard_normal((INIT_PAIRS, NUM_TABLES * EMBEDDING_DIM))
    return dense, pooled


def _lsuv(rng: np.random.Generator, x: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """A Linear [width, in] + bias whose outputs on x have unit std and mean RELU_SHIFT."""
    weight = rng.standard_normal((width, x.shape[1]))
    h = x @ weight.T
    std = np.maximum(h.std(axis=0), 1e-6)
    return weight / std[:, None], RELU_SHIFT - h.mean(axis=0) / std


def _weights(arch: Architecture, seed: int) -> dict[str, np.ndarray]:
    """All initialisers by torchrec state_dict key (float32), scaled on the init batch."""
    rng = np.random.default_rng(seed)
    dense, pooled = _init_batch()
    out: dict[str, np.ndarray] = {}
    x = dense
    for i, width in enumerate(arch.bottom):
        w, b = _lsuv(rng, x, width)
        out[_bottom_key(i, "weight")], out[_bottom_key(i, "bias")] = w, b
        x = np.maximum(x @ w.T + b, 0.0)
    x0 = np.concatenate([x, pooled], axis=1)
    xl = x0
    n = arch.interaction_width
    for layer in range(arch.dcn_layers):
        v = rng.standard_normal((arch.low_rank, n)) / np.sqrt(n)
        w = rng.standard_normal((n, arch.low_rank)) / np.sqrt(arch.low_rank)
        b = 0.1 * rng.standard_normal(n)
        cross = x0 * ((xl @ v.T) @ w.T + b)
        scale = CROSS_GAIN * xl.std() / max(float(cross.std()), 1e-12)
        w, b = w * scale, b * scale
        out[_cross_key("V_kernels", layer)], out[_cross_key("W_kernels", layer)] = v, w
        out[_cross_key("bias", layer)] = b
        xl = x0 * ((xl @ v.T) @ w.T + b) + xl
    x = xl
    for i, width in enumerate(arch.top[:-1]):
        w, b = _lsuv(rng, x, width)
        out[_top_key(i, "weight", False)], out[_top_key(i, "bias", False)] = w, b
        x = np.maximum(x @ w.T + b, 0.0)
    w = rng.standard_normal((arch.top[-1], x.shape[1]))
    logit = (x @ w.T)[:, 0]
    scale = LOGIT_STD / max(float(logit.std()), 1e-12)
    out[_top_key(0, "weight", True)] = w * scale
    out[_top_key(0, "bias", True)] = np.array([LOGIT_MEAN - scale * logit.mean()])
    return {key: value.astype(np.float32) for key, value in out.items()}


def build_dense(size: str = "full", seed: int = 0) -> onnx.ModelProto:
    """The dense part of DLRM-DCNv2 (`size` "full" or "tiny") as ONNX, weights from `seed`."""
    arch = _check_size_seed(size, seed)
    weights = _weights(arch, seed)
    nodes: list[onnx.NodeProto] = []
    consts = {
        "emb_shape": np.array([0, NUM_TABLES * EMBEDDING_DIM], dtype=np.int64),
        "out_shape": np.array([-1], dtype=np.int64),
    }

    def linear(x: str, w: str, b: str | None, y: str, relu: bool) -> str:
        out = f"{y}_linear" if relu else y
        nodes.append(
            helper.make_node("Gemm", [x, w] + ([b] if b else []), [out], name=out, transB=1)
        )
        if relu:
            nodes.append(helper.make_node("Relu", [out], [y], name=y))
        return y

    x = DENSE_INPUT
    for i in range(len(arch.bottom)):
        x = linear(x, _bottom_key(i, "weight"), _bottom_key(i, "bias"), f"bottom{i}", True)
    nodes.append(
        helper.make_node("Reshape", [EMBEDDINGS_INPUT, "emb_shape"], ["emb_flat"], name="flat")
    )
    nodes.append(helper.make_node("Concat", [x, "emb_flat"], ["x0"], name="x0", axis=1))
    xl = "x0"
    for layer in range(arch.dcn_layers):
        v = linear(xl, _cross_key("V_kernels", layer), None, f"cross{layer}_v", False)
        w = linear(
            v, _cross_key("W_kernels", layer), _cross_key("bias", layer), f"cross{layer}_w", False
        )
        nodes.append(helper.make_node("Mul", ["x0", w], [f"cross{layer}_x0w"], name=f"c{layer}m"))
        nodes.append(
            helper.make_node("Add", [f"cross{layer}_x0w", xl], [f"cross{layer}"], name=f"c{layer}")
        )
        xl = f"cross{layer}"
    x = xl
    for i in range(len(arch.top) - 1):
        x = linear(x, _top_key(i, "weight", False), _top_key(i, "bias", False), f"top{i}", True)
    x = linear(x, _top_key(0, "weight", True), _top_key(0, "bias", True), "logit", False)
    nodes.append(helper.make_node("Sigmoid", [x], ["prob2d"], name="sigmoid"))
    nodes.append(helper.make_node("Reshape", ["prob2d", "out_shape"], [OUTPUT], name="out"))

    initialisers = [numpy_helper.from_array(a, k) for k, a in {**weights, **consts}.items()]
    graph = helper.make_graph(
        nodes,
        f"dlrm_dcnv2_dense_{size}",
        [
            helper.make_tensor_value_info(
                DENSE_INPUT, TensorProto.FLOAT, [BATCH_DIM, NUM_DENSE_FEATURES]
            ),
            helper.make_tensor_value_info(
                EMBEDDINGS_INPUT, TensorProto.FLOAT, [BATCH_DIM, NUM_TABLES, EMBEDDING_DIM]
            ),
        ],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, [BATCH_DIM])],
        initialisers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="mlperf_trt",
        producer_version="1",
        doc_string=f"DLRM-DCNv2 dense part ({size}, seed {seed}): bottom MLP, low-rank DCN, top"
        " MLP and sigmoid behind pooled embeddings (SPEC §2.8)",
    )
    model.ir_version = 8
    return model


# The seeded tables a built model goes with: the full tables (97 GB, SPEC §2.8) cannot be made
# here, so the `full` dense network is paired with tables of at most this many rows.
BUILT_TABLE_ROWS = {"tiny": TINY_TABLE_ROWS, "full": 100_000}
TABLES_KEY = "mlperf_trt.dlrm.tables"


def build(size: str = "full", seed: int = 0) -> onnx.ModelProto:
    """The registry entry point (models.build_model): the dense ONNX part, with the tables it
    goes with named in its metadata (TABLES_KEY: size, seed, row cap), so the model's hash
    covers them and the harness can build or find them (`tables_of`)."""
    model = build_dense(size, seed)
    spec = {"size": size, "seed": seed, "max_rows": BUILT_TABLE_ROWS[size]}
    helper.set_model_props(model, {TABLES_KEY: json.dumps(spec, sort_keys=True)})
    return model


def tables_of(model: onnx.ModelProto) -> dict[str, Any] | None:
    """The table spec a built model carries (see `build`); None for a model from elsewhere."""
    for prop in model.metadata_props:
        if prop.key == TABLES_KEY:
            spec: dict[str, Any] = json.loads(prop.value)
            return spec
    return None


def reference_forward(
    model: onnx.ModelProto, dense: np.ndarray, embeddings: np.ndarray
) -> np.ndarray:
    """numpy (float64) forward of a build_dense graph: float32 probabilities [N]."""
    w = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in model.graph.initializer}
    dense = np.asarray(dense, dtype=np.float64)
    embeddings = np.asarray(embeddings, dtype=np.float64)
    if dense.ndim != 2 or dense.shape[1] != NUM_DENSE_FEATURES:
        raise ModelError(f"dense must be [N,{NUM_DENSE_FEATURES}], got {list(dense.shape)}")
    if embeddings.shape != (len(dense), NUM_TABLES, EMBEDDING_DIM):
        raise ModelError(
            f"embeddings must be [{len(dense)},{NUM_TABLES},{EMBEDDING_DIM}], got"
            f" {list(embeddings.shape)}"
        )

    def count(prefix: str) -> int:
        return sum(1 for k in w if k.startswith(prefix) and k.endswith("weight"))

    x = dense
    for i in range(count("dense_arch.")):
        x = np.maximum(x @ w[_bottom_key(i, "weight")].T + w[_bottom_key(i, "bias")], 0.0)
    x0 = np.concatenate([x[:, None, :], embeddings], axis=1).reshape(len(dense), -1)
    xl = x0
    layer = 0
    while _cross_key("V_kernels", layer) in w:
        v, wk = w[_cross_key("V_kernels", layer)], w[_cross_key("W_kernels", layer)]
        xl = x0 * ((xl @ v.T) @ wk.T + w[_cross_key("bias", layer)]) + xl
        layer += 1
    x = xl
    for i in range(count("over_arch.model.0.")):
        x = np.maximum(x @ w[_top_key(i, "weight", False)].T + w[_top_key(i, "bias", False)], 0)
    logit = x @ w[_top_key(0, "weight", True)].T + w[_top_key(0, "bias", True)]
    out: np.ndarray = (1.0 / (1.0 + np.exp(-logit[:, 0]))).astype(np.float32)
    return out


# ------------------------------------------------------------------------------- tables


def table_rows(size: str = "tiny", max_rows: int | None = None) -> tuple[int, ...]:
    """Rows per table: SPEC §2.8's for `full` without a cap, else capped at max_rows (or tiny's)."""
    if size not in SIZES:
        raise ModelError(f"unknown dlrm-v2 table size {size!r}: expected one of {', '.join(SIZES)}")
    if max_rows is not None and max_rows < 1:
        raise ModelError(f"max_rows must be >= 1, got {max_rows}")
    if size == "full" and max_rows is None:
        return EMBEDDING_ROWS
    cap = max_rows if max_rows is not None else TINY_TABLE_ROWS
    return tuple(min(rows, cap) for rows in EMBEDDING_ROWS)


def build_tables(
    out_dir: Path, size: str = "tiny", seed: int = 0, max_rows: int | None = None
) -> list[Path]:
    """Write 26 seeded float32 tables emb_00.npy..emb_25.npy [rows, 128] into out_dir.

    Entries of table f are N(0, 1/k_f) (k_f its multi-hot size), so a pooled embedding has unit
    variance. The full tables (~97 GB) are refused: point --model-path at a folder of exported
    official tables instead (docs/dlrm.md), or pass max_rows.
    """
    rows = table_rows(size, max_rows)
    need = sum(rows) * EMBEDDING_DIM * 4
    if need > MAX_TABLE_BYTES:
        raise ModelError(
            f"the {size} dlrm-v2 embedding tables need {need / 2**30:.1f} GiB, more than this"
            f" builder writes ({MAX_TABLE_BYTES / 2**30:.0f} GiB): pass --model-path DIR with the"
            " official tables exported as emb_00.npy..emb_25.npy (docs/dlrm.md), or cap the"
            " rows (max_rows) for a synthetic set"
        )
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ModelError(f"table seed must be a non-negative integer, got {seed!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for f, (n, hot) in enumerate(zip(rows, MULTI_HOT_SIZES, strict=True)):
        rng = np.random.default_rng([seed, f])
        path = out_dir / TABLE_FILE.format(f)
        tmp = out_dir / f".{path.name}.partial"
        table = np.lib.format.open_memmap(
            tmp, mode="w+", dtype=np.float32, shape=(n, EMBEDDING_DIM)
        )
        for start in range(0, n, 1 << 16):
            end = min(start + (1 << 16), n)
            block = rng.standard_normal((end - start, EMBEDDING_DIM), dtype=np.float32)
            table[start:end] = block / np.float32(np.sqrt(hot))
        table.flush()
        del table
        tmp.replace(path)
        paths.append(path)
    return paths


def load_tables(folder: Path) -> list[np.memmap]:
    """Memory-map emb_00.npy..emb_25.npy of folder; ModelError naming the file when wrong."""
    folder = Path(folder)
    missing = [
        TABLE_FILE.format(f)
        for f in range(NUM_TABLES)
        if not (folder / TABLE_FILE.format(f)).is_file()
    ]
    if missing:
        raise ModelError(
            f"{folder} lacks {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}"
            f" ({len(missing)} of {NUM_TABLES} tables): expected emb_00.npy..emb_25.npy, float32"
            f" [rows, {EMBEDDING_DIM}] each (docs/dlrm.md)"
        )
    tables: list[np.memmap] = []
    for f in range(NUM_TABLES):
        path = folder / TABLE_FILE.format(f)
        try:
            table = np.load(path, mmap_mode="r")
        except (OSError, ValueError) as err:
            raise ModelError(f"cannot memory-map {path} as a .npy table ({err})") from err
        if (
            not isinstance(table, np.memmap)
            or table.dtype != np.float32
            or table.ndim != 2
            or table.shape[1] != EMBEDDING_DIM
            or table.shape[0] < 1
            or not table.flags.c_contiguous
        ):
            raise ModelError(
                f"{path} holds {table.dtype} {list(table.shape)}: expected a C-order float32"
                f" table [rows, {EMBEDDING_DIM}] (rows up to {EMBEDDING_ROWS[f]}, SPEC §2.8)"
            )
        tables.append(table)
    return tables


def embedding_bag_reference(
    tables: Sequence[np.ndarray], sparse_batch: Sequence[np.ndarray]
) -> np.ndarray:
    """Sum-pooled embeddings float32 [P, 26, 128]: out[p, f] = sum_j tables[f][ids_f[p, j]].

    Accumulates in float32 in id order (j = 0, 1, ...), as a plain C++ loop does. DataError when
    an id is outside its table.
    """
    if len(tables) != NUM_TABLES or len(sparse_batch) != NUM_TABLES:
        raise ModelError(
            f"expected {NUM_TABLES} tables and {NUM_TABLES} id arrays, got {len(tables)} and"
            f" {len(sparse_batch)}"
        )
    pairs = len(sparse_batch[0])
    out = np.zeros((pairs, NUM_TABLES, EMBEDDING_DIM), dtype=np.float32)
    for f, (table, ids) in enumerate(zip(tables, sparse_batch, strict=True)):
        ids = np.asarray(ids)
        if ids.ndim != 2 or len(ids) != pairs:
            raise DataError(f"ids of cat_{f} are {list(ids.shape)}: expected [{pairs}, hot]")
        if ids.size and (ids.min() < 0 or ids.max() >= len(table)):
            bad = int(ids.min()) if ids.min() < 0 else int(ids.max())
            raise DataError(f"cat_{f} id {bad} is outside table {f}'s rows 0..{len(table) - 1}")
        for j in range(ids.shape[1]):
            out[:, f, :] += table[ids[:, j]]
    return out


def reference_predict(
    model: onnx.ModelProto,
    tables: Sequence[np.ndarray],
    dense: np.ndarray,
    sparse: Sequence[np.ndarray],
) -> np.ndarray:
    """The whole FP32 model in numpy: gather + dense part; float32 probabilities [P]."""
    return reference_forward(model, dense, embedding_bag_reference(tables, sparse))
