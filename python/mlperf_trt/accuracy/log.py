"""Reading `mlperf_log_accuracy.json` (SPEC §1.2): the shared part of every metric.

The accuracy scripts keep the first entry of each qsl_idx (duplicates occur in MultiStream
accuracy runs, SPEC §1.2); payloads are upper-case hex of the response bytes in memory order.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlperf_trt.errors import AccuracyError

DTYPES: tuple[str, ...] = ("float32", "float16", "int32", "int64", "uint8")


@dataclass(frozen=True)
class LogEntry:
    qsl_idx: int
    data: bytes


def read_accuracy_log(path: Path) -> list[LogEntry]:
    """Every entry of the log, in file order; AccuracyError naming the file and entry if bad."""
    path = Path(path)
    if not path.is_file():
        raise AccuracyError(
            f"{path}: no such file; pass the mlperf_log_accuracy.json of an accuracy run"
            " (results/<system>/<benchmark>/<Scenario>/accuracy/)"
        )
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AccuracyError(f"{path}: not LoadGen's accuracy log (invalid JSON: {exc})") from None
    if not isinstance(raw, list):
        raise AccuracyError(f"{path}: expected a JSON array of {{seq_id, qsl_idx, data}} entries")
    entries = []
    for n, item in enumerate(raw):
        try:
            entries.append(LogEntry(int(item["qsl_idx"]), bytes.fromhex(item["data"])))
        except (KeyError, TypeError, ValueError) as exc:
            raise AccuracyError(
                f"{path}: entry {n} is malformed ({exc!r}); expected qsl_idx and hex data"
            ) from None
    return entries


def unique_entries(entries: list[LogEntry]) -> Iterator[LogEntry]:
    """The first entry of each qsl_idx, as the reference scripts keep it."""
    seen: set[int] = set()
    for entry in entries:
        if entry.qsl_idx not in seen:
            seen.add(entry.qsl_idx)
            yield entry


def decode_payload(data: bytes, dtype: str) -> np.ndarray:
    if dtype not in DTYPES:
        raise AccuracyError(f"--dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
    item = np.dtype(dtype).itemsize
    usable = len(data) - len(data) % item
    return np.frombuffer(data[:usable], dtype=dtype)
