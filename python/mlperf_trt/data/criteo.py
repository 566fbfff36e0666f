"""Criteo 1TB multi-hot day_23 (DLRMv2): raw reader, sample aggregation trace, synthetic sets.

Raw layout (SPEC §2.8), all read memory-mapped, never into RAM:

    day_23_dense.npy               float32 [rows, 13]   (log(count + 3), torchrec's preprocessing)
    day_23_sparse_multi_hot.npz    26 stored (uncompressed) members 0.npy..25.npy, int32 [rows, k_f]
    day_23_labels.npy              int32 [rows, 1] (or [rows]), 0/1

The validation set is the first half of the rows, `ceil(rows / 2)` as the reference computes it
(`len // 2 + len % 2`: 89,137,319 of day_23's 178,274,637); a synthetic set of any size is split
the same way. One LoadGen sample is a contiguous block of user-item pairs ("pairs") of that half,
cut by `aggregation_trace` (SPEC §1.1, §2.8). Calibration uses the 128,000 rows that follow the
validation half (SPEC §2.8).

The cache `prepare` writes is small: the trace offsets and a manifest; the big arrays stay where
they are (docs/dlrm.md).
"""

from __future__ import annotations

import hashlib
import json
import logging
import struct
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlperf_trt.benchmarks.dlrm import MULTI_HOT_SIZES, NUM_DENSE_FEATURES
from mlperf_trt.data.cache import prepared_dir
from mlperf_trt.errors import DataError
from mlperf_trt.results.layout import atomic_write_json, atomic_write_text

__all__ = [
    "CALIBRATION_ROWS",
    "DENSE_FILE",
    "LABELS_FILE",
    "QUANTILES",
    "SPARSE_FILE",
    "TRACE_SEED",
    "AggregatedSamples",
    "Criteo",
    "CriteoTruth",
    "RawDay",
    "aggregation_trace",
    "check_ids",
    "open_npz_member",
    "open_raw",
    "synthetic_dense",
    "validation_rows",
]

log = logging.getLogger(__name__)

DENSE_FILE = "day_23_dense.npy"
SPARSE_FILE = "day_23_sparse_multi_hot.npz"
LABELS_FILE = "day_23_labels.npy"
NUM_SPARSE_FEATURES = len(MULTI_HOT_SIZES)  # 26
# SPEC §2.8: tools/dist_quantile.txt, in file order (the order matters: randint picks an index).
QUANTILES: tuple[int, ...] = (100, 100, *([200] * 12), 300, 300, 400, 500, 600, 700)
TRACE_SEED = 123  # SPEC §2.8: numpy's legacy global seed before the draws
CALIBRATION_ROWS = 128_000  # SPEC §2.8: the first rows of day_23's second half
TRACE_VERSION = "criteo-trace-v1"
CACHE_MANIFEST = "criteo.json"
TRACE_FILE = "trace_offsets.npy"
README = "README.txt"
_README_MARK = "Synthetic Criteo-1TB day_23 multi-hot set written by mlperf_trt"
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")  # zip local file header (30 bytes)


def _hint(raw_dir: Path | str) -> str:
    return f"python -m mlperf_trt prepare --model dlrm-v2 --data-dir {raw_dir}"


# ------------------------------------------------------------------------------- the trace


