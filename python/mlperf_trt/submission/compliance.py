"""Compliance tests (SPEC §4): the audit.config of each test, one LoadGen run with it, verification.

A test runs exactly like the submission run it audits (same flags, and the LoadGen hints the
reference run measured), with the test's audit.config given to LoadGen for that run only. The
LoadGen run happens in a fresh child process (LoadGen takes one config per process, SPEC §3.4);
this process owns the audit.config and removes it when the child ends, fails or is interrupted
(Ctrl-C ends the child at once, SPEC §7 pitfall 2 is why the file must never linger).

Results go beside the run they audit (the v6 layout of SPEC §5.2, which `tree` maps onto the v5.0
`compliance/` tree of SPEC §5.1)::

    results/<system>/<workload>/<Scenario>/TEST01/{verify_accuracy.txt, verify_performance.txt,
        accuracy/mlperf_log_accuracy.json[, baseline_accuracy.txt, compliance_accuracy.txt],
        performance/run_1/<LoadGen logs>}
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import pickle
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mlperf_trt.accuracy.log import LogEntry, decode_payload, read_accuracy_log
from mlperf_trt.benchmarks import COMPLIANCE_TESTS, DEFAULT_ROUND, Workload
from mlperf_trt.errors import ResultsError, SubmissionError, closest
from mlperf_trt.harness.runner import RunRequest, plan_run
from mlperf_trt.results import (
    AtomicResultDir,
    DetailLog,
    RunSummary,
    atomic_write_text,
    read_detail_log,
    summarize,
)

__all__ = [
    "ACCURACY_LOG_RNG_SEED",
    "TEST05_SEEDS",
    "AuditOutcome",
    "audit_config_file",
    "audit_config_text",
    "check_test",
    "run_audit",
    "test_dir",
]

# SPEC §4.1 / §4.3: the accuracy-log RNG seed of the TEST01 and TEST06 audit.config files.
ACCURACY_LOG_RNG_SEED = 720381539243781796
# Appendix A: the TEST05 seeds of v4.1 (qsl, sample_index, schedule).
TEST05_SEEDS = (16799458546791641818, 5453809927556429288, 5435552105434836064)
# SPEC §4.3: TEST06 logs about 100 samples in a short run.
TEST06_SAMPLING_TARGET = 100
# The hint fields a run measures on this machine (harness/setup.py); an audit run reuses the
# reference run's values so that its user.conf is the submission's (SPEC §4 "same settings").
HINT_FIELDS = (
    "offline_expected_qps",
    "server_target_qps",
    "single_stream_expected_latency_ns",
    "multi_stream_expected_latency_ns",
)
# LoadGen logs this warning when it applies an audit config (SPEC §4: "Found Audit Config file").
AUDIT_FOUND = "Found Audit Config file"

_HEADER = (
    "# audit.config written by mlperf_trt for {test} (SPEC §4); LoadGen reads it for one run.\n"
)


def check_test(workload: Workload, test: str, round_: str = DEFAULT_ROUND) -> str:
    """`test` when the round requires it of the benchmark; SubmissionError otherwise (SPEC §4)."""
    if test not in COMPLIANCE_TESTS:
        raise SubmissionError(
            f"--test {test!r}: expected one of {', '.join(COMPLIANCE_TESTS)}"
            f"{closest(str(test), COMPLIANCE_TESTS)}"
        )
    required = workload.rules(round_).compliance_tests
    if test not in required:
        needed = ", ".join(required) or "none"
        raise SubmissionError(
            f"--test {test}: {workload.name} has no {test} in round {round_} (SPEC §4"
            f"{', Appendix A' if round_ != DEFAULT_ROUND else ''}); its tests: {needed}"
        )
    return test


def audit_config_text(workload: Workload, test: str, round_: str = DEFAULT_ROUND) -> str:
    """The audit.config of `test` for `workload` in `round_` (SPEC §4.1-§4.4, Appendix A).

    LoadGen reads it with the model name `*` (SPEC §3.4), so every line is keyed `*.*.`; the one
    model-specific line of the official TEST04 file (SDXL Offline min_query_count) is kept for
    fidelity and is, as in the reference, not applied by LoadGen (SPEC §4.4).
    """
    check_test(workload, test, round_)
    rules = workload.rules(round_)
    lines = [_HEADER.format(test=test), "*.*.mode = 2\n"]  # mode 2: PerformanceOnly
    if test == "TEST01":
        target = rules.accuracy_log_sampling_target
        if target is None:  # pragma: no cover - the tables give a target wherever TEST01 applies
            raise SubmissionError(f"{workload.name} has no TEST01 sampling target in {round_}")
        lines += [
            f"*.*.accuracy_log_rng_seed = {ACCURACY_LOG_RNG_SEED}\n",
            f"*.*.accuracy_log_sampling_target = {target}\n",
        ]
    elif test == "TEST04":
        lines += [
            "*.*.performance_issue_unique = 0\n",
            "*.*.performance_issue_same = 1\n",
            "*.*.performance_issue_same_index = 3\n",
        ]
        if workload.benchmark.loadgen_key == "stable-diffusion-xl":
            lines.append("stable-diffusion-xl.Offline.min_query_count = 500\n")
    elif test == "TEST05":
        qsl, index, schedule = TEST05_SEEDS
        lines += [
            "*.*.test05 = 1\n",
            f"*.*.test05_qsl_rng_seed = {qsl}\n",
            f"*.*.test05_sample_index_rng_seed = {index}\n",
            f"*.*.test05_schedule_rng_seed = {schedule}\n",
        ]
    else:  # TEST06
        lines += [
            f"*.*.accuracy_log_rng_seed = {ACCURACY_LOG_RNG_SEED}\n",
            f"*.*.accuracy_log_sampling_target = {TEST06_SAMPLING_TARGET}\n",
            "*.*.min_query_count = 100\n",
            "*.*.min_duration = 0\n",
            "*.*.sample_concatenate_permutation = 0\n",
        ]
    return "".join(lines)


@contextlib.contextmanager
def audit_config_file(text: str) -> Iterator[Path]:
    """Writes `text` as `audit.config` in a private temporary folder; removes both on exit.

    The folder is never the CWD, so no other run can pick the file up (SPEC §7 pitfall 2), and it
    is removed on success, on an exception and on Ctrl-C (KeyboardInterrupt) alike.
    """
    folder = Path(tempfile.mkdtemp(prefix="mlperf_trt-audit-"))
    try:
        path = folder / "audit.config"
        path.write_text(text, encoding="utf-8")
        yield path
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_dir(scenario_dir: Path, test: str) -> Path:
    """Where a test's results go: beside the run it audits (module docstring)."""
    return Path(scenario_dir) / test


