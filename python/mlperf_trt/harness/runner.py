"""One benchmark run: workload -> config -> engine -> harness -> LoadGen -> results (DESIGN §2).

`run()` is what `python -m mlperf_trt run` calls; a library user can call it the same way. It
runs exactly one LoadGen test (one mode) in this process; `--mode submission` is the CLI running
an accuracy test and then a performance test, each in a fresh process (SPEC §3.4).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from mlperf_trt import backends
from mlperf_trt.accuracy.base import Report, write_accuracy_txt
from mlperf_trt.benchmarks import (
    DEFAULT_ROUND,
    Workload,
    check_round,
    check_scenario,
    resolve,
)
from mlperf_trt.config import Context, ResolvedConfig, resolve_config
from mlperf_trt.errors import ConfigError, DataError, ModelError
from mlperf_trt.harness.loadgen import (
    CoreStats,
    LoadGenSpec,
    check_no_stray_audit_config,
    loadgen_version,
    run_test,
)
from mlperf_trt.harness.pipelines import has_pipeline, pipeline_for
from mlperf_trt.harness.setup import Setup, engine_setup, null_setup
from mlperf_trt.progress import Progress
from mlperf_trt.results import (
    AtomicResultDir,
    RunSummary,
    atomic_write_json,
    atomic_write_text,
    render_user_conf,
    result_dir,
    submittable_problems,
    summarize,
)
from mlperf_trt.system import SystemInfo, detect

log = logging.getLogger(__name__)

RUN_MODES: tuple[str, ...] = ("performance", "accuracy", "submission")


@dataclass(frozen=True)
class RunRequest:
    model: str
    scenario: str
    mode: str = "performance"
    duration: str = "full"
    backend: str = "auto"
    round: str = DEFAULT_ROUND
    results_dir: Path = Path("results")
    config_files: tuple[Path, ...] = ()
    overrides: tuple[str, ...] = ()
    data_dir: Path | None = None
    model_path: Path | None = None
    engines_dir: Path = Path("engines")
    show_progress: bool = True
    # Compliance runs (`audit`, SPEC §4): the test's audit.config, which LoadGen reads for this run
    # only, and the folder its results go to instead of the usual performance/accuracy one.
    audit_config: Path | None = None
    result_dir: Path | None = None


@dataclass(frozen=True)
class RunOutcome:
    workload: Workload
    scenario: str
    mode: str
    backend: str
    backend_note: str
    result_dir: Path
    summary: RunSummary
    config: ResolvedConfig
    stats: CoreStats
    not_submittable: tuple[str, ...] = field(default=())
    notes: tuple[str, ...] = field(default=())
    accuracy: Report | None = None
    accuracy_passed: bool | None = None
    accuracy_lines: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class Plan:
    """Everything checked and resolved before LoadGen starts."""

    workload: Workload
    scenario: str
    mode: str
    round: str
    backend: str
    backend_note: str
    system: SystemInfo
    config: ResolvedConfig
    final_dir: Path


def plan_run(request: RunRequest) -> Plan:
    """Validates the request and resolves its settings; raises a typed error naming the culprit."""
    workload = resolve(request.model)
    scenario = check_scenario(request.scenario)
    round_ = check_round(request.round)
    if request.mode not in ("performance", "accuracy"):
        raise ConfigError(
            f"--mode {request.mode!r}: run() executes one LoadGen test, 'performance' or"
            " 'accuracy' (the CLI runs 'submission' as one of each, in fresh processes)"
        )
    if request.data_dir is not None and not Path(request.data_dir).is_dir():
        raise DataError(
            f"--data-dir {request.data_dir}: no such directory; point it at the data set's raw"
            " folder, or leave it out to use the synthetic data set"
        )
    if request.audit_config is None:
        check_no_stray_audit_config()
    elif not Path(request.audit_config).is_file():
        raise ConfigError(f"audit config {request.audit_config}: no such file")
    backend, note = backends.choose_backend(request.backend)
    if backend != "null" and not has_pipeline(workload.benchmark.name):
        if request.backend != "auto":
            pipeline_for(workload.benchmark.name)  # raises, naming the benchmarks that have one
        backend, note = (
            "null",
            (
                f"no inference: {workload.benchmark.name} has no {backend} pipeline in this version"
                " yet (auto fell back to the null backend)"
            ),
        )
    if request.model_path is not None and not Path(request.model_path).is_file():
        raise ModelError(
            f"--model-path {request.model_path}: no such file; give the ONNX model to run"
        )
    system = detect()
    context = Context(
        workload=workload.name,
        scenario=scenario,
        backend=backend,
        cpu_threads=system.cpu_threads,
        gpus=len(system.gpus),
        samples_per_query=workload.rules(round_).multistream_samples_per_query,
        duration=_check_duration(request.duration),
        default_precision=workload.default_precision(backend),
    )
    config = resolve_config(
        context,
        duration=_check_duration(request.duration),
        config_files=request.config_files,
        overrides=request.overrides,
    )
    final = request.result_dir or result_dir(
        Path(request.results_dir), system.system_id, workload.name, scenario, request.mode
    )
    return Plan(workload, scenario, request.mode, round_, backend, note, system, config, final)


def _check_duration(duration: str) -> str:
    from mlperf_trt.config import DURATIONS

    if duration not in DURATIONS:
        raise ConfigError(f"--duration {duration!r}: expected one of {', '.join(DURATIONS)}")
    return duration


def _not_submittable(plan: Plan, summary: RunSummary) -> list[str]:
    problems: list[str] = []
    rules = plan.workload.rules(plan.round)
    if plan.config.duration != "full":
        problems.append(
            f"--duration {plan.config.duration} shortens the run; only 'full' keeps"
            " the official durations and counts"
        )
    if plan.backend == "null":
        problems.append("the null backend does no inference")
    if plan.scenario not in rules.all_scenarios:
        problems.append(
            f"{plan.scenario} is not a scenario of {plan.workload.name} in"
            f" {plan.round} (it has {', '.join(rules.all_scenarios)})"
        )
    if plan.mode == "performance":
        latency = rules.server_latency_ms
        problems += submittable_problems(
            summary,
            round_seeds=rules.loadgen_seeds,
            required_psc=rules.performance_sample_count,
            offline_min_samples=rules.offline_min_samples,
            server_latency_ns=int(latency * 1e6) if latency is not None else None,
            equal_issue=rules.equal_issue,
        )
    elif summary.errors:
        problems.append(
            f"LoadGen logged {len(summary.errors)} error(s): " + "; ".join(summary.errors)
        )
    return problems


def setup_engine(plan: Plan, request: RunRequest) -> Setup:
    """Model, data, engine and executors for the plan's backend."""
    if plan.backend == "null":
        return null_setup(plan.workload, plan.scenario, plan.config, plan.round)
    return engine_setup(
        plan.workload,
        plan.scenario,
        plan.config,
        plan.round,
        plan.system,
        backend=plan.backend,
        model_path=request.model_path,
        data_dir=request.data_dir,
        engines_root=Path(request.engines_dir),
        show_progress=request.show_progress,
    )