def aggregation_trace(n_rows: int, seed: int = TRACE_SEED) -> np.ndarray:
    """int64 offsets [count + 1] of the aggregated samples over `n_rows` pairs (SPEC §2.8).

    Sample i is pairs [offsets[i], offsets[i + 1]). The reference seeds numpy's legacy generator
    and, from offset 0, repeats `offset = min(offset + QUANTILES[randint(0, 20)], n_rows)` until
    n_rows. A legacy RandomState gives the same integers whether they are drawn one at a time or
    as an array (tests/test_dlrm.py checks it), so the draws are made in chunks.
    """
    if isinstance(n_rows, bool) or not isinstance(n_rows, (int, np.integer)) or n_rows <= 0:
        raise DataError(f"the aggregation trace needs a positive row count, got {n_rows!r}")
    n_rows = int(n_rows)
    quantiles = np.asarray(QUANTILES, dtype=np.int64)
    rng = np.random.RandomState(seed)
    chunk = max(1024, n_rows // min(QUANTILES) // 64 + 1)
    parts = [np.zeros(1, dtype=np.int64)]
    position = 0
    while True:
        ends = position + np.cumsum(quantiles[rng.randint(low=0, high=len(quantiles), size=chunk)])
        hit = int(np.searchsorted(ends, n_rows, side="left"))  # first end >= n_rows
        if hit < chunk:
            ends = ends[: hit + 1]
            ends[-1] = n_rows  # offset = min(offset + q, N)
            parts.append(ends)
            return np.concatenate(parts)
        parts.append(ends)
        position = int(ends[-1])


def validation_rows(total_rows: int) -> int:
    """The first half of day_23, rounded up as the reference does (`len // 2 + len % 2`)."""
    return total_rows // 2 + total_rows % 2


# ------------------------------------------------------------------------------- raw reader


def open_npz_member(path: Path, member: str) -> np.memmap:
    """A read-only memmap of one stored (uncompressed) .npy member of the .npz at `path`."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            try:
                info = zf.getinfo(member)
            except KeyError:
                raise DataError(
                    f"{path} has no member {member!r}: expected the 26 members"
                    f" 0.npy..{NUM_SPARSE_FEATURES - 1}.npy of the official multi-hot file"
                ) from None
            if info.compress_type != zipfile.ZIP_STORED:
                raise DataError(
                    f"{path}: member {member!r} is compressed (zip method {info.compress_type});"
                    " it must be stored uncompressed to be memory-mapped: rewrite the file with"
                    " numpy.savez (not savez_compressed), as the official file is"
                )
            with open(path, "rb") as fh:
                fh.seek(info.header_offset)
                fields = _LOCAL_HEADER.unpack(fh.read(_LOCAL_HEADER.size))
                if fields[0] != b"PK\x03\x04":
                    raise DataError(f"{path}: damaged zip (no local header for {member!r})")
                name_len, extra_len = fields[-2], fields[-1]
                fh.seek(info.header_offset + _LOCAL_HEADER.size + name_len + extra_len)
                version = np.lib.format.read_magic(fh)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
                else:
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
                offset = fh.tell()
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        raise DataError(f"cannot read {member!r} of {path} as a stored .npy ({err})") from err
    return np.memmap(
        path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C"
    )


@dataclass(frozen=True)
class RawDay:
    """The three day_23 files of a raw folder, memory-mapped, with their shapes checked."""

    raw_dir: Path
    rows: int
    dense: np.ndarray  # float32 memmap [rows, 13]
    sparse: list[np.ndarray]  # 26 int32 memmaps [rows, MULTI_HOT_SIZES[f]]
    labels: np.ndarray  # integer memmap [rows] (a view of [rows, 1] when stored so)


def _load_npy(path: Path) -> np.ndarray:
    if not path.is_file():
        raise DataError(
            f"{path} does not exist: a Criteo day_23 folder holds {DENSE_FILE}, {SPARSE_FILE} and"
            f" {LABELS_FILE} (SPEC §2.8); or synthesize one with `{_hint(path.parent)}`"
        )
    try:
        array: np.ndarray = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as err:
        raise DataError(f"cannot memory-map {path} as a .npy array ({err})") from err
    return array


def open_raw(raw_dir: Path) -> RawDay:
    """Memory-map the day_23 files of raw_dir; DataError naming the file and field when wrong."""
    raw_dir = Path(raw_dir)
    dense = _load_npy(raw_dir / DENSE_FILE)
    if dense.ndim != 2 or dense.shape[1] != NUM_DENSE_FEATURES or dense.dtype != np.float32:
        raise DataError(
            f"{raw_dir / DENSE_FILE} holds {dense.dtype} {list(dense.shape)}: expected float32"
            f" [rows, {NUM_DENSE_FEATURES}] (SPEC §2.8)"
        )
    rows = int(dense.shape[0])
    labels = _load_npy(raw_dir / LABELS_FILE)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise DataError(
            f"{raw_dir / LABELS_FILE} holds {labels.dtype} {list(labels.shape)}: expected integer"
            " 0/1 labels [rows, 1] or [rows]"
        )
    sparse_path = raw_dir / SPARSE_FILE
    if not sparse_path.is_file():
        raise DataError(
            f"{sparse_path} does not exist: expected the multi-hot ids next to {DENSE_FILE}"
        )
    sparse: list[np.ndarray] = []
    for f, width in enumerate(MULTI_HOT_SIZES):
        member = open_npz_member(sparse_path, f"{f}.npy")
        if member.ndim != 2 or member.shape[1] != width:
            raise DataError(
                f"{sparse_path}: member '{f}.npy' (cat_{f}) is {list(member.shape)}; expected"
                f" [rows, {width}]: got width {member.shape[-1] if member.ndim else 0}, expected"
                f" {width} (the multi-hot size of cat_{f}, SPEC §2.8)"
            )
        if member.dtype != np.int32:
            raise DataError(
                f"{sparse_path}: member '{f}.npy' holds {member.dtype}, expected int32 ids"
            )
        sparse.append(member)
    counts = {DENSE_FILE: rows, LABELS_FILE: int(labels.shape[0])}
    counts.update({f"{SPARSE_FILE}:{f}.npy": int(m.shape[0]) for f, m in enumerate(sparse)})
    if len(set(counts.values())) != 1:
        detail = ", ".join(f"{name}: {n}" for name, n in counts.items() if n != rows)
        raise DataError(
            f"the day_23 files in {raw_dir} disagree on the row count: {DENSE_FILE} has {rows}"
            f" rows but {detail}; the three files must come from the same day"
        )
    if rows == 0:
        raise DataError(f"{raw_dir / DENSE_FILE} holds no rows")
    return RawDay(raw_dir, rows, dense, sparse, labels)


def check_ids(
    sparse: Sequence[np.ndarray], table_rows: Sequence[int], *, chunk_rows: int = 1 << 16
) -> None:
    """DataError naming the feature when an id is negative or not below its table's row count.

    Walks the (memory-mapped) arrays in chunks of rows, so it never loads a whole member.
    """
    if len(sparse) != len(table_rows):
        raise DataError(f"check_ids: {len(sparse)} id arrays for {len(table_rows)} tables")
    for f, (ids, rows) in enumerate(zip(sparse, table_rows, strict=True)):
        for start in range(0, len(ids), chunk_rows):
            block = np.asarray(ids[start : start + chunk_rows])
            if block.size == 0:
                continue
            low, high = int(block.min()), int(block.max())
            if low < 0 or high >= rows:
                bad = low if low < 0 else high
                where = start + int(np.argwhere((block < 0) | (block >= rows))[0][0])
                raise DataError(
                    f"cat_{f} (member '{f}.npy') holds id {bad} at row {where}: expected ids in"
                    f" 0..{rows - 1} (table {f} has {rows} rows); the data set and the embedding"
                    " tables do not belong together"
                )


# ------------------------------------------------------------------------------- samples


@dataclass(frozen=True)
class AggregatedSamples:
    """The validation half cut into LoadGen samples (SPEC §1.1): sample i = pairs of a block."""

    offsets: np.ndarray  # int64 [count + 1]
    dense: np.ndarray  # float32 memmap [validation rows, 13]
    sparse: list[np.ndarray]  # 26 int32 memmaps [validation rows, k_f]
    labels: np.ndarray  # integer memmap [validation rows]

    @property
    def count(self) -> int:
        return len(self.offsets) - 1

    @property
    def pairs_per_sample(self) -> np.ndarray:
        return np.diff(self.offsets)

    def pair_range(self, index: int) -> tuple[int, int]:
        """(start, end) pair rows of sample `index`."""
        if not 0 <= index < self.count:
            raise DataError(f"sample index {index} is outside 0..{self.count - 1}")
        return int(self.offsets[index]), int(self.offsets[index + 1])

    def sample(self, index: int) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
        """Copies of one sample's (dense, sparse per feature, labels) rows."""
        start, end = self.pair_range(index)
        return (
            np.array(self.dense[start:end]),
            [np.array(s[start:end]) for s in self.sparse],
            np.array(self.labels[start:end]),
        )


@dataclass(frozen=True)
class CriteoTruth:
    """What the AUC metric needs: the trace and the validation labels (SPEC §2.8)."""

    offsets: np.ndarray  # int64 [count + 1]
    labels: np.ndarray  # [validation rows]

    @property
    def pairs_per_sample(self) -> np.ndarray:
        return np.diff(self.offsets)


def synthetic_dense(rng: np.random.Generator, rows: int) -> np.ndarray:
    """float32 [rows, 13] distributed like the official dense features: log(count + 3).

    Criteo's integer features are heavy-tailed counts, often 0 (missing values are 0 after
    torchrec's preprocessing); each feature here is a lognormal count with its own fixed scale
    and share of zeros.
    """
    shape = np.random.default_rng(20_230_923)  # fixed per-feature shapes: part of the format
    mu = shape.uniform(0.0, 4.0, NUM_DENSE_FEATURES)
    sigma = shape.uniform(0.8, 2.0, NUM_DENSE_FEATURES)
    zero = shape.uniform(0.05, 0.45, NUM_DENSE_FEATURES)
    counts = np.floor(rng.lognormal(mu, sigma, size=(rows, NUM_DENSE_FEATURES)))
    counts[rng.random((rows, NUM_DENSE_FEATURES)) < zero] = 0.0
    return np.log(counts + 3.0).astype(np.float32)


def _fingerprint(raw_dir: Path) -> str:
    digest = hashlib.sha256()
    for name in (DENSE_FILE, SPARSE_FILE, LABELS_FILE):
        st = (raw_dir / name).stat()
        digest.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


class Criteo:
    """Criteo 1TB day_23 multi-hot (DLRMv2): the `Dataset` seam of DESIGN.md §3."""

    name = "criteo-1tb-day23-multihot"

    def default_cache_dir(self, raw_dir: Path) -> Path:
        return prepared_dir("criteo", raw_dir)

    def prepare(
        self, raw_dir: Path, out_dir: Path | None = None, *, seed: int = TRACE_SEED
    ) -> Path:
        """Check raw_dir, compute the trace of its validation half and cache it; the cache dir.

        The cache (TRACE_FILE + CACHE_MANIFEST) is reused while the raw files' sizes and mtimes,
        the seed and TRACE_VERSION stay the same.
        """
        raw_dir = Path(raw_dir)
        raw = open_raw(raw_dir)
        out_dir = Path(out_dir) if out_dir is not None else self.default_cache_dir(raw_dir)
        half = validation_rows(raw.rows)
        wanted: dict[str, Any] = {
            "dataset": self.name,
            "version": TRACE_VERSION,
            "source": str(raw_dir.resolve()),
            "source_files_hash": _fingerprint(raw_dir),
            "rows": raw.rows,
            "validation_rows": half,
            "seed": seed,
        }
        if self._reusable(out_dir, wanted):
            return out_dir
        offsets = aggregation_trace(half, seed)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / CACHE_MANIFEST).unlink(missing_ok=True)  # written last, below
        tmp = out_dir / f".{TRACE_FILE}.partial"
        with open(tmp, "wb") as handle:
            np.save(handle, offsets, allow_pickle=False)
        tmp.replace(out_dir / TRACE_FILE)
        sizes = np.diff(offsets)
        atomic_write_json(
            out_dir / CACHE_MANIFEST,
            {
                **wanted,
                "count": len(sizes),
                "pairs_min": int(sizes.min()),
                "pairs_max": int(sizes.max()),
            },
        )
        log.info("%s: %d aggregated samples over %d pairs", raw_dir, len(sizes), offsets[-1])
        return out_dir

    @staticmethod
    def _reusable(out_dir: Path, wanted: dict[str, Any]) -> bool:
        try:
            found = json.loads((out_dir / CACHE_MANIFEST).read_text())
            offsets = np.load(out_dir / TRACE_FILE, mmap_mode="r")
        except (OSError, ValueError):
            return False
        return (
            isinstance(found, dict)
            and all(found.get(key) == value for key, value in wanted.items())
            and offsets.shape == (found.get("count", -2) + 1,)
        )

    def _offsets(self, raw_dir: Path, out_dir: Path | None) -> np.ndarray:
        cache = self.prepare(raw_dir, out_dir)
        offsets: np.ndarray = np.load(cache / TRACE_FILE)
        return offsets

    def samples(self, raw_dir: Path, out_dir: Path | None = None) -> AggregatedSamples:
        """The aggregated samples of raw_dir's validation half (prepares the trace if needed)."""
        raw = open_raw(raw_dir)
        half = validation_rows(raw.rows)
        return AggregatedSamples(
            offsets=self._offsets(Path(raw_dir), out_dir),
            dense=raw.dense[:half],
            sparse=[s[:half] for s in raw.sparse],
            labels=raw.labels[:half],
        )

    def ground_truth(self, raw_dir: Path, out_dir: Path | None = None) -> CriteoTruth:
        raw = open_raw(raw_dir)
        offsets = self._offsets(Path(raw_dir), out_dir)
        return CriteoTruth(offsets, raw.labels[: validation_rows(raw.rows)])

    def calibration_rows(self, total_rows: int | None = None) -> range:
        """Rows of day_23 to calibrate on: the CALIBRATION_ROWS after the validation half.

        Without `total_rows`, the official ones (89,137,319..89,265,318, SPEC §2.8); a smaller
        (synthetic) day gets the same rule, cut at its end.
        """
        if total_rows is None:
            start = 89_137_319  # SPEC §2.8
            return range(start, start + CALIBRATION_ROWS)
        start = validation_rows(total_rows)
        return range(start, min(start + CALIBRATION_ROWS, total_rows))

    # -- synthetic set ----------------------------------------------------------------------------

    def synthesize(
        self,
        raw_dir: Path,
        rows: int,
        seed: int,
        table_rows: Sequence[int],
        model_fn: Callable[[np.ndarray, list[np.ndarray]], np.ndarray],
        *,
        target_auc: float = 0.80,
        chunk_rows: int = 8192,
    ) -> dict[str, float]:
        """Write a synthetic day_23 of `rows` pairs in the official layout into raw_dir.

        Ids of feature f are uniform below table_rows[f] (the synthetic multi-hot expansion is
        uniform too, SPEC §2.8); dense features follow `synthetic_dense`. Labels are
        Bernoulli(sigmoid(k * logit(p))) with p = model_fn(dense, sparse) the FP32 model's
        probability, and k chosen so that the expected AUC of p is `target_auc`; returns
        {"fp32_auc", "sharpening", "positive_rate", "rows", "validation_rows", "samples"}, the
        AUC measured on the validation half's pairs as the metric collects them.
        """
        from sklearn.metrics import roc_auc_score

        raw_dir = Path(raw_dir)
        if rows < 2:
            raise DataError(f"cannot synthesize {rows} rows: expected at least 2")
        if len(table_rows) != NUM_SPARSE_FEATURES or min(table_rows) < 1:
            raise DataError(
                f"table_rows must give {NUM_SPARSE_FEATURES} positive row counts, got {table_rows}"
            )
        if not 0.5 < target_auc < 1.0:
            raise DataError(f"target_auc {target_auc} must lie strictly between 0.5 and 1")
        existing = [n for n in (DENSE_FILE, SPARSE_FILE, LABELS_FILE) if (raw_dir / n).exists()]
        if existing and _README_MARK not in _read(raw_dir / README):
            raise DataError(
                f"{raw_dir} already holds {', '.join(existing)} not written by the synthesizer;"
                " refusing to overwrite what may be the official data: pick an empty folder"
            )
        raw_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(raw_dir / README, f"{_README_MARK} (incomplete).\n")
        for name in (DENSE_FILE, SPARSE_FILE, LABELS_FILE):
            (raw_dir / name).unlink(missing_ok=True)
        rng = np.random.default_rng([seed, 23])
        dense = synthetic_dense(rng, rows)
        sparse = [
            rng.integers(0, n, size=(rows, k), dtype=np.int32)
            for f, (n, k) in enumerate(zip(table_rows, MULTI_HOT_SIZES, strict=True))
        ]
        prob = np.empty(rows, dtype=np.float64)
        for start in range(0, rows, chunk_rows):
            end = min(start + chunk_rows, rows)
            out = np.asarray(model_fn(dense[start:end], [s[start:end] for s in sparse]))
            if out.shape != (end - start,):
                raise DataError(
                    f"model_fn returned {out.dtype} {list(out.shape)} for {end - start} pairs:"
                    " expected one probability per pair"
                )
            prob[start:end] = out
        if not np.all(np.isfinite(prob)) or prob.min() < 0 or prob.max() > 1:
            raise DataError("model_fn returned values outside [0, 1]: expected probabilities")
        sharpening = _sharpening_for(prob, target_auc)
        labels = (rng.random(rows) < _sharpen(prob, sharpening)).astype(np.int32)
        np.save(raw_dir / DENSE_FILE, dense)
        members: dict[str, Any] = {str(f): ids for f, ids in enumerate(sparse)}
        np.savez(raw_dir / SPARSE_FILE, **members)  # members 0.npy..25.npy, stored uncompressed
        np.save(raw_dir / LABELS_FILE, labels.reshape(-1, 1))  # [rows, 1] as torchrec writes it
        half = validation_rows(rows)
        offsets = aggregation_trace(half)
        truth = labels[:half]
        fp32_auc = (
            float(roc_auc_score(truth, prob[:half].astype(np.float32)))
            if 0 < truth.sum() < half
            else float("nan")
        )
        figures = {
            "fp32_auc": fp32_auc,
            "sharpening": sharpening,
            "positive_rate": float(labels.mean()),
            "rows": float(rows),
            "validation_rows": float(half),
            "samples": float(len(offsets) - 1),
        }
        atomic_write_text(
            raw_dir / README,
            f"{_README_MARK} (seed {seed}, {rows} rows; labels drawn from the FP32 model's"
            f" sharpened probabilities, k={sharpening:.3f}; FP32 AUC {100 * fp32_auc:.3f}%).\n",
        )
        return figures


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""