@dataclass(frozen=True)
class AuditOutcome:
    test: str
    workload: Workload
    scenario: str
    folder: Path  # results/<system>/<workload>/<Scenario>/<TEST>
    passed: bool
    accuracy_passed: bool | None  # None: the test has no accuracy check
    performance_passed: bool | None  # None: the test has no performance check
    summary: RunSummary
    report: tuple[str, ...]  # the verify_*.txt texts, one per file
    notes: tuple[str, ...] = ()


def _reference(scenario_dir: Path, mode: str, workload: Workload, scenario: str) -> Path:
    path = scenario_dir / ("performance/run_1" if mode == "performance" else "accuracy")
    if not (path / "mlperf_log_detail.txt").is_file():
        raise SubmissionError(
            f"{path}: no {mode} run to compare the compliance test with (SPEC §4); run it first:"
            f" python -m mlperf_trt run --model {workload.name} --scenario {scenario}"
            f" --mode {mode} (with the flags you give audit)"
        )
    return path


def _pinned_hints(reference: Path, request: RunRequest) -> tuple[str, ...]:
    """`--set` items that give the audit run the hints the reference run measured."""
    resolved = reference / "resolved_config.json"
    try:
        settings = json.loads(resolved.read_text(encoding="utf-8")).get("settings", {})
    except (OSError, ValueError):
        return ()
    given = {item.split("=", 1)[0].strip() for item in request.overrides}
    pinned = []
    for name in HINT_FIELDS:
        entry = settings.get(name)
        if name in given or not isinstance(entry, dict) or entry.get("value") is None:
            continue
        if str(entry.get("source", "")).startswith("measured"):
            pinned.append(f"{name}={entry['value']!r}")
    return tuple(pinned)


