"""The one progress helper: done/total (or elapsed/target), rate and ETA.

On a terminal it redraws one line; otherwise (CI, pipes, log files) it prints a plain line per
update, at most every `interval` seconds, so logs stay readable.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _fmt_time(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:4.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    def __init__(
        self,
        label: str,
        total: float | None = None,
        unit: str = "samples",
        stream: TextIO | None = None,
        interval: float = 2.0,
    ) -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.interval = interval
        self.start = time.monotonic()
        self._last_print = 0.0
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._dirty = False

    def line(self, done: float, total: float | None = None, extra: str = "") -> str:
        total = self.total if total is None else total
        elapsed = time.monotonic() - self.start
        rate = done / elapsed if elapsed > 0 else 0.0
        parts = [self.label]
        if total:
            pct = 100.0 * min(done, total) / total
            parts.append(f"{done:,.0f}/{total:,.0f} {self.unit} ({pct:5.1f}%)")
            if rate > 0 and done < total:
                parts.append(f"ETA {_fmt_time((total - done) / rate)}")
        else:
            parts.append(f"{done:,.0f} {self.unit}")
        parts.append(f"{rate:,.0f} {self.unit}/s")
        parts.append(f"elapsed {_fmt_time(elapsed)}")
        if extra:
            parts.append(extra)
        return "  ".join(parts)

    def update(
        self, done: float, total: float | None = None, extra: str = "", force: bool = False
    ) -> None:
        now = time.monotonic()
        if not force and now - self._last_print < self.interval:
            return
        self._last_print = now
        text = self.line(done, total, extra)
        if self._tty:
            self.stream.write("\r\x1b[2K" + text)
            self._dirty = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self._tty and self._dirty:
            self.stream.write("\n")
            self.stream.flush()
            self._dirty = False
