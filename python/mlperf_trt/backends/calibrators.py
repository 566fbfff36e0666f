"""Activation calibrators of our own: statistics, ranges (minmax, percentile, entropy), calib.cache.

One pass over the calibration set runs the model in ONNX Runtime with the tensors to calibrate
added as graph outputs (on a copy of the model) and folds every batch into per-tensor running
statistics (`CalibrationStats`): min, max and a histogram of |x|. `compute_ranges` turns the
statistics into ranges by one of the methods of `calibration.CALIBRATION_METHODS`, and `calibrate`
does both and returns a `CalibrationCache` (the calib.cache of docs/engines.md, DESIGN §5) that
both the ORT QDQ models and TensorRT explicit precision (`backends.qdq.insert_qdq`) read.

Why not ONNX Runtime's calibrators (which `backends/ort.py` uses through quantize_static): the
ranges decide the accuracy of every INT8/FP8 engine, so the algorithm is written here from its
published description, in numpy, where each step can be checked against a known distribution
(tests/test_quantization.py) and does not change when ORT's internals do (ORT 1.32's histogram
calibrators keep every batch's activations in memory and fail on batches of different sizes).
Formulae: docs/quantization.md.

onnx and onnxruntime are imported inside the functions that need them (backends/ort.py's rule).
"""

from __future__ import annotations

import hashlib
import logging
import math
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mlperf_trt.backends.calibration import (
    CALIBRATION_METHODS,
    CalibrationCache,
    TensorRange,
    symmetric_scale,
)
from mlperf_trt.errors import BackendError, closest

if TYPE_CHECKING:
    import onnx

__all__ = [
    "DEFAULT_NUM_BINS",
    "DEFAULT_OPS",
    "CalibrationStats",
    "TensorStats",
    "calibrate",
    "calibration_tensors",
    "collect_activations",
    "compute_ranges",
    "element_types",
]

log = logging.getLogger(__name__)

DEFAULT_NUM_BINS = 2048  # TensorRT's entropy calibrator histograms |x| into 2048 bins
DEFAULT_OPS: tuple[str, ...] = ("Conv", "MatMul", "Gemm")
# Entropy (KL) smoothing: a bin that P fills and the quantised Q leaves empty gets this many
# observations' worth of probability, so KL stays finite and such bins are heavily penalised.
_KL_EPS_COUNT = 1e-4
_EXTERNAL_DATA_BYTES = 1 << 30  # as backends/ort.py: bigger models go through a file


