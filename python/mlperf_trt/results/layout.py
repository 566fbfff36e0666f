"""Where results live on disk, and how they get there without ever looking half-written.

Layout (DESIGN.md §5, mirroring the submission tree of SPEC.md §5.1):

    results/<system_id>/<benchmark-variant>/<Scenario>/performance/run_1/
    results/<system_id>/<benchmark-variant>/<Scenario>/accuracy/

A run writes into a hidden sibling folder and renames it into place only when the run and its checks
finished (DESIGN.md §4.1 "Failure"), so a reader either sees the previous complete folder, the new
complete folder, or (for an instant) none; a killed process leaves only a hidden `.partial` folder.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import shutil
from pathlib import Path
from types import TracebackType

from mlperf_trt.errors import ConfigError, ResultsError, closest

__all__ = [
    "MODES",
    "SCENARIOS",
    "AtomicResultDir",
    "atomic_write_json",
    "atomic_write_text",
    "result_dir",
]

log = logging.getLogger(__name__)

# SPEC.md §5.1: the scenario folder names of the submission tree (LoadGen's own spelling).
SCENARIOS: tuple[str, ...] = ("SingleStream", "MultiStream", "Server", "Offline")
MODES: tuple[str, ...] = ("performance", "accuracy")

# One path component that is safe on every filesystem and never hidden (SPEC.md §5.1: submission
# file names must not contain spaces or start with ".").
_COMPONENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def _check_component(value: str, what: str) -> str:
    if not isinstance(value, str) or not _COMPONENT.fullmatch(value):
        raise ConfigError(
            f"{what} {value!r} cannot be used as a folder name: expected letters, digits, '_',"
            " '.' or '-', not starting with '.' or '-'; pass a plain name such as 'resnet50' or"
            " '1xH200'"
        )
    return value


def result_dir(
    results_root: Path, system_id: str, workload_name: str, scenario: str, mode: str
) -> Path:
    """Return the folder of one run (DESIGN.md §5).

    mode "performance" -> results_root/system_id/workload_name/Scenario/performance/run_1,
    mode "accuracy" -> results_root/system_id/workload_name/Scenario/accuracy.
    """
    _check_component(system_id, "system id")
    _check_component(workload_name, "benchmark name")
    if scenario not in SCENARIOS:
        raise ConfigError(
            f"unknown scenario {scenario!r}: expected one of {', '.join(SCENARIOS)}"
            f"{closest(scenario, SCENARIOS)}"
        )
    if mode not in MODES:
        raise ConfigError(
            f"unknown result mode {mode!r}: expected 'performance' or 'accuracy'"
            f"{closest(mode, MODES)}"
        )
    base = Path(results_root) / system_id / workload_name / scenario
    # SPEC.md §5.1: performance results sit in performance/run_1, accuracy results in accuracy/.
    return base / "performance" / "run_1" if mode == "performance" else base / "accuracy"


def _hidden_sibling(final: Path, tag: str) -> Path:
    return final.parent / f".{final.name}.{tag}-{os.getpid()}-{secrets.token_hex(4)}"


class AtomicResultDir:
    """Writes a result folder under a temporary sibling name and renames it into place on success.

    Use as a context manager::

        with AtomicResultDir(final) as tmp:
            ...write files into tmp...
        # here `final` holds exactly what was written; on an exception nothing was changed

    or explicitly: ``d = AtomicResultDir(final)``, write into ``d.temp``, then ``d.commit()`` (or
    ``d.discard()``).

    The temporary folder is ``final.parent / f".{final.name}.partial-{pid}-{random}"``. On commit an
    existing `final` is first moved to a hidden trash name, the temporary folder is renamed to
    `final`, then the trash is deleted, so a reader never sees a half-written `final`. A process
    killed mid-run leaves only the hidden ``.partial`` folder, which never looks like a result.
    """

    def __init__(self, final: Path) -> None:
        self.final = Path(final)
        if self.final.name in ("", ".", ".."):
            raise ConfigError(
                f"result folder {str(final)!r} has no usable name; pass the full path of the folder"
                " to create, e.g. results/1xH200/resnet/Offline/accuracy"
            )
        self._temp: Path | None = None
        self._state = "new"  # new -> open -> committed | discarded

    @property
    def temp(self) -> Path:
        """The temporary folder to write into (created, with its parents, on first use)."""
        if self._state in ("committed", "discarded"):
            raise ResultsError(
                f"the temporary folder for {self.final} was already {self._state}; create a new"
                " AtomicResultDir for another run"
            )
        if self._temp is None:
            self.final.parent.mkdir(parents=True, exist_ok=True)
            while True:
                candidate = _hidden_sibling(self.final, "partial")
                try:
                    candidate.mkdir()
                except FileExistsError:
                    continue
                break
            self._temp = candidate
            self._state = "open"
        return self._temp

    def __enter__(self) -> Path:
        return self.temp

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.discard()
            return  # re-raise
        if self._state == "open":
            self.commit()

    def commit(self) -> Path:
        """Move the temporary folder into place as `final`, replacing an older `final`."""
        if self._state == "committed":
            raise ResultsError(f"{self.final} was already committed; commit() runs once per run")
        if self._state == "discarded":
            raise ResultsError(
                f"the temporary folder for {self.final} was discarded; nothing left to commit"
            )
        temp = self.temp
        trash: Path | None = None
        if self.final.exists() or self.final.is_symlink():
            trash = _hidden_sibling(self.final, "trash")
            os.rename(self.final, trash)
        try:
            os.rename(temp, self.final)
        except OSError as err:
            if trash is not None:
                try:
                    os.rename(trash, self.final)  # put the previous result back
                except OSError:
                    log.error("could not restore %s from %s", self.final, trash)
            raise ResultsError(
                f"could not rename {temp} to {self.final}: {err}; the new result is left in {temp}"
            ) from err
        self._state = "committed"
        if trash is not None:
            _remove(trash)
        return self.final

    def discard(self) -> None:
        """Delete the temporary folder; `final` is left as it was. A no-op after commit()."""
        if self._state == "committed":
            return
        if self._temp is not None:
            _remove(self._temp)
        self._state = "discarded"


def _remove(path: Path) -> None:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except FileNotFoundError:
        pass
    except OSError as err:
        log.warning("could not delete %s: %s; remove it by hand", path, err)


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` via a temporary file in the same folder and os.replace.

    The parent folder is created when missing. A reader sees the old file or the new one, never a
    mix; the file is fsync'ed before the rename so a crash cannot leave it empty.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
    # os.open with 0o666 lets the umask decide the mode, as a plain open() would.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def atomic_write_json(path: Path, obj: object) -> None:
    """Write `obj` as JSON (indent=2, sorted keys, trailing newline) with atomic_write_text."""
    try:
        text = json.dumps(obj, indent=2, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ResultsError(
            f"cannot write {path} as JSON: {err}; pass plain dicts, lists, strings, finite numbers,"
            " booleans and None"
        ) from err
    atomic_write_text(path, text + "\n")
