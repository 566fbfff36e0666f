"""DLRMv2 on Criteo day 23 (SPEC §2.8): samples are blocks of user-item pairs, batches carry a
budget of pairs, the embedding-bag gather runs in C++ over memory-mapped tables in front of the
dense engine, and the payload is (probability, label) per pair.

The harness's sample store holds one small tensor per sample, its pair range [start, end); the
executor (`EmbeddingStage`) turns a batch of ranges into the dense engine's inputs: the pairs'
dense features and the sum-pooled multi-hot embeddings of their 26 features (SPEC §2.8).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mlperf_trt import _C
from mlperf_trt.errors import ModelError
from mlperf_trt.harness.pipelines import Batching, HandleManifest, Pipeline, Synthesized

RANGE = "pair_range"  # the stored tensor: int64 [2] = (first pair row, end) of a sample
OUTPUT = "pairs"  # the executor's output: float32 [pairs, 2] = (probability, label)
MEAN_PAIRS = 270  # SPEC §2.8: mean of the quantile table
CALIBRATION_PAIRS = 4096  # rows of the calibration range used to calibrate the dense engine


class PreparedPairs:
    """The prepared view the harness reads: sample i is its pair range (start, end)."""

    def __init__(self, samples: Any, raw_dir: Path, cache_dir: Path) -> None:
        from mlperf_trt.data.criteo import TRACE_VERSION

        self.samples = samples  # data.criteo.AggregatedSamples (memmaps of the validation half)
        self.raw_dir = raw_dir
        self.path = cache_dir
        self.count = samples.count
        self._ranges = np.stack([samples.offsets[:-1], samples.offsets[1:]], axis=1)
        blob = samples.offsets.tobytes() + str(raw_dir.resolve()).encode()
        self.manifest = HandleManifest(
            ((RANGE, "int64", (2,)),), hashlib.sha256(blob).hexdigest(), TRACE_VERSION
        )

    def sample(self, index: int) -> list[np.ndarray]:
        return [self._ranges[index]]

    def batch(self, indices: list[int]) -> dict[str, np.ndarray]:
        return {RANGE: self._ranges[np.asarray(indices, dtype=np.int64)]}


class CriteoPairs:
    """The Dataset seam over data.criteo.Criteo for the harness."""

    def __init__(self) -> None:
        from mlperf_trt.data.criteo import Criteo

        self.criteo = Criteo()
        self.name = self.criteo.name

    def prepare(self, raw_dir: Path, show_progress: bool = True) -> PreparedPairs:
        cache = self.criteo.prepare(Path(raw_dir))
        return PreparedPairs(self.criteo.samples(Path(raw_dir), cache), Path(raw_dir), cache)

    def calibration_indices(
        self, count: int, size: int = 0, raw_dir: Path | None = None
    ) -> list[int]:
        """The calibration set is rows after the validation half (SPEC §2.8), not samples: the
        list names the first CALIBRATION_PAIRS of them, read by `calibration_feeds`."""
        from mlperf_trt.data.criteo import open_raw

        rows = self.criteo.calibration_rows(open_raw(Path(raw_dir)).rows if raw_dir else None)
        return list(rows[:CALIBRATION_PAIRS])


# -- the embedding tables ----------------------------------------------------------------------

_TABLES: dict[Path, list[np.ndarray]] = {}
_TABLES_LOCK = threading.Lock()


def tables_for(model: Any) -> list[np.ndarray]:
    """The memory-mapped tables a built model goes with (built once under the data root)."""
    from mlperf_trt.data import data_root
    from mlperf_trt.models import dlrm

    spec = dlrm.tables_of(model)
    if spec is None:
        raise ModelError(
            "this dlrm-v2 dense model names no embedding tables (it was not built by"
            " mlperf_trt); the official tables cannot be read without torchrec: export them as"
            " emb_00.npy..emb_25.npy (docs/dlrm.md)"
        )
    folder = (
        data_root()
        / "models"
        / (f"dlrm-v2-tables-{spec['size']}-rows{spec['max_rows']}-seed{spec['seed']}")
    )
    with _TABLES_LOCK:
        if folder not in _TABLES:
            if not (folder / dlrm.TABLE_FILE.format(dlrm.NUM_TABLES - 1)).is_file():
                dlrm.build_tables(folder, "full", int(spec["seed"]), int(spec["max_rows"]))
            _TABLES[folder] = list(dlrm.load_tables(folder))
        return _TABLES[folder]


def pooled_embeddings(
    tables: list[np.ndarray], sparse: list[np.ndarray], threads: int = 0
) -> np.ndarray:
    """float32 [pairs, 26, 128]: the C++ multi-hot embedding-bag sum (GIL released); threads 0
    uses every core, the harness's workers use 1 each (they are the parallelism)."""
    ids = [np.ascontiguousarray(s, dtype=np.int32) for s in sparse]
    return _C.kernels.embedding_bag_sum_tables(tables, ids, threads=threads)


