"""Top-1 accuracy of ResNet50 over ImageNet (SPEC §2.1), as tools/accuracy-imagenet.py scores it:
for each unique qsl_idx, element 0 of the payload (decoded with --dtype) against val_map.txt."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mlperf_trt.accuracy.base import Report
from mlperf_trt.accuracy.log import decode_payload, read_accuracy_log, unique_entries
from mlperf_trt.errors import AccuracyError


def evaluate(log_path: Path, labels: np.ndarray, dtype: str = "float32") -> Report:
    """`labels[i]` is the ground-truth class (0..999) of sample i, in val_map.txt order."""
    good = total = 0
    empty = 0
    for entry in unique_entries(read_accuracy_log(log_path)):
        if not 0 <= entry.qsl_idx < len(labels):
            raise AccuracyError(
                f"{log_path}: qsl_idx {entry.qsl_idx} is outside the data set's {len(labels)}"
                " samples; score the log against the data set it was run on"
            )
        values = decode_payload(entry.data, dtype)
        total += 1
        if values.size == 0:  # an empty response predicts nothing: counted as wrong
            empty += 1
            continue
        if int(values[0]) == int(labels[entry.qsl_idx]):
            good += 1
    if total == 0:
        raise AccuracyError(f"{log_path}: the log holds no entries; was it a performance run?")
    accuracy = 100.0 * good / total
    line = f"accuracy={accuracy:.3f}%, good={good}, total={total}"
    return Report(line, {"acc": accuracy}, {"good": good, "total": total, "empty": empty})
