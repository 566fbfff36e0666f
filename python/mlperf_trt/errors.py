"""Typed errors of mlperf_trt: one base class, one subclass per domain.

Every message says what was wrong, what was expected and how to fix it. The C++ core raises the
same classes: its error macro family (csrc/common/check.h) carries a domain code that the bindings
map onto these types.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class MlperfTrtError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(MlperfTrtError, ValueError):
    """A setting, flag, config file or `--set` value is unknown or invalid."""


class BenchmarkError(MlperfTrtError, KeyError):
    """An unknown benchmark, variant, round or scenario."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DataError(MlperfTrtError):
    """A data set file or folder is missing or malformed."""


class ModelError(MlperfTrtError):
    """A model file does not match its model card, or cannot be built."""


class BackendError(MlperfTrtError):
    """An inference backend is unavailable or failed to build or run an engine."""


class HarnessError(MlperfTrtError, RuntimeError):
    """The harness core (scheduler, sample store, workers) failed or was misused."""


class LoadGenError(MlperfTrtError, RuntimeError):
    """LoadGen rejected a setting, logged an error, or a run could not be started."""


class ResultsError(MlperfTrtError):
    """A result folder or LoadGen log is missing, incomplete or unreadable."""


class AccuracyError(MlperfTrtError):
    """An accuracy log cannot be scored."""


class SubmissionError(MlperfTrtError):
    """A submission tree or compliance test cannot be produced as asked."""


class KernelError(MlperfTrtError, RuntimeError):
    """A CPU or CUDA kernel was called with bad arguments or failed."""


def closest(name: str, choices: Iterable[str]) -> str:
    """Return ' (did you mean X?)' for the closest valid name, or '' when nothing is close."""
    match = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" (did you mean {match[0]!r}?)" if match else ""