def run_audit(request: RunRequest, test: str) -> AuditOutcome:
    """Runs compliance test `test` for the run `request` describes, then verifies it (SPEC §4).

    `request` carries the submission run's flags (model, scenario, backend, duration, round,
    results_dir, config, overrides, data, model). The reference performance run (and, for TEST01,
    the accuracy run) must already be in results_dir. Returns the verdict; the test folder is
    replaced atomically, and a run that fails leaves the previous folder (or none).
    """
    plan = plan_run(dataclasses.replace(request, mode="performance", audit_config=None))
    workload, scenario, round_ = plan.workload, plan.scenario, plan.round
    check_test(workload, test, round_)
    scenario_dir = plan.final_dir.parent.parent  # .../<Scenario>/performance/run_1
    perf_ref = acc_ref = None
    if test in ("TEST01", "TEST04", "TEST05"):
        perf_ref = _reference(scenario_dir, "performance", workload, scenario)
    if test == "TEST01":
        acc_ref = _reference(scenario_dir, "accuracy", workload, scenario)
    overrides = request.overrides + (_pinned_hints(perf_ref, request) if perf_ref else ())
    final = test_dir(scenario_dir, test)
    atomic = AtomicResultDir(final)
    try:
        tmp = atomic.temp
        run_dir = tmp / "performance" / "run_1"
        with audit_config_file(audit_config_text(workload, test, round_)) as audit:
            child = dataclasses.replace(
                request,
                mode="performance",
                overrides=overrides,
                audit_config=audit,
                result_dir=run_dir,
            )
            _run_child(child)
        summary = summarize(run_dir)
        outcome = _verify(test, workload, scenario, round_, tmp, run_dir, perf_ref, acc_ref)
        notes = _notes(run_dir, perf_ref)
        atomic.commit()
    except BaseException:
        atomic.discard()
        raise
    return dataclasses.replace(
        outcome, folder=final, summary=summary, notes=tuple(notes) + outcome.notes
    )


def _verify(
    test: str,
    workload: Workload,
    scenario: str,
    round_: str,
    folder: Path,
    run_dir: Path,
    perf_ref: Path | None,
    acc_ref: Path | None,
) -> AuditOutcome:
    reports: list[str] = []
    acc_ok: bool | None = None
    perf_ok: bool | None = None
    applied = AUDIT_FOUND in " ".join(read_detail_log(run_dir / "mlperf_log_detail.txt").warnings)
    if test in ("TEST01", "TEST06"):  # SPEC §4.1/§4.3: <TEST>/accuracy holds the sampled log
        accuracy_dir = folder / "accuracy"
        accuracy_dir.mkdir(parents=True, exist_ok=True)
        sampled = accuracy_dir / "mlperf_log_accuracy.json"
        shutil.copyfile(run_dir / "mlperf_log_accuracy.json", sampled)
        if test == "TEST06":
            result = verify_test06(sampled, scenario)
        else:
            assert acc_ref is not None  # run_audit requires the accuracy run for TEST01
            result = verify_test01_accuracy(
                sampled,
                acc_ref / "mlperf_log_accuracy.json",
                workload=workload,
                round_=round_,
                out_dir=accuracy_dir,
            )
        acc_ok = result.passed
        atomic_write_text(folder / "verify_accuracy.txt", result.text)
        reports.append(result.text)
    if perf_ref is not None:
        result = verify_performance(
            test, perf_ref / "mlperf_log_detail.txt", run_dir / "mlperf_log_detail.txt"
        )
        perf_ok = result.passed
        atomic_write_text(folder / "verify_performance.txt", result.text)
        reports.append(result.text)
    notes: list[str] = []
    if not applied:
        notes.append(
            f"the detail log lacks LoadGen's '{AUDIT_FOUND}' warning: the audit.config was not"
            " applied, so this is not a compliance run"
        )
    passed = applied and acc_ok is not False and perf_ok is not False
    summary = summarize(run_dir)
    reports_t, notes_t = tuple(reports), tuple(notes)
    return AuditOutcome(
        test, workload, scenario, folder, passed, acc_ok, perf_ok, summary, reports_t, notes_t
    )