def _sharpen(prob: np.ndarray, k: float) -> np.ndarray:
    logit = np.log(np.clip(prob, 1e-12, 1.0)) - np.log(np.clip(1.0 - prob, 1e-12, 1.0))
    out: np.ndarray = 1.0 / (1.0 + np.exp(-k * logit))
    return out


def _expected_auc(prob: np.ndarray, q: np.ndarray) -> float:
    """AUC of scores `prob` when pair i is positive with probability q[i] (in expectation)."""
    from sklearn.metrics import roc_auc_score

    scores = np.concatenate([prob, prob])
    truth = np.concatenate([np.ones_like(prob), np.zeros_like(prob)])
    return float(roc_auc_score(truth, scores, sample_weight=np.concatenate([q, 1.0 - q])))


def _sharpening_for(prob: np.ndarray, target: float) -> float:
    """The k (bisection over [0.05, 20]) whose sharpened labels give `prob` the target AUC."""
    if np.ptp(prob) == 0:
        raise DataError("model_fn gives every pair the same probability: AUC would be 50%")
    sample = prob[:: max(1, len(prob) // 20_000)]
    low, high = 0.05, 20.0
    if _expected_auc(sample, _sharpen(sample, high)) < target:
        return high  # the model cannot separate more: take the sharpest labels
    for _ in range(30):
        mid = (low * high) ** 0.5
        if _expected_auc(sample, _sharpen(sample, mid)) < target:
            low = mid
        else:
            high = mid
    return float((low * high) ** 0.5)
