"""The thin LoadGen glue over the C++ core (DESIGN §4.1).

LoadGen's issue callback is the C++ `Scheduler.issue` itself (a FastSUT): no Python bytecode runs
per sample. The QSL callbacks load samples into the C++ `SampleStore`. Workers are C++ threads;
completion goes to LoadGen once per batch from C++.

LoadGen accepts one user.conf per process (a second `FromConfig` logs "Multiple conf files are
used", which fails the checker, SPEC §3.4), so this module runs at most one test per process.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlperf_trt import _C
from mlperf_trt.errors import HarnessError, LoadGenError
from mlperf_trt.progress import Progress

log = logging.getLogger(__name__)

SampleSource = Callable[[int], Sequence[np.ndarray]]

_runs_in_process = 0

SCENARIO_NAMES = ("SingleStream", "MultiStream", "Server", "Offline")
MODES = {"performance": "PerformanceOnly", "accuracy": "AccuracyOnly"}


@dataclass(frozen=True)
class CoreSpec:
    """What the C++ core needs for one run."""

    max_batch: int
    timeout_us: int
    executors: Sequence[object]  # Python executors, one per worker
    groups: Sequence[int]  # worker group of each executor
    input_names: Sequence[str]  # inputs fed from the sample store, in store order
    output_names: Sequence[str]  # outputs the post-processor reads, in order
    postprocessor: _C.harness.Postprocessor
    tensors: Sequence[_C.harness.TensorSpec] = ()  # one per input, in input_names order
    sample_source: SampleSource | None = None
    # Samples of different sizes (DESIGN §4.1): per-sample costs by QSL index (bert: sequence
    # length; dlrm-v2: user-item pairs), the cost buckets a batch never mixes, and a cost budget.
    costs: np.ndarray | None = None
    bucket_bounds: Sequence[int] = ()
    max_cost: int = 0


@dataclass(frozen=True)
class LoadGenSpec:
    model_key: str
    scenario: str
    mode: str  # "performance" | "accuracy"
    user_conf: Path
    outdir: Path
    total_count: int
    performance_count: int
    enable_trace: bool = False
    audit_config: Path | None = None  # a compliance test's audit.config; None = none may apply


@dataclass(frozen=True)
class CoreStats:
    completed_samples: int
    batches: int
    batches_per_group: tuple[int, ...]
    issued_samples: int
    wall_s: float


def check_no_stray_audit_config(cwd: Path | None = None) -> None:
    """Refuses to start where LoadGen would read an audit.config (SPEC §3.4, §7 pitfall 2)."""
    path = (cwd or Path.cwd()) / "audit.config"
    if path.exists():
        raise LoadGenError(
            f"{path} exists: LoadGen would read it and silently turn this run into a compliance"
            " test. Remove it (or run `python -m mlperf_trt audit` for compliance tests)."
        )


def _loadgen() -> Any:
    try:
        import mlperf_loadgen
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise LoadGenError(
            "mlperf_loadgen is not importable; install it with `pip install mlcommons-loadgen`"
        ) from exc
    return mlperf_loadgen


def loadgen_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("mlcommons-loadgen")
    except metadata.PackageNotFoundError:  # pragma: no cover
        return "unknown"


@contextlib.contextmanager
def _default_sigint() -> Iterator[None]:
    """While LoadGen runs (GIL released in C++), Ctrl-C ends the process at once.

    Python would only see the signal after StartTest returns; the result folder is still a
    hidden .partial one then, so nothing that looks like a result is left behind.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def _no_gc_pauses() -> Iterator[None]:
    """No cyclic-GC pass during the timed run.

    Building a model and a data set leaves millions of objects on the heap; a full collection
    then stops every thread that needs the GIL for tens of milliseconds, which lands on Server
    and SingleStream latencies (seen as a p99 outlier of ~45 ms on a 2 ms model). Per-batch
    objects are freed by reference counting; cycles made during the run wait until it ends.
    """
    gc.collect()
    gc.freeze()
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
        gc.unfreeze()


