"""Staging the submission tree of SPEC §5.1 (v5.0; v4.1 differences from Appendix A) from results.

    OUT/<division>/<submitter>/
      systems/<system>.json
      code/<benchmark>/<implementation>/README.md
      measurements/<system>/<benchmark>/<Scenario>/{<system>_<implementation>_<Scenario>.json,
                                                      README.md, user.conf}
      results/<system>/<benchmark>/<Scenario>/{performance/run_1, accuracy}
      compliance/<system>/<benchmark>/<Scenario>/TEST0x/...
      documentation/calibration.md

Staging only reads the results folder: every file is copied, the accuracy logs of the copies are
hashed and truncated (SPEC §1.3), and the whole tree is built in a hidden folder beside OUT and
renamed into place at the end, so OUT is either complete or absent.
"""

from __future__ import annotations

import json
import platform
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mlperf_trt.benchmarks import DEFAULT_ROUND, SCENARIOS, Workload, check_round, resolve
from mlperf_trt.errors import BenchmarkError, ConfigError, SubmissionError
from mlperf_trt.results import AtomicResultDir, atomic_write_json, atomic_write_text
from mlperf_trt.submission.truncate import truncate_accuracy_dir
from mlperf_trt.system import (
    REQUIRED_SYSTEM_FIELDS,
    SystemInfo,
    detect,
    missing_meaningful_fields,
    system_description,
)

__all__ = [
    "ACCURACY_FILES",
    "COMPLIANCE_TESTS_DIRS",
    "PERFORMANCE_FILES",
    "ScenarioResults",
    "StageOutcome",
    "describe_system",
    "find_results",
    "read_resolved",
    "stage_submission",
]

# SPEC §6: the file sets the checker requires (optional extras are not staged).
PERFORMANCE_FILES = ("mlperf_log_summary.txt", "mlperf_log_detail.txt")
ACCURACY_FILES = (*PERFORMANCE_FILES, "accuracy.txt", "mlperf_log_accuracy.json")
COMPLIANCE_TESTS_DIRS = ("TEST01", "TEST04", "TEST05", "TEST06")
# SPEC §5.1: what each compliance test folder holds.
_TEST_FILES = ("verify_accuracy.txt", "verify_performance.txt")
_TEST_ACCURACY_FILES = (
    "mlperf_log_accuracy.json",
    "baseline_accuracy.txt",
    "compliance_accuracy.txt",
)
_DIVISIONS = ("closed", "open")
_DTYPE_NAMES = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}


@dataclass(frozen=True)
class ScenarioResults:
    """One results/<system>/<workload>/<Scenario> folder of the harness."""

    system_id: str
    workload: Workload
    scenario: str
    path: Path

    @property
    def performance(self) -> Path:
        return self.path / "performance" / "run_1"

    @property
    def accuracy(self) -> Path:
        return self.path / "accuracy"

    def tests(self) -> tuple[str, ...]:
        return tuple(t for t in COMPLIANCE_TESTS_DIRS if (self.path / t).is_dir())


def find_results(results_dir: Path) -> tuple[list[ScenarioResults], list[str]]:
    """Every <system>/<workload>/<Scenario> folder under `results_dir`, plus what was ignored."""
    root = Path(results_dir)
    if not root.is_dir():
        raise SubmissionError(
            f"--results-dir {root}: no such directory; pass the folder `run` wrote to"
            " (default ./results)"
        )
    found: list[ScenarioResults] = []
    ignored: list[str] = []
    for system in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for bench in sorted(p for p in system.iterdir() if p.is_dir() and not _hidden(p)):
            try:
                workload = resolve(bench.name)
            except BenchmarkError:
                ignored.append(f"{bench}: not a benchmark name")
                continue
            for scen in sorted(p for p in bench.iterdir() if p.is_dir() and not _hidden(p)):
                if scen.name not in SCENARIOS:
                    ignored.append(f"{scen}: not a scenario name")
                    continue
                found.append(ScenarioResults(system.name, workload, scen.name, scen))
    return found, ignored


def _hidden(path: Path) -> bool:
    return path.name.startswith(".")


