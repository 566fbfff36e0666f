"""Where a synthetic set may be written: never over a real data set, and never so that an
interrupted write looks like a complete set (the data sets' synthesizers share this)."""

from __future__ import annotations

import contextlib
from pathlib import Path

from mlperf_trt.errors import DataError
from mlperf_trt.results.layout import atomic_write_text

__all__ = ["README", "begin_synthetic", "check_synthetic_target"]

README = "README.txt"  # a synthetic set's README starts with its data set's mark


def check_synthetic_target(raw_dir: Path, mark: str) -> None:
    """Never overwrite a real data set: raw_dir must be new, empty or a synthetic set (its README
    starts with `mark`)."""
    if not raw_dir.exists():
        return
    if not raw_dir.is_dir():
        raise DataError(f"{raw_dir} is not a folder: pass a new or empty folder to synthesize into")
    readme = raw_dir / README
    ours = readme.is_file() and readme.read_text(errors="replace").startswith(mark)
    if not ours and any(raw_dir.iterdir()):
        raise DataError(
            f"{raw_dir} is not empty and holds no synthetic set written by mlperf_trt; it may be"
            " a real data set: synthesize into a new or empty folder instead"
        )


def begin_synthetic(
    raw_dir: Path, *, mark: str, list_file: str | Path, count: int, seed: int, unit: str
) -> None:
    """Check `count` (of `unit`s) and `seed`, check the target, then mark raw_dir as an incomplete
    synthetic set: the list file that makes the folder a data set is removed (the synthesizer
    writes it last), and the README mark goes first so that a set interrupted half-way can be
    synthesized over again."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise DataError(f"cannot synthesize {count!r} {unit}: expected a count >= 1")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise DataError(f"seed {seed!r} is negative or not an integer: expected an integer >= 0")
    check_synthetic_target(raw_dir, mark)
    raw_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        (raw_dir / list_file).unlink()
    atomic_write_text(raw_dir / README, f"{mark} (incomplete: no {list_file} yet).\n")
