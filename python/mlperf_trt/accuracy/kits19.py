"""Mean DICE of 3D-UNet over KiTS19 (SPEC §2.3), as accuracy_kits.py scores it.

The reference requires exactly one log entry per case of the data set (no duplicates, no
missing cases), reshapes each payload to the preprocessed (D, H, W) of its case, and computes per
case DICE on one-hot channels with the background dropped: kidney = (label == 1), tumour =
(label == 2), each (2 |P & T| + 1e-6) / (|P| + |T| + 1e-6) in float64; composite = the mean of the
two. The summary row is the mean over cases of each column after NaN -> 0 (`df.fillna(0).mean()`:
a NaN marks a crashed case), printed as `Accuracy: mean = {:.5f}, kidney = {:.4f}, tumor =
{:.4f}` (SPEC §1.3: the checker parses `Accuracy: mean = `). The DICE value is a fraction, as the
targets in benchmarks/unet3d.py are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from mlperf_trt.accuracy.base import Report
from mlperf_trt.accuracy.log import decode_payload, read_accuracy_log
from mlperf_trt.errors import AccuracyError

__all__ = ["LabelVolumes", "VolumeTruth", "case_dice", "evaluate", "report_line", "summarize"]

SMOOTH_NR = SMOOTH_DR = 1e-6  # SPEC §2.3
NUM_CLASSES = 3


class VolumeTruth(Protocol):
    """What the metric reads: data.kits19.PreparedVolumes, or LabelVolumes for hand-made sets."""

    count: int

    def case(self, i: int) -> str: ...

    def label(self, i: int) -> np.ndarray: ...


@dataclass(frozen=True)
class LabelVolumes:
    """Ground-truth label volumes (uint8 [D,H,W]) with their case names, in sample order."""

    cases: tuple[str, ...]
    labels: tuple[np.ndarray, ...]

    @property
    def count(self) -> int:
        return len(self.cases)

    def case(self, i: int) -> str:
        return self.cases[i]

    def label(self, i: int) -> np.ndarray:
        return self.labels[i]


def case_dice(prediction: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(kidney, tumour) DICE of one case (SPEC §2.3); labels 0..2 of one shape."""
    if prediction.shape != truth.shape:
        raise AccuracyError(
            f"prediction {prediction.shape} and truth {truth.shape} differ in shape"
        )
    out = []
    for cls in (1, 2):
        p, t = prediction == cls, truth == cls
        # Counts equal the reference's float64 sums of one-hot products (exact below 2**53).
        inter = float(np.count_nonzero(p & t))
        total = float(np.count_nonzero(p)) + float(np.count_nonzero(t))
        out.append((2.0 * inter + SMOOTH_NR) / (total + SMOOTH_DR))
    return out[0], out[1]


def summarize(kidney: Sequence[float], tumor: Sequence[float]) -> tuple[float, float, float]:
    """(mean composite, mean kidney, mean tumour) over cases, NaN counted as 0 (the reference)."""
    k = np.asarray(kidney, np.float64)
    t = np.asarray(tumor, np.float64)
    if k.shape != t.shape or k.ndim != 1 or k.size == 0:
        raise AccuracyError(
            f"expected one kidney and one tumour DICE per case, got {k.shape}, {t.shape}"
        )
    composite = np.mean(np.stack([k, t]), axis=0)  # NaN when either is NaN, as np.mean(arr)
    return (
        float(np.nan_to_num(composite, nan=0.0).mean()),
        float(np.nan_to_num(k, nan=0.0).mean()),
        float(np.nan_to_num(t, nan=0.0).mean()),
    )


def report_line(mean: float, kidney: float, tumor: float) -> str:
    """The line accuracy_kits.py prints (SPEC §1.3)."""
    return f"Accuracy: mean = {mean:.5f}, kidney = {kidney:.4f}, tumor = {tumor:.4f}"


def evaluate(log_path: Path, truth: VolumeTruth, dtype: str = "uint8") -> Report:
    """Score `log_path` against the prepared labels of every sample of the data set."""
    entries = read_accuracy_log(log_path)
    count = truth.count
    if len(entries) != count:
        raise AccuracyError(
            f"{log_path}: {len(entries)} entries for a data set of {count} cases; the KiTS19"
            " metric needs exactly one prediction per case (SPEC §1.2): score the log of a"
            " complete accuracy run on this data set"
        )
    by_index: dict[int, bytes] = {}
    for entry in entries:
        if not 0 <= entry.qsl_idx < count:
            raise AccuracyError(
                f"{log_path}: qsl_idx {entry.qsl_idx} is outside the data set's {count} cases;"
                " score the log against the data set it was run on"
            )
        if entry.qsl_idx in by_index:
            raise AccuracyError(
                f"{log_path}: qsl_idx {entry.qsl_idx} appears twice; the KiTS19 metric needs"
                " exactly one prediction per case"
            )
        by_index[entry.qsl_idx] = entry.data
    kidney: list[float] = []
    tumor: list[float] = []
    per_case: dict[str, tuple[float, float]] = {}
    for i in range(count):
        target = np.asarray(truth.label(i))
        values = decode_payload(by_index[i], dtype)
        if values.size != target.size:
            raise AccuracyError(
                f"{log_path}: qsl_idx {i} ({truth.case(i)}) has {values.size} {dtype} values,"
                f" expected {target.size} = the preprocessed shape {tuple(target.shape)}; pass"
                " the payload dtype the run used (--dtype)"
            )
        prediction = values.reshape(target.shape).astype(np.uint8)  # as the reference's NIfTI
        if prediction.size and int(prediction.max()) >= NUM_CLASSES:
            raise AccuracyError(
                f"{log_path}: qsl_idx {i} ({truth.case(i)}) holds label {int(prediction.max())}:"
                " expected 0 (background), 1 (kidney) or 2 (tumour)"
            )
        k, t = case_dice(prediction, target)
        kidney.append(k)
        tumor.append(t)
        per_case[truth.case(i)] = (k, t)
    mean, mean_kidney, mean_tumor = summarize(kidney, tumor)
    return Report(
        report_line(mean, mean_kidney, mean_tumor),
        {"DICE": mean},
        {"kidney": mean_kidney, "tumor": mean_tumor, "cases": count, "per_case": per_case},
    )