def _notes(run_dir: Path, perf_ref: Path | None) -> list[str]:
    """Differences from the audited run that the official procedure forbids (SPEC §4)."""
    if perf_ref is None:
        return []
    notes = []
    ours, theirs = run_dir / "user.conf", perf_ref / "user.conf"
    if theirs.is_file() and ours.is_file() and ours.read_bytes() != theirs.read_bytes():
        notes.append(
            f"user.conf differs from the audited run's ({theirs}); pass the same --config/--set"
            " flags as that run"
        )
    try:
        mine = json.loads((run_dir / "resolved_config.json").read_text(encoding="utf-8"))
        ref = json.loads((perf_ref / "resolved_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return notes
    for key in ("backend", "duration"):
        if mine.get(key) != ref.get(key):
            notes.append(f"{key} {mine.get(key)!r} differs from the audited run's {ref.get(key)!r}")
    mine_p = mine.get("settings", {}).get("precision", {}).get("value")
    ref_p = ref.get("settings", {}).get("precision", {}).get("value")
    if mine_p != ref_p:
        notes.append(f"precision {mine_p!r} differs from the audited run's {ref_p!r}")
    return notes


# --- the child process that runs LoadGen --------------------------------------------------

_CHILD = (
    "import sys; from mlperf_trt.submission.compliance import child_main; sys.exit(child_main())"
)


def _run_child(request: RunRequest) -> None:
    """One LoadGen run in a fresh process; SubmissionError when it does not finish.

    The request travels pickled on stdin (a frozen dataclass of plain values, between two
    processes of this package); the child's output goes straight to this process's streams.
    """
    proc = subprocess.run([sys.executable, "-c", _CHILD], input=pickle.dumps(request), check=False)
    if proc.returncode != 0:
        raise SubmissionError(
            f"the compliance run failed (exit {proc.returncode}; its error is printed above);"
            " the test folder was left as it was"
        )


def child_main() -> int:
    """Entry of the child process: a pickled RunRequest on stdin; exit 0, or 2 on an error."""
    from mlperf_trt.errors import MlperfTrtError
    from mlperf_trt.harness.runner import run
    from mlperf_trt.results import format_summary

    request = pickle.loads(sys.stdin.buffer.read())
    if not isinstance(request, RunRequest):
        print("error: expected a pickled RunRequest on stdin", file=sys.stderr)
        return 2
    try:
        outcome = run(request)
    except MlperfTrtError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_summary(outcome.summary), end="")
    return 0


# --- verification, as the official run_verification.py scripts do it (SPEC §4.1-§4.3)


@dataclass(frozen=True)
class Verification:
    passed: bool
    text: str  # the verify_*.txt content: the counts or scores, then "TEST PASS" / "TEST FAIL"


def _first_element(data: bytes, dtype: str) -> object:
    values = decode_payload(data, dtype)
    return values[0].item() if values.size else None


def verify_test01_accuracy(
    test_log: Path,
    accuracy_log: Path,
    *,
    workload: Workload,
    round_: str = DEFAULT_ROUND,
    out_dir: Path | None = None,
) -> Verification:
    """TEST01 verify_accuracy (SPEC §4.1): the performance-mode samples against the accuracy run.

    For each logged qsl_idx that the accuracy run also logged, the first payload element (decoded
    as the benchmark's payload dtype, SPEC §1.2 and §7 pitfall 9) must be identical; PASS with 0
    mismatches and at least one match. On mismatches the non-determinism fallback scores the
    accuracy-run entries of the same samples (the baseline) and the TEST01 log with the
    benchmark's metric, writes baseline_accuracy.txt and compliance_accuracy.txt into `out_dir`,
    and passes when every metric is within the allowed delta.
    """
    dtype = workload.benchmark.payload.dtype
    reference: dict[int, LogEntry] = {}
    duplicates = 0
    for entry in read_accuracy_log(accuracy_log):
        if entry.qsl_idx in reference:
            duplicates += 1
        else:
            reference[entry.qsl_idx] = entry
    tested = read_accuracy_log(test_log)
    matches = mismatches = missing = 0
    for entry in tested:
        ref = reference.get(entry.qsl_idx)
        if ref is None:
            missing += 1
        elif _first_element(ref.data, dtype) == _first_element(entry.data, dtype):
            matches += 1
        else:
            mismatches += 1
    lines = [
        f"dtype = {dtype} (first element compared)",
        f"num_acc_log_entries = {len(reference) + duplicates}",
        f"num_acc_log_duplicate_keys = {duplicates}",
        f"num_perf_log_entries = {len(tested)}",
        f"num_perf_log_matches = {matches}",
        f"num_perf_log_data_mismatch = {mismatches}",
        f"num_missing_qsl_idxs = {missing}",
    ]
    if mismatches == 0 and matches >= 1:
        return Verification(True, "\n".join([*lines, "TEST PASS", ""]))
    lines.append("TEST FAIL")
    if mismatches == 0:
        lines.append("no sample of the TEST01 log is in the accuracy log: nothing was compared")
        return Verification(False, "\n".join([*lines, ""]))
    ok, more = _nondeterminism_fallback(
        tested, reference, accuracy_log, workload, round_, out_dir or Path(test_log).parent
    )
    return Verification(ok, "\n".join([*lines, *more, ""]))


def accuracy_delta_percent(workload: Workload, key: str) -> float:
    """Allowed |1 - baseline/compliance| x 100 of the TEST01 fallback (SPEC §4.1, §2.9)."""
    if workload.benchmark.loadgen_key == "stable-diffusion-xl":
        return 2.0 if key.upper().startswith("FID") else 1.0
    return 0.1 if workload.variant == "99.9" else 1.0


def _nondeterminism_fallback(
    tested: list[LogEntry],
    reference: dict[int, LogEntry],
    accuracy_log: Path,
    workload: Workload,
    round_: str,
    out_dir: Path,
) -> tuple[bool, list[str]]:
    from mlperf_trt.harness.pipelines import has_pipeline, score_log

    if not has_pipeline(workload.benchmark.name):
        return False, [f"fallback: {workload.name} has no metric here to score the logs with"]
    resolved = Path(accuracy_log).parent / "resolved_config.json"
    try:
        data_dir = Path(json.loads(resolved.read_text(encoding="utf-8"))["inputs"]["data_dir"])
    except (OSError, ValueError, KeyError, TypeError):
        return False, [f"fallback: {resolved} does not name the data set to score against"]
    wanted = {e.qsl_idx for e in tested}
    baseline = [reference[i] for i in sorted(wanted) if i in reference]
    with tempfile.TemporaryDirectory(prefix="mlperf_trt-test01-") as scratch:
        base_log, test_log = Path(scratch) / "baseline.json", Path(scratch) / "compliance.json"
        _write_log(base_log, baseline)
        _write_log(test_log, [e for e in tested if e.qsl_idx in reference])
        base, _, _ = score_log(workload, base_log, data_dir=data_dir, round_=round_)
        comp, _, _ = score_log(workload, test_log, data_dir=data_dir, round_=round_)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "baseline_accuracy.txt", base.line + "\n")
    atomic_write_text(out_dir / "compliance_accuracy.txt", comp.line + "\n")
    ok, lines = True, ["fallback (SPEC §4.1): metric of the same samples, baseline vs TEST01"]
    for key, value in base.values.items():
        other = comp.values.get(key)
        delta = accuracy_delta_percent(workload, key)
        if other is None or other == 0:
            ok = False
            lines.append(f"{key}: baseline {value:g}, TEST01 {other!r}: cannot compare")
            continue
        diff = abs(1.0 - value / other) * 100.0
        within = diff <= delta
        ok &= within
        lines.append(
            f"{key}: baseline {value:g}, TEST01 {other:g}, |1 - baseline/TEST01| = {diff:.4f}%"
            f" (allowed {delta:g}%): {'PASS' if within else 'FAIL'}"
        )
    return ok, lines