def read_resolved(run_dir: Path) -> dict[str, object]:
    """The run's resolved_config.json (written beside every result), or {} when absent."""
    try:
        data = json.loads((Path(run_dir) / "resolved_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _setting(resolved: Mapping[str, object], name: str) -> object:
    settings = resolved.get("settings")
    entry = settings.get(name) if isinstance(settings, dict) else None
    return entry.get("value") if isinstance(entry, dict) else None


def _resolved_of(item: ScenarioResults) -> dict[str, object]:
    return read_resolved(item.performance) or read_resolved(item.accuracy)


def implementation_id(item: ScenarioResults) -> str:
    backend = str(_resolved_of(item).get("backend") or "unknown")
    return f"mlperf_trt-{backend}"


def _software(results: list[ScenarioResults]) -> tuple[str, str]:
    """(framework, other_software_stack) from what the runs recorded (SPEC §5.3)."""
    from mlperf_trt import __version__

    notes, loadgens = set(), set()
    for item in results:
        resolved = _resolved_of(item)
        if resolved.get("backend_note"):
            notes.add(str(resolved["backend_note"]).split(",")[0])
        if resolved.get("loadgen"):
            loadgens.add(f"mlcommons-loadgen {resolved['loadgen']}")
    framework = ", ".join([f"mlperf_trt {__version__}", *sorted(notes)])
    import numpy

    stack = ", ".join(
        [f"Python {platform.python_version()}", *sorted(loadgens), f"numpy {numpy.__version__}"]
    )
    return framework, stack


def describe_system(
    *,
    submitter: str,
    division: str,
    system_json: Path | None,
    results: list[ScenarioResults],
    info: SystemInfo | None = None,
) -> dict[str, object]:
    """The systems/<id>.json (SPEC §5.3): detection, what the runs recorded, then the file.

    Fields that nothing fills raise one SubmissionError naming every one of them.
    """
    given: dict[str, object] = {}
    if system_json is not None:
        try:
            loaded = json.loads(Path(system_json).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SubmissionError(f"--system-json {system_json}: cannot read it ({exc})") from None
        if not isinstance(loaded, dict):
            raise SubmissionError(f"--system-json {system_json}: expected a JSON object")
        given = dict(loaded)
    for key, value in (("division", division), ("submitter", submitter)):
        if key in given and str(given[key]).lower() != value.lower():
            raise SubmissionError(
                f"--system-json {system_json}: {key} {given[key]!r} contradicts the --{key}"
                f" {value!r} of this submission; make them agree"
            )
        given.pop(key, None)
    status = str(given.pop("status", "available"))
    system_type = str(given.pop("system_type", "datacenter"))
    framework, stack = _software(results)
    overrides: dict[str, object] = {"framework": framework, "other_software_stack": stack}
    overrides.update(given)
    try:
        desc = system_description(
            info or detect(),
            division=division,
            submitter=submitter,
            status=status,
            system_type=system_type,
            overrides=overrides,
        )
    except ConfigError as exc:  # a bad status, system_type or field name: name the file
        raise SubmissionError(f"--system-json {system_json}: {exc}") from None
    missing = missing_meaningful_fields(desc)
    if missing:
        raise SubmissionError(
            f"the system description lacks {len(missing)} required field(s) that detection"
            f" cannot know: {', '.join(missing)}. Put them in a JSON file and pass it with"
            " --system-json FILE (SPEC §5.3 lists what each one means)"
        )
    extra = sorted(set(desc) - set(REQUIRED_SYSTEM_FIELDS))
    return {key: desc[key] for key in (*REQUIRED_SYSTEM_FIELDS, *extra)}


@dataclass(frozen=True)
class StageOutcome:
    root: Path  # OUT
    submitter_dir: Path  # OUT/<division>/<submitter>
    system_ids: tuple[str, ...]
    staged: tuple[ScenarioResults, ...]
    ignored: tuple[str, ...]  # folders of the results dir that were not staged, and why


def _copy(src: Path, dst: Path) -> bool:
    if not src.is_file():
        return False
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    return True


def stage_submission(
    results_dir: Path,
    out: Path,
    *,
    submitter: str,
    division: str,
    round_: str = DEFAULT_ROUND,
    system_json: Path | None = None,
    info: SystemInfo | None = None,
) -> StageOutcome:
    """Copies the results into the submission tree of SPEC §5.1 at `out` (which must not exist).

    Never writes into `results_dir`. Raises SubmissionError for bad input (a missing system
    field, an existing `out`, no results); what the tree then lacks is for `check` to report.
    """
    round_ = check_round(round_)
    if division not in _DIVISIONS:
        raise SubmissionError(f"--division {division!r}: expected closed or open")
    if not submitter or submitter.startswith(".") or "/" in submitter or " " in submitter:
        raise SubmissionError(
            f"--submitter {submitter!r}: the folder name of the organisation, without spaces,"
            " '/' or a leading '.' (SPEC §5.1)"
        )
    out, results_dir = Path(out), Path(results_dir)
    if out.exists():
        raise SubmissionError(f"--out {out} exists; stage into a new folder (nothing was changed)")
    res, dst = results_dir.resolve(), out.resolve()
    if dst == res or res in dst.parents or dst in res.parents:
        raise SubmissionError(f"--out {out} and --results-dir {results_dir} must not nest")
    found, ignored = find_results(results_dir)
    if not found:
        raise SubmissionError(
            f"--results-dir {results_dir}: no results/<system>/<benchmark>/<Scenario> folders"
        )
    systems = tuple(sorted({r.system_id for r in found}))
    desc = describe_system(
        submitter=submitter, division=division, system_json=system_json, results=found, info=info
    )
    atomic = AtomicResultDir(out)
    try:
        base = atomic.temp / division / submitter
        for system_id in systems:
            atomic_write_json(base / "systems" / f"{system_id}.json", desc)
        for item in found:
            _stage_one(base, item, round_)
        _write_calibration(base / "documentation" / "calibration.md", found)
        atomic.commit()
    except BaseException:
        atomic.discard()
        raise
    return StageOutcome(out, out / division / submitter, systems, tuple(found), tuple(ignored))


def _stage_one(base: Path, item: ScenarioResults, round_: str) -> None:
    bench, sys_id, scen = item.workload.submission_name, item.system_id, item.scenario
    res = base / "results" / sys_id / bench / scen
    for name in PERFORMANCE_FILES:
        _copy(item.performance / name, res / "performance" / "run_1" / name)
    copied = {n for n in ACCURACY_FILES if _copy(item.accuracy / n, res / "accuracy" / n)}
    if {"mlperf_log_accuracy.json", "accuracy.txt"} <= copied:
        truncate_accuracy_dir(res / "accuracy")
    for test in item.tests():
        src, dst = item.path / test, base / "compliance" / sys_id / bench / scen / test
        for name in _TEST_FILES:
            _copy(src / name, dst / name)
        for name in _TEST_ACCURACY_FILES:
            _copy(src / "accuracy" / name, dst / "accuracy" / name)
        for name in PERFORMANCE_FILES:
            if test != "TEST06":  # SPEC §4.3: TEST06 has no performance folder
                _copy(src / "performance" / "run_1" / name, dst / "performance" / "run_1" / name)
        if test == "TEST01" and (dst / "accuracy" / "mlperf_log_accuracy.json").is_file():
            truncate_accuracy_dir(dst / "accuracy", compliance=True)
    impl = implementation_id(item)
    meas = base / "measurements" / sys_id / bench / scen
    resolved = _resolved_of(item)
    if not _copy(item.performance / "user.conf", meas / "user.conf"):
        _copy(item.accuracy / "user.conf", meas / "user.conf")
    atomic_write_json(meas / f"{sys_id}_{impl}_{scen}.json", _model_info(item, resolved))
    atomic_write_text(meas / "README.md", _readme(item, resolved, round_))
    code = base / "code" / bench / impl / "README.md"
    if not code.is_file():
        atomic_write_text(code, _code_readme(item, impl))


def _model_info(item: ScenarioResults, resolved: Mapping[str, object]) -> dict[str, str]:
    """The measurements JSON's five fields (SPEC §5.3)."""
    card = item.workload.benchmark.model_card
    inputs = sorted({_DTYPE_NAMES.get(t.dtype, t.dtype) for t in card.inputs})
    precision = str(_setting(resolved, "precision") or "fp32")
    notes = resolved.get("notes")
    built_in = isinstance(notes, list) and any("built-in" in str(n) for n in notes)
    if built_in:
        size = _setting(resolved, "model_size") or "full"
        weights = f"built-in {item.workload.name} graph ({size}) with seeded weights"
    else:
        weights = card.source
    return {
        "input_data_types": ", ".join(inputs),
        "retraining": "No",
        "starting_weights_filename": weights,
        "weight_data_types": precision,
        "weight_transformations": (
            "No"
            if precision == "fp32"
            else "quantization"
            if precision in ("int8", "fp8")
            else f"fp32 to {precision} conversion"
        ),
    }


def _run_flags(item: ScenarioResults, resolved: Mapping[str, object]) -> str:
    flags = [f"--model {item.workload.name}", f"--scenario {item.scenario}"]
    if resolved.get("backend"):
        flags.append(f"--backend {resolved['backend']}")
    if resolved.get("round"):
        flags.append(f"--round {resolved['round']}")
    flags.append(f"--duration {resolved.get('duration', 'full')}")
    for name in ("precision", "model_size"):
        value = _setting(resolved, name)
        if value:
            flags.append(f"--set {name}={value}")
    return " ".join(flags)


def _readme(item: ScenarioResults, resolved: Mapping[str, object], round_: str) -> str:
    flags = _run_flags(item, resolved)
    tests = item.workload.rules(round_).compliance_tests
    lines = [
        f"# {item.workload.submission_name} {item.scenario} on {item.system_id}",
        "",
        "Reproduce with mlperf_trt (pip install . in the harness repository):",
        "",
        "```",
        f"python -m mlperf_trt run {flags} --mode accuracy",
        f"python -m mlperf_trt run {flags} --mode performance",
    ]
    if tests:
        lines.append(f"python -m mlperf_trt audit {flags} --all   # {', '.join(tests)}")
    lines += [
        "```",
        "",
        f"LoadGen: mlcommons-loadgen {resolved.get('loadgen', 'unknown')}; backend:"
        f" {resolved.get('backend_note', 'unknown')}.",
        "user.conf in this folder is the exact file the performance run passed to LoadGen.",
        "",
    ]
    return "\n".join(lines)


def _code_readme(item: ScenarioResults, impl: str) -> str:
    from mlperf_trt import __version__

    return (
        f"# {item.workload.submission_name}: {impl}\n\n"
        f"The harness is the mlperf_trt package, version {__version__} (Python package"
        f" `mlperf_trt`, C++ core `csrc/`). The `{impl.split('-', 1)[1]}` backend ran this"
        " benchmark; see measurements/*/README.md for the exact commands.\n"
    )


def _write_calibration(path: Path, found: list[ScenarioResults]) -> None:
    """documentation/calibration.md (SPEC §5.1): how each quantised engine was calibrated."""
    from mlperf_trt.backends.calibration import read_calibration_cache

    lines = ["# Calibration", ""]
    seen: set[str] = set()
    for item in found:
        resolved = _resolved_of(item)
        precision = str(_setting(resolved, "precision") or "fp32")
        key = f"{item.workload.submission_name}:{precision}"
        if key in seen:
            continue
        seen.add(key)
        if precision not in ("int8", "fp8"):
            lines.append(f"- {item.workload.submission_name}: {precision}, no calibration.")
            continue
        inputs = resolved.get("inputs")
        engine = Path(str(inputs.get("engine_dir", ""))) if isinstance(inputs, dict) else None
        cache = engine / "calib.cache" if engine else None
        if cache is not None and cache.is_file():
            calib = read_calibration_cache(cache)
            how = f"{calib.method} calibration, {len(calib.tensors)} tensor ranges"
        else:
            how = "post-training calibration (no calibration cache beside the engine any more)"
        lines.append(
            f"- {item.workload.submission_name}: {precision}, {how}, on the benchmark's"
            " calibration list (the official list where the data set has one)."
        )
    atomic_write_text(path, "\n".join([*lines, ""]))
