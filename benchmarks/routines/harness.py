"""`harness`: the harness (C++ core, null backend) against a bare LoadGen run with an empty
Python SUT on the same settings, each LoadGen test in its own child process (SPEC §3.4)."""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from run import DRIVER, print_table

# The driver fills the shared options this routine's user left out with these.
DEFAULTS = {
    "duration_ms": 5000,
    "offline_qps": 2_000_000.0,
    "server_qps": 40_000.0,
    "repeat": 3,
}


def _child_bare(scenario: str, settings: dict[str, float], model: str, outdir: Path) -> None:
    """A bare LoadGen run: the issue callback completes every sample at once, in Python."""
    import array

    import mlperf_loadgen as lg

    from mlperf_trt.benchmarks import resolve
    from mlperf_trt.results import render_user_conf

    workload = resolve(model)
    rules = workload.rules()
    key = workload.benchmark.loadgen_key
    payload = array.array("f", [0.0])
    ptr, _ = payload.buffer_info()

    def issue(ids: list[int], indices: list[int]) -> None:
        lg.QuerySamplesComplete([lg.QuerySampleResponse(i, ptr, 4) for i in ids])

    conf = outdir / "user.conf"
    conf.write_text(render_user_conf(key, scenario, settings))
    ts = lg.TestSettings()
    ts.scenario = getattr(lg.TestScenario, scenario)
    ts.mode = lg.TestMode.PerformanceOnly
    if ts.FromConfig(str(conf), key, scenario) != 0:
        raise SystemExit(f"FromConfig rejected {conf}")
    log_settings = lg.LogSettings()
    log_settings.log_output.outdir = str(outdir)
    log_settings.enable_trace = False
    sut = lg.ConstructFastSUT(issue, lambda: None)
    qsl = lg.ConstructQSL(
        rules.dataset_size, rules.performance_sample_count, lambda s: None, lambda s: None
    )
    lg.StartTestWithLogSettings(sut, qsl, ts, log_settings, str(outdir / "no-audit.config"))
    lg.DestroyQSL(qsl)
    lg.DestroyFastSUT(sut)


def _child_harness(
    scenario: str, settings: dict[str, float], model: str, outdir: Path, extra: list[str]
) -> None:
    from mlperf_trt.harness.runner import RunRequest, run

    names = {
        "target_qps": "offline_expected_qps" if scenario == "Offline" else "server_target_qps",
        "min_duration": "min_duration_ms",
        "min_query_count": "min_query_count",
    }
    overrides = tuple(f"{names[k]}={v}" for k, v in settings.items()) + tuple(extra)
    outcome = run(
        RunRequest(
            model=model,
            scenario=scenario,
            backend="null",
            results_dir=outdir / "results",
            overrides=overrides,
            show_progress=False,
        )
    )
    for name in ("mlperf_log_detail.txt", "mlperf_log_summary.txt"):
        (outdir / name).write_bytes((outcome.result_dir / name).read_bytes())


def _read_result(outdir: Path) -> dict[str, Any]:
    from mlperf_trt.results import summarize

    s = summarize(outdir)
    return {
        "valid": s.valid,
        "reasons": list(s.invalid_reasons),
        "samples_per_second": s.samples_per_second,
        "p99_ms": (s.latency_percentiles_ns.get("99.00") or 0.0) / 1e6,
        "errors": len(s.errors),
    }


def _spawn(
    kind: str, scenario: str, settings: dict[str, float], model: str, extra: list[str]
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"bench-{kind}-") as tmp:
        cmd = [
            sys.executable,
            str(DRIVER),
            "harness",
            "--child",
            kind,
            "--scenario",
            scenario,
            "--model",
            model,
            "--child-settings",
            json.dumps(settings),
            "--child-out",
            tmp,
            *[f"--harness-set={e}" for e in extra],
        ]
        subprocess.run(cmd, check=True)
        return _read_result(Path(tmp))


def routine_harness(args: argparse.Namespace) -> dict[str, Any]:
    if args.child:
        settings = json.loads(args.child_settings)
        out = Path(args.child_out)
        if args.child == "bare":
            _child_bare(args.scenario, settings, args.model, out)
        else:
            _child_harness(args.scenario, settings, args.model, out, args.harness_set)
        return {}
    report: dict[str, Any] = {"model": args.model, "repeats": args.repeat}
    offline = {
        "target_qps": args.offline_qps,
        "min_duration": args.duration_ms,
        "min_query_count": 1,
    }
    server = {"target_qps": args.server_qps, "min_duration": args.duration_ms}
    for scenario, settings in (("Offline", offline), ("Server", server)):
        rows, runs = [], []
        for rep in range(args.repeat):
            bare = _spawn("bare", scenario, settings, args.model, [])
            harness = _spawn("harness", scenario, settings, args.model, args.harness_set)
            ratio = (harness["samples_per_second"] or 0) / (bare["samples_per_second"] or 1)
            runs.append({"bare": bare, "harness": harness, "ratio": ratio})
            rows.append(
                [
                    rep + 1,
                    bare["samples_per_second"],
                    harness["samples_per_second"],
                    ratio,
                    bare["p99_ms"],
                    harness["p99_ms"],
                    "VALID" if bare["valid"] else "INVALID",
                    "VALID" if harness["valid"] else "INVALID",
                ]
            )
        median = statistics.median(r["ratio"] for r in runs)
        print_table(
            f"{scenario} ({args.model}, target {settings['target_qps']:,.0f}/s, "
            f"{args.duration_ms} ms): harness (null backend) vs bare LoadGen",
            [
                "rep",
                "bare samples/s",
                "harness samples/s",
                "ratio",
                "bare p99 ms",
                "harness p99 ms",
                "bare",
                "harness",
            ],
            rows,
        )
        print(f"median ratio harness/bare: {median:.3f}")
        report[scenario] = {"settings": settings, "runs": runs, "median_ratio": median}
    return report
