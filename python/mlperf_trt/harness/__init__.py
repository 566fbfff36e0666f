"""The harness: the thin LoadGen glue over the C++ core, and the run orchestration."""

from __future__ import annotations

from mlperf_trt.harness.loadgen import CoreSpec, CoreStats, LoadGenSpec, run_test
from mlperf_trt.harness.runner import RUN_MODES, RunOutcome, RunRequest, plan_run, run

__all__ = [
    "RUN_MODES",
    "CoreSpec",
    "CoreStats",
    "LoadGenSpec",
    "RunOutcome",
    "RunRequest",
    "plan_run",
    "run",
    "run_test",
]