def run(request: RunRequest) -> RunOutcome:
    """Runs one LoadGen test; returns its summary. The result folder appears only on success."""
    plan = plan_run(request)
    setup = setup_engine(plan, request)
    cfg = setup.config
    key = plan.workload.benchmark.loadgen_key
    log.info(
        "%s %s %s on %s -> %s",
        plan.workload.name,
        plan.scenario,
        plan.mode,
        plan.backend,
        plan.final_dir,
    )
    atomic = AtomicResultDir(plan.final_dir)
    report: Report | None = None
    passed: bool | None = None
    lines: list[str] = []
    try:
        tmp = atomic.temp
        user_conf = tmp / "user.conf"
        atomic_write_text(user_conf, render_user_conf(key, plan.scenario, cfg.user_conf_settings()))
        resolved = cfg.to_json()
        resolved.update(
            {
                "round": plan.round,
                "mode": plan.mode,
                "system_id": plan.system.system_id,
                "loadgen": loadgen_version(),
                "backend_note": plan.backend_note,
                "notes": list(setup.notes),
                "inputs": setup.extra,
                "qsl": {
                    "total_count": setup.total_count,
                    "performance_count": setup.performance_count,
                },
            }
        )
        atomic_write_json(tmp / "resolved_config.json", resolved)
        min_duration = cfg["min_duration_ms"]
        progress = (
            Progress(
                f"{plan.workload.name} {plan.scenario} {plan.mode}",
                interval=float(cfg["progress_interval_s"]),
            )
            if request.show_progress
            else None
        )
        stats = run_test(
            setup.core,
            LoadGenSpec(
                model_key=key,
                scenario=plan.scenario,
                mode=plan.mode,
                user_conf=user_conf,
                outdir=tmp,
                total_count=setup.total_count,
                performance_count=setup.performance_count,
                enable_trace=bool(cfg["enable_trace"]),
                audit_config=request.audit_config,
            ),
            progress=progress,
            expected_s=(min_duration or 600_000) / 1000.0,
            failure_grace_s=float(cfg["failure_grace_s"]),
            on_abort=atomic.discard,
        )
        summary = summarize(tmp)
        (tmp / "no-audit.config").unlink(missing_ok=True)
        if plan.mode == "accuracy" and setup.evaluate is not None:
            report, targets = setup.evaluate(tmp / "mlperf_log_accuracy.json")
            passed, lines = report.verdict(targets)
            write_accuracy_txt(tmp, report, lines)
        atomic.commit()
    except BaseException:
        atomic.discard()
        raise
    problems = _not_submittable(plan, summary)
    if setup.synthetic:
        problems.append("synthetic data: the official data set is needed for a submission")
    return RunOutcome(
        workload=plan.workload,
        scenario=plan.scenario,
        mode=plan.mode,
        backend=plan.backend,
        backend_note=plan.backend_note,
        result_dir=plan.final_dir,
        summary=summary,
        config=cfg,
        stats=stats,
        not_submittable=tuple(problems),
        notes=setup.notes,
        accuracy=report,
        accuracy_passed=passed,
        accuracy_lines=tuple(lines),
    )


