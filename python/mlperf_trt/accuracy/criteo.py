"""AUC of DLRMv2 over Criteo day_23 (SPEC §2.8), as tools/accuracy-dlrm.py scores it.

For each unique qsl_idx (first entry kept, SPEC §1.2) the payload holds float32
(probability, label) per user-item pair of the aggregated sample; all pairs of all samples are
collected in log order and scored with sklearn.metrics.roc_auc_score; accuracy counts
round(probability) == label (numpy rounds half to even, as the reference's float32 .round()).
The printed line is the reference's (SPEC §1.3: the checker reads the line starting `AUC=`):

    AUC=80.310%, accuracy=96.613%, good=..., total=..., queries=...

With `with_labels=False` the payload holds only the probabilities and the labels come from the
data set, as the reference's `--day-23-file` mode.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from mlperf_trt.accuracy.base import Report
from mlperf_trt.accuracy.log import read_accuracy_log, unique_entries
from mlperf_trt.errors import AccuracyError

# tools/accuracy-dlrm.py --dtype choices
DLRM_DTYPES: tuple[str, ...] = ("float32", "int32", "int64")


class Truth(Protocol):
    """What the metric reads from the data set (mlperf_trt.data.criteo.CriteoTruth)."""

    @property
    def offsets(self) -> np.ndarray: ...  # int64 [count + 1]: sample i = pairs [o[i], o[i+1])

    @property
    def labels(self) -> np.ndarray: ...  # labels of the validation pairs


def evaluate(
    log_path: Path, truth: Truth, dtype: str = "float32", *, with_labels: bool = True
) -> Report:
    """Score an accuracy log against the trace (and labels) of the data set it was run on."""
    if dtype not in DLRM_DTYPES:
        raise AccuracyError(f"--dtype {dtype!r}: expected one of {', '.join(DLRM_DTYPES)}")
    offsets = np.asarray(truth.offsets, dtype=np.int64)
    count = len(offsets) - 1
    per_pair = 2 if with_labels else 1
    item = np.dtype(dtype).itemsize
    results: list[np.ndarray] = []
    targets: list[np.ndarray] = []
    queries = 0
    for entry in unique_entries(read_accuracy_log(log_path)):
        i = entry.qsl_idx
        if not 0 <= i < count:
            raise AccuracyError(
                f"{log_path}: qsl_idx {i} is outside the data set's {count} aggregated samples;"
                " score the log against the data set it was run on"
            )
        start, end = int(offsets[i]), int(offsets[i + 1])
        expected = (end - start) * per_pair * item
        if len(entry.data) != expected:
            what = "(probability, label)" if with_labels else "probability"
            raise AccuracyError(
                f"{log_path}: sample {i} has {len(entry.data)} payload bytes, expected {expected}:"
                f" one {dtype} {what} per pair for its {end - start} pairs [{start}, {end}) of"
                " the aggregation trace (SPEC §2.8); was the log made on another data set or"
                " trace?"
            )
        values = np.frombuffer(entry.data, dtype=dtype).reshape(end - start, per_pair)
        results.append(values[:, 0])
        targets.append(values[:, 1] if with_labels else np.asarray(truth.labels[start:end]))
        queries += 1
    if queries == 0:
        raise AccuracyError(f"{log_path}: the log holds no entries; was it a performance run?")
    scores = np.concatenate(results)
    labels = np.concatenate(targets)
    good = int(np.count_nonzero(np.round(scores) == labels))
    total = len(scores)
    try:
        from sklearn.metrics import roc_auc_score

        auc = float(roc_auc_score(labels, scores))
    except ValueError as err:  # one class only, or labels other than 0/1
        raise AccuracyError(f"{log_path}: cannot compute the AUC ({err})") from err
    auc_percent = 100.0 * auc
    accuracy = 100.0 * good / total
    line = (
        f"AUC={auc_percent:.3f}%, accuracy={accuracy:.3f}%, good={good}, total={total},"
        f" queries={queries}"
    )
    return Report(
        line,
        {"AUC": auc_percent},
        {"accuracy": accuracy, "good": good, "total": total, "queries": queries},
    )