def _write_log(path: Path, entries: list[LogEntry]) -> None:
    items = [
        json.dumps({"seq_id": n, "qsl_idx": e.qsl_idx, "data": e.data.hex().upper()})
        for n, e in enumerate(entries)
    ]
    path.write_text("[\n" + ",\n".join(items) + "\n]\n", encoding="utf-8")


def _score(log: DetailLog, scenario: str) -> float | None:
    key = {
        "Offline": "result_samples_per_second",
        "Server": "result_completed_samples_per_sec",
        "SingleStream": "early_stopping_latency_ss",
        "MultiStream": "early_stopping_latency_ms",
    }.get(scenario)
    value = log.get(key) if key else None
    try:
        return float(value) if value is not None else None  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def verify_performance(test: str, reference_detail: Path, test_detail: Path) -> Verification:
    """verify_performance of TEST01/TEST04/TEST05 (SPEC §4.1, §4.2, Appendix A).

    Both runs must be VALID in the same scenario (Server: the same target latency). TEST01: the
    test score within +-10% of the reference (+-20% for SingleStream <= 200,000 ns or MultiStream
    <= 1,600,000 ns); TEST05: +-5% (same 20% exception); TEST04: throughput (1e9/latency for
    SingleStream/MultiStream) below 1.10 x the reference's, 1.20 x where the converted
    SingleStream/MultiStream score is <= 200,000 / 1,600,000 as in the HEAD script.
    """
    ref, run = read_detail_log(reference_detail), read_detail_log(test_detail)
    scenario = str(ref.get("effective_scenario", ""))
    lines = [
        f"reference run: {Path(reference_detail).parent.parent.name}/run_1 (the audited run)",
        f"test run: {test}/performance/run_1",
        f"scenario = {scenario}",
    ]

    def fail(why: str) -> Verification:
        return Verification(False, "\n".join([*lines, why, "TEST FAIL", ""]))

    for name, log in (("reference", ref), ("test", run)):
        if str(log.get("result_validity", "")).upper() != "VALID":
            return fail(f"the {name} run is not VALID ({log.get('result_validity')!r})")
    if str(run.get("effective_scenario", "")) != scenario:
        return fail(f"the test ran {run.get('effective_scenario')!r}, the reference {scenario!r}")
    if scenario == "Server" and run.get("effective_target_latency_ns") != ref.get(
        "effective_target_latency_ns"
    ):
        return fail("effective_target_latency_ns differs between the reference and the test")
    ref_score, test_score = _score(ref, scenario), _score(run, scenario)
    if ref_score is None or test_score is None or ref_score <= 0 or test_score <= 0:
        return fail(f"no usable score (reference {ref_score!r}, test {test_score!r})")
    if test == "TEST04":
        if scenario in ("SingleStream", "MultiStream"):
            ref_score, test_score = 1e9 / ref_score, 1e9 / test_score
        threshold = 0.10
        bound = 200_000 if scenario == "SingleStream" else 1_600_000
        if scenario in ("SingleStream", "MultiStream") and ref_score <= bound:
            threshold = 0.20
        passed = test_score < ref_score * (1 + threshold)
        rule = f"test score < reference x {1 + threshold:.2f}"
    else:
        threshold = 0.05 if test == "TEST05" else 0.10
        if (scenario == "SingleStream" and ref_score <= 200_000) or (
            scenario == "MultiStream" and ref_score <= 1_600_000
        ):
            threshold = 0.20
        passed = ref_score * (1 - threshold) < test_score < ref_score * (1 + threshold)
        rule = f"test score within +-{threshold:.0%} of the reference"
    lines += [
        f"reference score = {ref_score:.6g}",
        f"test score = {test_score:.6g}",
        f"rule: {rule}",
    ]
    return Verification(passed, "\n".join([*lines, "TEST PASS" if passed else "TEST FAIL", ""]))