class EmbeddingStage:
    """The dlrm-v2 executor: pair ranges -> gather + embedding bag -> dense engine -> rows of
    (probability, label), one per pair in batch order (what RowsPostprocessor splits)."""

    def __init__(self, dense: Any, samples: Any, tables: list[np.ndarray]) -> None:
        self.dense = dense
        self.samples = samples
        self.tables = tables

    def run(
        self, inputs: Mapping[str, np.ndarray], batch_size: int | None = None
    ) -> dict[str, np.ndarray]:
        ranges = inputs[RANGE]
        rows = np.concatenate([np.arange(s, e, dtype=np.int64) for s, e in ranges])
        s = self.samples
        dense = np.ascontiguousarray(s.dense[rows], dtype=np.float32)
        emb = pooled_embeddings(self.tables, [f[rows] for f in s.sparse], threads=1)
        prob = np.asarray(self.dense.run({"dense": dense, "embeddings": emb})["probability"])
        out = np.empty((len(rows), 2), dtype=np.float32)
        out[:, 0] = prob.reshape(-1)
        out[:, 1] = s.labels[rows]
        return {OUTPUT: out}


def _batching(data: Any, config: Any) -> Batching:
    budget = int(config["pairs_per_batch"])
    costs = data.prepared.samples.pairs_per_sample.astype(np.uint32)
    # Every sample holds at least one pair, so the budget also bounds the samples in a batch.
    return Batching(costs=costs, max_cost=budget, max_batch=budget)


def _wrap(executor: Any, data: Any, config: Any, model: Any) -> EmbeddingStage:
    return EmbeddingStage(executor, data.prepared.samples, tables_for(model))


def _calibration_feeds(
    data: Any, indices: list[int], model: Any
) -> Iterator[Mapping[str, np.ndarray]]:
    """The dense engine's inputs for the calibration rows (SPEC §2.8), 512 pairs at a time."""
    from mlperf_trt.data.criteo import open_raw

    raw = open_raw(data.raw_dir)
    tables = tables_for(model)
    rows = np.asarray(indices, dtype=np.int64)
    for start in range(0, len(rows), 512):
        chunk = rows[start : start + 512]
        yield {
            "dense": np.ascontiguousarray(raw.dense[chunk], dtype=np.float32),
            "embeddings": pooled_embeddings(tables, [f[chunk] for f in raw.sparse]),
        }


def synthesize(model: Any, raw: Path, count: int, show_progress: bool) -> Synthesized:
    import onnxruntime as ort

    from mlperf_trt.data.criteo import Criteo

    tables = tables_for(model)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])

    def model_fn(dense: np.ndarray, sparse: list[np.ndarray]) -> np.ndarray:
        emb = pooled_embeddings(tables, sparse)
        (prob,) = session.run(["probability"], {"dense": dense, "embeddings": emb})
        return np.asarray(prob)

    # `count` samples of MEAN_PAIRS pairs in the validation half, which is half of the day.
    rows = 2 * MEAN_PAIRS * count
    made = Criteo().synthesize(
        raw, rows, seed=0, table_rows=[len(t) for t in tables], model_fn=model_fn
    )
    return Synthesized(
        100.0 * float(made["fp32_auc"]),
        {
            "labels": "Bernoulli draws of the FP32 model's own sharpened probabilities",
            "sharpening": float(made["sharpening"]),
            "positive_rate": float(made["positive_rate"]),
            "rows": int(made["rows"]),
        },
    )


def _truth(raw: Path) -> Any:
    from mlperf_trt.data.criteo import Criteo

    return Criteo().ground_truth(raw)


def _pipeline() -> Pipeline:
    from mlperf_trt.accuracy import criteo
    from mlperf_trt.models.dlrm import DENSE_CARD

    return Pipeline(
        benchmark="dlrm-v2",
        dataset=CriteoPairs,
        output_names=(OUTPUT,),
        # SPEC §1.2, §2.8: float32 (probability, label) per pair of the sample.
        postprocessor=lambda: _C.harness.RowsPostprocessor(0),
        evaluate=criteo.evaluate,
        truth=_truth,
        synthesize=synthesize,
        metric="AUC",
        batching=_batching,
        wrap_executor=_wrap,
        calibration_feeds=_calibration_feeds,
        model_card=DENSE_CARD,
        engine_batch_field="pairs_per_batch",  # the dense engine's batch axis counts pairs
    )


PIPELINE = _pipeline()