@dataclass(frozen=True)
class BuildOutcome:
    workload: Workload
    backend: str
    backend_note: str
    config: ResolvedConfig
    engine: Path | None
    cache_hit: bool
    recipe: dict[str, object]
    calibration_cache: Path | None


def build(request: RunRequest) -> BuildOutcome:
    """`build` / `calibrate`: the engine step of `run` on its own (DESIGN §5), cached by recipe.

    The scenario only chooses defaults (the batch size); no LoadGen test runs.
    """
    from mlperf_trt.harness.setup import build_engine

    plan = plan_run(request)
    if plan.backend == "null":
        return BuildOutcome(
            plan.workload, "null", plan.backend_note, plan.config, None, True, {}, None
        )
    built = build_engine(
        plan.workload,
        plan.config,
        plan.system,
        backend=plan.backend,
        model_path=request.model_path,
        data_dir=request.data_dir,
        engines_root=Path(request.engines_dir),
        show_progress=request.show_progress,
    )
    artifact = built.artifact
    folder = Path(artifact.path).parent if artifact.path else None
    recipe = artifact.recipe.to_json()
    recipe["digest"] = artifact.recipe.digest()
    calib = folder / "calib.cache" if folder and (folder / "calib.cache").is_file() else None
    return BuildOutcome(
        plan.workload,
        plan.backend,
        plan.backend_note,
        plan.config,
        artifact.path,
        artifact.cache_hit,
        recipe,
        calib,
    )