def run_test(
    core: CoreSpec,
    spec: LoadGenSpec,
    *,
    progress: Progress | None = None,
    expected_s: float | None = None,
    failure_grace_s: float = 20.0,
    on_abort: Callable[[], None] | None = None,
) -> CoreStats:
    """Runs one LoadGen test through the C++ core; raises the first worker error, if any."""
    global _runs_in_process
    if _runs_in_process:
        raise LoadGenError(
            "LoadGen accepts one user.conf per process (SPEC §3.4): run each test in a fresh"
            " process, e.g. one `python -m mlperf_trt run` per test"
        )
    if spec.scenario not in SCENARIO_NAMES:
        raise LoadGenError(f"unknown scenario {spec.scenario!r}")
    if spec.mode not in MODES:
        raise LoadGenError(
            f"unknown LoadGen mode {spec.mode!r}; expected one of {', '.join(MODES)}"
        )
    if spec.audit_config is None:
        check_no_stray_audit_config()
    lg = _loadgen()
    h = _C.harness
    settings = lg.TestSettings()
    settings.scenario = getattr(lg.TestScenario, spec.scenario)
    settings.mode = getattr(lg.TestMode, MODES[spec.mode])
    _runs_in_process += 1
    status = settings.FromConfig(str(spec.user_conf), spec.model_key, spec.scenario)
    if status != 0:
        raise LoadGenError(
            f"LoadGen rejected {spec.user_conf} (FromConfig returned {status}); check its lines"
            " against SPEC §3.4"
        )
    log_settings = lg.LogSettings()
    log_settings.log_output.outdir = str(spec.outdir)
    log_settings.log_output.copy_summary_to_stdout = False
    log_settings.enable_trace = bool(spec.enable_trace)
    # For a normal run, point LoadGen at an audit file that cannot exist, so nothing in the CWD
    # can change the run; compliance runs pass their own.
    audit = spec.audit_config or (spec.outdir / "no-audit.config")

    store = h.SampleStore(list(core.tensors), spec.total_count) if core.tensors else None
    costs = None if core.costs is None else np.ascontiguousarray(core.costs, dtype=np.uint32)
    scheduler = h.Scheduler(
        h.BatchPolicy(core.max_batch, core.timeout_us, core.max_cost, list(core.bucket_bounds)),
        costs,
    )
    executors = [
        h.PyExecutor(e, list(core.input_names), list(core.output_names)) for e in core.executors
    ]
    sink = h.LoadGenSink(lg)
    pool = h.WorkerPool(scheduler, store, executors, list(core.groups), core.postprocessor, sink)

    def load(indices: list[int]) -> None:
        if store is None or core.sample_source is None:
            return
        store.reserve(len(indices) + store.loaded_count)
        for index in indices:
            store.load(int(index), list(core.sample_source(int(index))))

    def unload(indices: list[int]) -> None:
        if store is not None:
            store.unload(list(indices))

    sut = lg.ConstructFastSUT(scheduler.issue, scheduler.flush)
    qsl = lg.ConstructQSL(spec.total_count, spec.performance_count, load, unload)
    done = threading.Event()
    start = time.monotonic()

    def watch() -> None:
        failed_at: float | None = None
        while not done.wait(progress.interval / 2 if progress else 0.5):
            if progress is not None:
                issued = scheduler.pushed
                completed = pool.completed_samples
                if spec.scenario == "Offline" or spec.mode == "accuracy":
                    progress.update(completed, issued or None)
                elif expected_s:
                    elapsed = time.monotonic() - start
                    progress.update(completed, extra=f"{elapsed:.0f}/{expected_s:.0f}s target")
                else:
                    progress.update(completed)
            if pool.failed:
                if failed_at is None:
                    failed_at = time.monotonic()
                    log.error("a worker failed; completing the rest empty so LoadGen can return")
                elif time.monotonic() - failed_at > failure_grace_s:
                    # LoadGen's Python API cannot abort a test (SPEC §3.2): end the process.
                    try:
                        pool.rethrow()
                    except Exception as exc:  # noqa: BLE001 - reported, then the process ends
                        log.error("worker error: %s: %s", type(exc).__name__, exc)
                    log.error(
                        "LoadGen did not return within failure_grace_s=%.0f s of the"
                        " error; exiting without a result",
                        failure_grace_s,
                    )
                    if on_abort is not None:
                        on_abort()
                    os._exit(3)

    watcher = threading.Thread(target=watch, name="mlperf-trt-progress", daemon=True)
    pool.start()
    watcher.start()
    try:
        with _default_sigint(), _no_gc_pauses():
            lg.StartTestWithLogSettings(sut, qsl, settings, log_settings, str(audit))
    finally:
        done.set()
        watcher.join()
        pool.stop()
        lg.DestroyQSL(qsl)
        lg.DestroyFastSUT(sut)
        if progress is not None:
            progress.update(pool.completed_samples, scheduler.pushed or None, force=True)
            progress.close()
    pool.rethrow()
    if scheduler.pushed != pool.completed_samples:
        raise HarnessError(
            f"LoadGen issued {scheduler.pushed} samples but {pool.completed_samples} were completed"
        )
    return CoreStats(
        completed_samples=int(pool.completed_samples),
        batches=int(pool.batches),
        batches_per_group=tuple(int(b) for b in pool.batches_per_group),
        issued_samples=int(scheduler.pushed),
        wall_s=time.monotonic() - start,
    )