class TensorStats:
    """Running statistics of one tensor: min, max, element count, exact zeros, |x| histogram.

    The histogram has bins of equal width `bin_width` starting at 0; bin k counts the values with
    k * w <= |x| < (k + 1) * w (the largest values fall into the last bin). The first batch with a
    non-zero value sets w = max|x| / num_bins. When a later batch exceeds the covered range, bins
    of the same width are appended (no re-binning of old counts), as NVIDIA's TensorRT calibration
    toolkit (pytorch-quantization's HistogramCalibrator) and ONNX Runtime's HistogramCollector do:
    old counts stay exact and the resolution set by the first batch is kept. Unlike them, the
    count is bounded: beyond 2 * num_bins bins, adjacent pairs are merged (w doubles), which is
    also exact because each old bin lies wholly inside one new bin. So the histogram always holds
    every value seen, with num_bins..2*num_bins bins once the range stops growing.
    """

    __slots__ = ("bin_width", "count", "counts", "max", "min", "num_bins", "zeros")

    def __init__(self, num_bins: int = DEFAULT_NUM_BINS) -> None:
        if isinstance(num_bins, bool) or not isinstance(num_bins, int) or num_bins < 2:
            raise BackendError(f"num_bins is {num_bins!r}: expected an integer >= 2, e.g. 2048")
        self.num_bins = num_bins
        self.min = math.inf
        self.max = -math.inf
        self.count = 0
        self.zeros = 0  # exact zeros (ReLU outputs): representable at any scale, see entropy
        self.bin_width = 0.0  # 0 until a non-zero value was seen
        self.counts = np.zeros(0, np.int64)

    @property
    def amax(self) -> float:
        """max |x| observed (0.0 before any data)."""
        return max(abs(self.min), abs(self.max)) if self.count else 0.0

    @property
    def edges(self) -> np.ndarray:
        """The histogram's bin edges, len(counts) + 1 of them."""
        return np.arange(len(self.counts) + 1, dtype=np.float64) * self.bin_width

    def update(self, values: np.ndarray, name: str = "tensor") -> None:
        """Fold one batch of values into the statistics; BackendError on inf/NaN."""
        data = np.asarray(values)
        if data.size == 0:
            return
        if not np.issubdtype(data.dtype, np.floating):
            data = data.astype(np.float64)
        lo, hi = float(data.min()), float(data.max())
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise BackendError(
                f"calibration: tensor {name!r} has non-finite values (min {lo}, max {hi}); the"
                " calibration inputs or their preprocessing produce inf/NaN: check them"
            )
        self.min, self.max = min(self.min, lo), max(self.max, hi)
        self.count += int(data.size)
        magnitude = np.abs(data).reshape(-1)
        self.zeros += int(data.size - np.count_nonzero(magnitude))
        batch_amax = max(abs(lo), abs(hi))
        if self.bin_width == 0.0:
            if batch_amax == 0.0:
                return  # all zeros so far: counted in self.zeros, binned when a width exists
            self.bin_width = batch_amax / self.num_bins
            self.counts = np.zeros(self.num_bins, np.int64)
            # every earlier value was an exact zero: bin 0 (this batch's zeros are binned below)
            self.counts[0] = self.count - int(data.size)
        elif batch_amax > self.bin_width * len(self.counts):
            self._widen(batch_amax)
        index = (magnitude / self.bin_width).astype(np.int64)
        np.minimum(index, len(self.counts) - 1, out=index)
        self.counts += np.bincount(index, minlength=len(self.counts))

    def _widen(self, amax: float) -> None:
        needed = int(math.floor(amax / self.bin_width)) + 1
        counts = np.concatenate([self.counts, np.zeros(needed - len(self.counts), np.int64)])
        width = self.bin_width
        while len(counts) > 2 * self.num_bins:
            if len(counts) % 2:
                counts = np.concatenate([counts, np.zeros(1, np.int64)])
            counts = counts.reshape(-1, 2).sum(axis=1)
            width *= 2.0
        self.counts, self.bin_width = counts, width


