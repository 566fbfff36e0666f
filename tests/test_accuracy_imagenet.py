"""ImageNet top-1 scoring on hand-made accuracy logs (SPEC §1.2, §2.1)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from mlperf_trt.accuracy import imagenet
from mlperf_trt.benchmarks import resolve
from mlperf_trt.errors import AccuracyError


def _log(path: Path, entries: list[tuple[int, bytes]]) -> Path:
    items = [
        {"seq_id": n, "qsl_idx": idx, "data": data.hex().upper()}
        for n, (idx, data) in enumerate(entries)
    ]
    # LoadGen's own layout: "[", entries joined by ",\n", "\n]\n" (SPEC §1.2)
    path.write_text("[\n" + ",\n".join(json.dumps(i) for i in items) + "\n]\n")
    return path


def f32(v: float) -> bytes:
    return struct.pack("<f", v)


def test_top1_counts_unique_samples_first_entry_wins(tmp_path: Path) -> None:
    labels = np.array([3, 7, 0, 999, 5])
    log = _log(
        tmp_path / "mlperf_log_accuracy.json",
        [
            (0, f32(3)),  # right
            (1, f32(6)),  # wrong
            (1, f32(7)),  # duplicate of 1: ignored, the first entry counts
            (2, b""),  # empty payload: wrong
            (3, f32(999) + f32(1)),  # right (element 0)
        ],
    )
    report = imagenet.evaluate(log, labels)
    assert report.line == "accuracy=50.000%, good=2, total=4"
    assert report.values == {"acc": 50.0} and report.details["empty"] == 1
    target = resolve("resnet50").accuracy_targets("v5.0")
    ok, lines = report.verdict(target)
    assert not ok and "FAIL" in lines[0] and "75.6954" in lines[0]


def test_int64_payloads_and_errors(tmp_path: Path) -> None:
    labels = np.array([1, 2])
    log = _log(tmp_path / "a.json", [(0, struct.pack("<q", 1)), (1, struct.pack("<q", 2))])
    assert (
        imagenet.evaluate(log, labels, dtype="int64").line == "accuracy=100.000%, good=2, total=2"
    )
    with pytest.raises(AccuracyError, match="outside"):
        imagenet.evaluate(_log(tmp_path / "b.json", [(5, f32(1))]), labels)
    with pytest.raises(AccuracyError, match="no such file"):
        imagenet.evaluate(tmp_path / "missing.json", labels)
    (tmp_path / "bad.json").write_text("[{]")
    with pytest.raises(AccuracyError, match="invalid JSON"):
        imagenet.evaluate(tmp_path / "bad.json", labels)
    with pytest.raises(AccuracyError, match="no entries"):
        imagenet.evaluate(_log(tmp_path / "c.json", []), labels)
