"""`python -m mlperf_trt run` in child processes, read back from their result folders: the LoadGen
runs of the per-benchmark CPU routines. One LoadGen test per process, as LoadGen takes one
configuration per process (SPEC §3.4); each child writes into a temporary results folder, and
shares ./data and ./engines (the synthetic sets and engine cache) with the user's own runs."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# cli.py's exit codes: 0 VALID (or accuracy PASS), 1 INVALID, 2 an error.
_EXIT_ERROR = 2


@dataclass(frozen=True)
class CliRun:
    """What one child `run` reported."""

    command: tuple[str, ...]
    valid: bool
    reasons: tuple[str, ...]
    samples_per_second: float  # Offline: the result; Server: completed samples/s
    metric: float  # LoadGen's reported metric (Server: scheduled samples/s)
    p50_ms: float
    p99_ms: float
    wall_s: float  # the whole child process: start-up, engine, warm-up and the LoadGen test
    effective: dict[str, Any] = field(default_factory=dict)  # LoadGen's effective_* settings
    settings: dict[str, Any] = field(default_factory=dict)  # resolved_config.json values
    inputs: dict[str, Any] = field(default_factory=dict)  # data set, engine, synthetic ...

    def to_json(self) -> dict[str, Any]:
        return {
            "command": " ".join(self.command),
            "valid": self.valid,
            "reasons": list(self.reasons),
            "samples_per_second": self.samples_per_second,
            "metric": self.metric,
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "wall_s": self.wall_s,
            "effective": self.effective,
            "settings": self.settings,
            "inputs": self.inputs,
        }


def run_cli(
    model: str,
    scenario: str,
    *,
    precision: str,
    duration: str,
    sets: Sequence[str] = (),
    model_size: str = "tiny",
    backend: str = "ort",
    args: Sequence[str] = (),
) -> CliRun:
    """Runs `python -m mlperf_trt run` once (performance mode); `args` go at the end of its
    command line (e.g. `--model-path PATH --data-dir DIR`). Raises SystemExit with the child's
    output when it failed for another reason than an INVALID result."""
    from mlperf_trt.results import summarize

    with tempfile.TemporaryDirectory(prefix=f"bench-{model}-") as tmp:
        cmd = [
            sys.executable,
            "-m",
            "mlperf_trt",
            "run",
            "--model",
            model,
            "--scenario",
            scenario,
            "--backend",
            backend,
            "--model-size",
            model_size,
            "--precision",
            precision,
            "--duration",
            duration,
            "--results-dir",
            tmp,
            "--no-progress",
            *[f"--set={s}" for s in sets],
            *args,
        ]
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - start
        found = sorted(Path(tmp).glob("**/mlperf_log_summary.txt"))
        if done.returncode == _EXIT_ERROR or not found:
            raise SystemExit(
                f"`{' '.join(cmd)}` failed (exit {done.returncode}):\n"
                f"{done.stdout[-3000:]}{done.stderr[-3000:]}"
            )
        folder = found[0].parent
        s = summarize(folder)
        resolved = json.loads((folder / "resolved_config.json").read_text())
    shown = [c if c != tmp else "<tmp>" for c in cmd[1:]]
    return CliRun(
        command=("python", *shown),
        valid=s.valid,
        reasons=tuple(s.invalid_reasons),
        samples_per_second=float(s.samples_per_second or 0.0),
        metric=float(s.metric_value),
        p50_ms=(s.latency_percentiles_ns.get("50.00") or 0.0) / 1e6,
        p99_ms=(s.latency_percentiles_ns.get("99.00") or 0.0) / 1e6,
        wall_s=wall,
        effective=dict(s.effective),
        settings={k: v["value"] for k, v in resolved["settings"].items()},
        inputs=dict(resolved.get("inputs", {})),
    )


def offline_sets(duration_ms: int, expected_qps: float, extra: Sequence[str]) -> list[str]:
    """An Offline run of a fixed minimum duration and query size: LoadGen's one query holds
    1.1 x min_duration x expected_qps samples (SPEC §3.3), so runs given the same values see the
    same load whatever their speed."""
    return [
        f"min_duration_ms={duration_ms}",
        "min_query_count=1",
        f"offline_expected_qps={expected_qps:.6g}",
        *extra,
    ]


# A smoke run's second includes the first, slower batches, and a machine shared with other work
# varies: measured runs get this much more expected QPS than the probe reached, so that the
# fastest of them still meets the min duration (LoadGen calls a shorter Offline run INVALID).
QUERY_HEADROOM = 1.3


def probe_offline(model: str, precision: str, sets: Sequence[str]) -> CliRun:
    """A `smoke` Offline run (about a second, the harness's own measured hints): a quick figure
    of the throughput, used to size the measured runs' query (`sized_qps`)."""
    return run_cli(model, "Offline", precision=precision, duration="smoke", sets=sets)


def sized_qps(probe: CliRun) -> float:
    """The expected QPS for measured Offline runs after `probe` (3 significant digits)."""
    return float(f"{QUERY_HEADROOM * probe.samples_per_second:.3g}")


def median_rate(runs: Sequence[CliRun]) -> float:
    """The median samples/s of `runs`."""
    return statistics.median(r.samples_per_second for r in runs)


def spread(runs: Sequence[CliRun]) -> str:
    """'min-max' of the runs' samples/s."""
    values = [r.samples_per_second for r in runs]
    return f"{min(values):.4g}-{max(values):.4g}"


def paired_ratio(a: Sequence[CliRun], b: Sequence[CliRun]) -> float:
    """The median of a[i]/b[i] samples/s: runs i of a and b ran back to back, so their ratio is
    the one least moved by whatever else the machine ran meanwhile."""
    return statistics.median(
        x.samples_per_second / y.samples_per_second for x, y in zip(a, b, strict=True)
    )


def validity(run: CliRun) -> str:
    return "VALID" if run.valid else "INVALID"


def load_note() -> tuple[float, str]:
    """The 1-minute load average now, and a line saying what it means for the figures."""
    load = os.getloadavg()[0]
    cpus = os.cpu_count() or 1
    return load, (
        f"load average before the runs: {load:.2f} on {cpus} CPUs (other processes running on"
        " this machine share its cores with the measured runs)"
    )