class CalibrationStats:
    """Per-tensor `TensorStats` gathered over the calibration batches (`collect_activations`)."""

    def __init__(self, num_bins: int = DEFAULT_NUM_BINS) -> None:
        TensorStats(num_bins)  # validates num_bins
        self.num_bins = num_bins
        self.tensors: dict[str, TensorStats] = {}
        self.batches = 0

    def update(self, name: str, values: np.ndarray) -> None:
        """Fold one batch of tensor `name` into its statistics (created on first use)."""
        stats = self.tensors.get(name)
        if stats is None:
            stats = self.tensors[name] = TensorStats(self.num_bins)
        stats.update(values, name)

    def __getitem__(self, name: str) -> TensorStats:
        try:
            return self.tensors[name]
        except KeyError:
            raise BackendError(
                f"no calibration statistics for tensor {name!r}{closest(name, self.tensors)}"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self.tensors

    def __len__(self) -> int:
        return len(self.tensors)


def _float_types() -> frozenset[int]:
    from onnx import TensorProto

    return frozenset(
        {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.DOUBLE}
    )


def element_types(model: onnx.ModelProto) -> dict[str, int]:
    """Element type of every typed tensor of the graph (shape inference fills the gaps)."""
    import onnx as _onnx

    try:
        inferred = _onnx.shape_inference.infer_shapes(model)
    except Exception as err:  # noqa: BLE001 - best effort: the declared types still count
        log.debug("shape inference failed (%s); using declared types only", err)
        inferred = model
    graph = inferred.graph
    types = {i.name: i.data_type for i in graph.initializer}
    for info in (*graph.input, *graph.value_info, *graph.output):
        if info.type.HasField("tensor_type") and info.type.tensor_type.elem_type:
            types[info.name] = info.type.tensor_type.elem_type
    return types


def calibration_tensors(model: onnx.ModelProto, ops: Sequence[str] = DEFAULT_OPS) -> list[str]:
    """The tensors to calibrate by default: float graph inputs, then the float non-constant inputs
    of every node of `ops` (its activations, not its weights), in graph order, each once."""
    graph = model.graph
    types = element_types(model)
    floats = _float_types()
    constants = {i.name for i in graph.initializer}
    constants.update(o for n in graph.node if n.op_type == "Constant" for o in n.output)
    names: dict[str, None] = {}
    for info in graph.input:
        if info.name not in constants and types.get(info.name) in floats:
            names[info.name] = None
    for node in graph.node:
        if node.op_type not in ops:
            continue
        inputs = node.input[:2]  # data inputs; Conv/Gemm bias (input 2) stays float
        for name in inputs:
            if name and name not in constants and types.get(name, 0) in floats:
                names[name] = None
    return list(names)


def _session(model: onnx.ModelProto, scratch: Path) -> object:
    import onnx as _onnx
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    providers = ["CPUExecutionProvider"]
    if model.ByteSize() < _EXTERNAL_DATA_BYTES:
        return ort.InferenceSession(model.SerializeToString(), options, providers=providers)
    path = scratch / "calibration.onnx"
    _onnx.save_model(model, str(path), save_as_external_data=True, location="calibration.onnx.data")
    return ort.InferenceSession(str(path), options, providers=providers)


def collect_activations(
    model: onnx.ModelProto,
    feeds: Iterable[Mapping[str, np.ndarray]],
    tensors: Sequence[str] | None = None,
    *,
    num_bins: int = DEFAULT_NUM_BINS,
) -> CalibrationStats:
    """Run `model` on every batch of `feeds` and gather the statistics of `tensors`.

    tensors: names in the graph (default `calibration_tensors(model)`). The model is copied and
    the copy gets the tensors as extra outputs; the caller's model is never changed.
    """
    import onnx as _onnx
    from onnx import helper

    stats = CalibrationStats(num_bins)
    wanted = list(dict.fromkeys(calibration_tensors(model) if tensors is None else tensors))
    graph = model.graph
    graph_inputs = [i.name for i in graph.input]
    produced = {o for n in graph.node for o in n.output if o}
    unknown = [t for t in wanted if t not in produced and t not in graph_inputs]
    if unknown:
        known = sorted(produced.union(graph_inputs))
        raise BackendError(
            f"calibration tensors {unknown} are neither graph inputs nor node outputs of"
            f" {graph.name or 'the model'}{closest(unknown[0], known)}; pass names from the graph"
        )
    if not wanted:
        raise BackendError(
            f"nothing to calibrate in {graph.name or 'the model'}: it has no float inputs of"
            f" {', '.join(DEFAULT_OPS)} nodes; pass tensors= explicitly"
        )
    from_feed = [t for t in wanted if t in graph_inputs]
    probed = [t for t in wanted if t not in graph_inputs]
    copy = _onnx.ModelProto()
    copy.CopyFrom(model)
    outputs = [o.name for o in copy.graph.output]
    types = element_types(model)
    for name in probed:
        if name not in outputs:
            elem = types.get(name, _onnx.TensorProto.FLOAT)
            copy.graph.output.append(helper.make_tensor_value_info(name, elem, None))
    required = [i.name for i in graph.input if i.name not in {x.name for x in graph.initializer}]
    with tempfile.TemporaryDirectory(prefix="mlperf_trt-calib-") as scratch:
        session = _session(copy, Path(scratch)) if probed else None
        for feed in feeds:
            missing = [n for n in required if n not in feed]
            if missing:
                raise BackendError(
                    f"calibration batch {stats.batches}: missing inputs {missing} (got"
                    f" {sorted(feed)}); each batch must map every model input to an array"
                )
            arrays = {n: np.asarray(feed[n]) for n in required}
            for name in from_feed:
                stats.update(name, arrays[name])
            if session is not None:
                try:
                    values = session.run(probed, arrays)  # type: ignore[attr-defined]
                except Exception as err:
                    shapes = {k: (v.shape, str(v.dtype)) for k, v in arrays.items()}
                    raise BackendError(
                        f"calibration batch {stats.batches}: onnxruntime failed on inputs"
                        f" {shapes}: {err}"
                    ) from err
                for name, value in zip(probed, values, strict=True):
                    stats.update(name, value)
            stats.batches += 1
    if stats.batches == 0:
        raise BackendError("the calibration feeds yielded no batches; give at least one batch")
    return stats


def _percentile_threshold(stats: TensorStats, percentile: float) -> float:
    """The `percentile`-th percentile of |x|, read from the histogram and interpolated linearly
    inside its bin (values are taken as spread evenly over a bin): exact to within one bin."""
    if stats.bin_width == 0.0 or percentile >= 100.0:
        return stats.amax
    cumulative = np.cumsum(stats.counts)
    target = percentile / 100.0 * float(cumulative[-1])
    k = int(np.searchsorted(cumulative, target, side="left"))
    below = float(cumulative[k - 1]) if k else 0.0
    fraction = (target - below) / float(stats.counts[k])
    return min((k + fraction) * stats.bin_width, stats.amax)


def _entropy_threshold(stats: TensorStats, num_quantized_bins: int) -> float:
    """TensorRT's entropy calibration (Migacz, "8-bit Inference with TensorRT", GTC 2017).

    For each candidate i from num_quantized_bins to n bins (threshold i * w):
    P = bins[0:i] with the count of every bin beyond i folded into bin i-1 (clipped values land
    on the threshold); Q = bins[0:i] (without the outliers) merged into num_quantized_bins groups
    of (nearly) equal width, each group's count spread evenly over the group's bins where P is
    non-empty (empty bins stay empty), smoothed (P>0, Q=0 bins get _KL_EPS_COUNT); both
    normalised; KL(P || Q) = sum P log(P / Q). The threshold minimising KL wins.

    Differences from the talk's pseudo-code, each deliberate: groups split i bins evenly
    ((j * i) // Q boundaries) instead of giving the remainder to the last group; the threshold is
    the upper edge of bin i-1 (i * w), the value P's clipping used; exact zeros are removed from
    bin 0, because a ReLU's zero spike is exact at any scale and would otherwise push the
    threshold down (pytorch-quantization's entropy flattens bin 0 for the same reason).
    """
    hist = stats.counts.astype(np.float64)
    if len(hist):
        hist[0] -= stats.zeros
    n = len(hist)
    total = float(hist.sum())
    if n <= num_quantized_bins or total <= 0.0:
        return stats.amax
    cum = np.concatenate([[0.0], np.cumsum(hist)])
    nonzero_cum = np.concatenate([[0], np.cumsum(hist > 0)])
    group_ids = np.arange(num_quantized_bins + 1)
    best_i, best_kl = n, math.inf
    for i in range(num_quantized_bins, n + 1):
        kept = float(cum[i])
        if kept <= 0.0:
            continue
        p = hist[:i].copy()
        p[-1] += total - kept
        bounds = (group_ids * i) // num_quantized_bins
        sums = cum[bounds[1:]] - cum[bounds[:-1]]
        nonempty = (nonzero_cum[bounds[1:]] - nonzero_cum[bounds[:-1]]).astype(np.float64)
        if p[-1] > 0 and hist[i - 1] == 0:
            nonempty[-1] += 1  # P's last bin holds only outliers: it still takes a share
        share = np.divide(sums, nonempty, out=np.zeros_like(sums), where=nonempty > 0)
        mask = p > 0
        q = np.repeat(share, np.diff(bounds))
        q[~mask] = 0.0
        q[mask & (q == 0.0)] = _KL_EPS_COUNT
        pm, qm = p[mask] / total, q[mask] / q.sum()
        kl = float(np.sum(pm * np.log(pm / qm)))
        if kl < best_kl:
            best_i, best_kl = i, kl
    return stats.amax if best_i >= n else min(best_i * stats.bin_width, stats.amax)


def _clip(stats: TensorStats, threshold: float) -> tuple[float, float]:
    """The observed range clipped to [-threshold, threshold] (a one-signed tensor keeps its
    sign: a ReLU output stays [0, t], so asymmetric readers of calib.cache lose nothing)."""
    lo, hi = max(stats.min, -threshold), min(stats.max, threshold)
    if lo > hi:  # the whole tensor lies beyond the threshold on one side
        lo, hi = (lo, lo) if stats.min >= 0 else (hi, hi)
    return lo, hi


def compute_ranges(
    stats: CalibrationStats,
    method: str,
    *,
    percentile: float = 99.999,
    num_quantized_bins: int = 128,
) -> dict[str, tuple[float, float]]:
    """(min, max) per calibrated tensor by `method`.

    minmax: the observed extremes. percentile: the observed range clipped to the `percentile`-th
    percentile t of |x|. entropy: clipped to the KL-optimal threshold t (see _entropy_threshold)
    with `num_quantized_bins` levels (128: the positive half of symmetric INT8). Tensors that
    never held a value are left out (and logged).
    """
    if method not in CALIBRATION_METHODS:
        raise BackendError(
            f"unknown calibration method {method!r}: expected one of"
            f" {', '.join(CALIBRATION_METHODS)}{closest(str(method), CALIBRATION_METHODS)}"
        )
    if isinstance(percentile, bool) or not (0.0 < float(percentile) <= 100.0):
        raise BackendError(f"percentile is {percentile!r}: expected 0 < percentile <= 100")
    if (
        isinstance(num_quantized_bins, bool)
        or not isinstance(num_quantized_bins, int)
        or num_quantized_bins < 2
    ):
        raise BackendError(
            f"num_quantized_bins is {num_quantized_bins!r}: expected an integer >= 2 (128 for INT8)"
        )
    ranges: dict[str, tuple[float, float]] = {}
    empty: list[str] = []
    for name, tensor in stats.tensors.items():
        if tensor.count == 0:
            empty.append(name)
        elif method == "minmax":
            ranges[name] = (tensor.min, tensor.max)
        elif method == "percentile":
            ranges[name] = _clip(tensor, _percentile_threshold(tensor, float(percentile)))
        else:
            ranges[name] = _clip(tensor, _entropy_threshold(tensor, num_quantized_bins))
    if empty:
        log.warning("no values observed for %d tensors (left uncalibrated): %s", len(empty), empty)
    return ranges


class _HashingFeeds:
    """Passes batches through while hashing them exactly as calibration.hash_calibration_feeds
    does (sha256 over each batch's tensors: name, dtype, shape, bytes, then a newline), so one
    pass both calibrates and identifies the set (tests check the two hashes agree)."""

    def __init__(self, feeds: Iterable[Mapping[str, np.ndarray]]) -> None:
        self._feeds = feeds
        self.digest = hashlib.sha256()

    def __iter__(self) -> Iterator[Mapping[str, np.ndarray]]:
        for feed in self._feeds:
            for name in sorted(feed):
                array = np.ascontiguousarray(feed[name])
                self.digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
                self.digest.update(array.reshape(-1).view(np.uint8).data)
            self.digest.update(b"\n")
            yield feed


def calibrate(
    model: onnx.ModelProto,
    feeds: Iterable[Mapping[str, np.ndarray]],
    method: str,
    *,
    model_hash: str = "",
    calibration_hash: str = "",
    tensors: Sequence[str] | None = None,
    num_bins: int = DEFAULT_NUM_BINS,
    percentile: float = 99.999,
    num_quantized_bins: int = 128,
) -> CalibrationCache:
    """collect_activations + compute_ranges in one pass, as a `CalibrationCache`.

    An empty model_hash is filled with backends.ort.model_hash(model); an empty calibration_hash
    with the sha256 of the feeds (hash_calibration_feeds' value), computed during the same pass.
    Write it with `write_calibration_cache(path, c.method, c.model_hash, c.calibration_hash,
    c.ranges())`.
    """
    if method not in CALIBRATION_METHODS:  # fail before the (long) pass over the set
        compute_ranges(CalibrationStats(num_bins), method)
    hashing = _HashingFeeds(feeds) if not calibration_hash else None
    stats = collect_activations(
        model, hashing if hashing is not None else feeds, tensors, num_bins=num_bins
    )
    ranges = compute_ranges(
        stats, method, percentile=percentile, num_quantized_bins=num_quantized_bins
    )
    if not model_hash:
        from mlperf_trt.backends.ort import model_hash as _model_hash

        model_hash = _model_hash(model)
    if hashing is not None:
        calibration_hash = hashing.digest.hexdigest()
    log.info("calibrated %d tensors on %d batches (%s)", len(ranges), stats.batches, method)
    return CalibrationCache(
        method=method,
        model_hash=model_hash,
        calibration_hash=calibration_hash,
        tensors={n: TensorRange(lo, hi, symmetric_scale(lo, hi)) for n, (lo, hi) in ranges.items()},
    )
