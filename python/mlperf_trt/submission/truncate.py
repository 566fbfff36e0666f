"""Accuracy-log truncation, as tools/submission/truncate_accuracy_log.py does it (SPEC §1.3, §6).

For each accuracy folder (results/.../accuracy, compliance/.../TEST01/accuracy) the official tool:

1. skips the folder when accuracy.txt already has a ``hash=`` line *and* the log is < 10 KB;
2. otherwise appends ``hash=<sha256 of the whole mlperf_log_accuracy.json>`` to accuracy.txt
   (creating accuracy.txt in a compliance folder, which has none by default);
3. truncates the log to its first 4096 bytes + ``\\n\\n...\\n\\n`` + its last 4096 bytes, except
   when the log is smaller than 4096 bytes, which is left as it is.

The log is LoadGen's ASCII JSON, so the tool's text-mode characters are these bytes. One deviation:
when accuracy.txt does not end with a newline, one is added before the hash line, so that the
checker's ``^hash=`` still finds it (the official tool would glue it to the last line).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from mlperf_trt.errors import SubmissionError

__all__ = [
    "MAX_ACCURACY_LOG_SIZE",
    "VIEWABLE_SIZE",
    "TruncateResult",
    "file_sha256",
    "read_hash_line",
    "truncate_accuracy_dir",
    "truncated_bytes",
]

MAX_ACCURACY_LOG_SIZE = 10 * 1024  # SPEC §6: the checker wants the accuracy JSON under 10 KB
VIEWABLE_SIZE = 4096  # SPEC §1.3: 4 KB kept from the start and from the end
_ELLIPSIS = b"\n\n...\n\n"
_HASH = re.compile(r"^hash=([\w\d]+)$")
ACCURACY_LOG = "mlperf_log_accuracy.json"
ACCURACY_TXT = "accuracy.txt"


@dataclass(frozen=True)
class TruncateResult:
    folder: Path
    sha256: str  # the hash now in accuracy.txt
    original_size: int
    truncated: bool  # the log was rewritten (False: already done, or under 4096 bytes)
    skipped: bool  # the folder already had a hash and a log under 10 KB: nothing changed


def file_sha256(path: Path) -> str:
    """sha256 hex digest of the file, read in blocks (accuracy logs reach tens of GB, SPEC §7)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_hash_line(accuracy_txt: Path) -> str | None:
    """The value of the first ``hash=`` line of accuracy.txt, or None."""
    try:
        text = Path(accuracy_txt).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    for line in text.splitlines():
        match = _HASH.match(line)
        if match:
            return match.group(1)
    return None


def truncated_bytes(data: bytes) -> bytes:
    """What the tool leaves of a log with these bytes (unchanged under 4096 bytes)."""
    if len(data) < VIEWABLE_SIZE:
        return data
    return data[:VIEWABLE_SIZE] + _ELLIPSIS + data[len(data) - VIEWABLE_SIZE :]


def _truncate_file(path: Path, size: int) -> bool:
    if size < VIEWABLE_SIZE:
        return False
    with open(path, "rb") as src:
        head = src.read(VIEWABLE_SIZE)
        src.seek(size - VIEWABLE_SIZE)
        tail = src.read(VIEWABLE_SIZE)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(head + _ELLIPSIS + tail)
    os.replace(tmp, path)
    return True


def truncate_accuracy_dir(folder: Path, *, compliance: bool = False) -> TruncateResult:
    """Hash and truncate `folder`/mlperf_log_accuracy.json in place, as the official tool does.

    `compliance` marks a TEST01/accuracy folder, where a missing accuracy.txt is created; in a
    results folder a missing accuracy.txt is an error (the tool skips such a folder with
    "generate to continue"; here it raises so the caller can say which one).
    """
    folder = Path(folder)
    log, txt = folder / ACCURACY_LOG, folder / ACCURACY_TXT
    if not log.is_file():
        raise SubmissionError(f"{log}: no accuracy log to truncate (SPEC §1.3)")
    if not txt.is_file() and not compliance:
        raise SubmissionError(
            f"{txt}: missing; it holds the accuracy script's output and gets the hash= line"
            " (SPEC §1.3); rerun the accuracy run, or `python -m mlperf_trt accuracy --log ...`"
        )
    size = log.stat().st_size
    existing = read_hash_line(txt)
    if existing is not None and size < MAX_ACCURACY_LOG_SIZE:
        return TruncateResult(folder, existing, size, truncated=False, skipped=True)
    digest = file_sha256(log)
    text = txt.read_bytes() if txt.is_file() else b""
    prefix = b"\n" if text and not text.endswith(b"\n") else b""
    with open(txt, "ab") as handle:
        handle.write(prefix + f"hash={digest}\n".encode())
    truncated = _truncate_file(log, size)
    return TruncateResult(folder, digest, size, truncated=truncated, skipped=False)