def verify_test06(
    test_log: Path, scenario: str, *, dtype: str = "int32", eos_token_id: int = 2
) -> Verification:
    """TEST06 (SPEC §4.3): first tokens, at most one trailing EOS, and data length = token_count.

    `eos_token_id` 2 is the llama2/mixtral EOS (SPEC §2.6, §2.7); the first-token check is
    skipped for Offline, which has no FirstTokenComplete.
    """
    try:
        raw = json.loads(Path(test_log).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ResultsError(f"{test_log}: cannot read the TEST06 accuracy log ({exc})") from None
    if not isinstance(raw, list):
        raise ResultsError(f"{test_log}: expected a JSON array of accuracy-log entries")
    first: bool | None = None if scenario == "Offline" else True
    eos_ok = length_ok = True
    for item in raw:
        data = decode_payload(bytes.fromhex(str(item.get("data", ""))), dtype)
        if first is not None:
            token = item.get("token_data")
            head = decode_payload(bytes.fromhex(str(token)), dtype) if token else None
            if head is None or head.size == 0 or not (data[: head.size] == head).all():
                first = False
        trailing = 0
        for value in data[::-1]:
            if int(value) != eos_token_id:
                break
            trailing += 1
        eos_ok &= trailing <= 1
        length_ok &= item.get("token_count") == int(data.size)
    lines = [
        f"First token check pass: {'Skipped' if first is None else first}",
        f"EOS check pass: {eos_ok}",
        f"Sample length check pass: {length_ok}",
    ]
    if not raw:
        lines.append("the log holds no entries: nothing was checked")
    passed = bool(raw) and first is not False and eos_ok and length_ok
    return Verification(passed, "\n".join([*lines, "TEST06 verification complete", ""]))
