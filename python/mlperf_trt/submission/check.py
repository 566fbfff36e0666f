"""The self-check of a staged submission: what the official checker tests (SPEC §6) and we can know.

`check_submission` walks the tree and returns every problem it finds (it never stops at the
first), each with the file, what is wrong and how to fix it. Given the harness's results folder as
well, it adds what only the harness recorded (synthetic data, the built-in model, a shortened
duration, the null backend), which the official checker cannot see but which make a run
unsubmittable all the same.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from mlperf_trt.benchmarks import DEFAULT_ROUND, SCENARIOS, Workload, all_workloads, check_round
from mlperf_trt.errors import BenchmarkError, ResultsError, SubmissionError
from mlperf_trt.results import read_detail_log, submittable_problems, summarize
from mlperf_trt.submission.compliance import accuracy_delta_percent
from mlperf_trt.submission.tree import (
    ACCURACY_FILES,
    PERFORMANCE_FILES,
    find_results,
    read_resolved,
)
from mlperf_trt.submission.truncate import MAX_ACCURACY_LOG_SIZE, read_hash_line
from mlperf_trt.system import MEANINGFUL_FIELDS, REQUIRED_SYSTEM_FIELDS

__all__ = ["METRIC_PATTERNS", "Problem", "check_submission", "metric_values"]

# SPEC §1.3: the regexes the checker applies to accuracy.txt, per metric key.
METRIC_PATTERNS: dict[str, str] = {
    "acc": r"^(?:accuracy=|\{\"accuracy\"\s*:\s*)([\d.]+)",
    "mAP": r"mAP=([\d.]+)",
    "DICE": r"Accuracy: mean = ([\d.]+)",
    "F1": r"^\{[\"']exact_match[\"']\s*:\s*[\d.]+,\s*[\"']f1[\"']\s*:\s*([\d.]+)\}",
    "ROUGE1": r"'rouge1':\s*'?([\d.]+)'?",
    "ROUGE2": r"'rouge2':\s*'?([\d.]+)'?",
    "ROUGEL": r"'rougeL':\s*'?([\d.]+)'?",
    "GEN_LEN": r"'gen_len':\s*([\d.]+)",
    "TOKENS_PER_SAMPLE": r"'tokens_per_sample':\s*([\d.]+)",
    "gsm8k_accuracy": r"'gsm8k':\s*([\d.]+)",
    "mbxp_accuracy": r"'mbxp':\s*([\d.]+)",
    "AUC": r"^AUC=([\d.]+)",
    "CLIP_SCORE": r"'CLIP_SCORE':\s*'([\d.]+)'",
    "FID_SCORE": r"'FID_SCORE':\s*'([\d.]+)'",
}
_STATUSES = ("available", "preview", "rdi")
_SYSTEM_TYPES = ("datacenter", "edge", "datacenter,edge", "edge,datacenter")
_SUBMITTER_ENTRIES = ("systems", "code", "measurements", "results", "compliance", "documentation")
_MAX_FILE = 50 * 1024 * 1024  # SPEC §5.1: no file over 50 MB
_MODEL_INFO = (
    "input_data_types",
    "retraining",
    "starting_weights_filename",
    "weight_data_types",
    "weight_transformations",
)
# SPEC §2.9: the round's SDXL sample ids whose images the accuracy folder must hold.
_SDXL_IDS = {
    "v5.0": (4459, 4015, 2705, 1682, 4048, 4683, 3757, 1578, 3319, 95),
    "v4.1": (4459, 4015, 2705, 1682, 4048, 4683, 3757, 1578, 3319, 95),
}


@dataclass(frozen=True)
class Problem:
    file: str  # path relative to the submission root (or the results folder for harness records)
    what: str
    fix: str


def metric_values(text: str) -> dict[str, float]:
    """Every checker metric of SPEC §1.3 found in accuracy.txt text."""
    found: dict[str, float] = {}
    for key, pattern in METRIC_PATTERNS.items():
        for line in text.splitlines():
            match = re.search(pattern, line)
            if match:
                found[key] = float(match.group(1))
                break
    return found


class _Checker:
    def __init__(self, root: Path, round_: str) -> None:
        self.root, self.round = root, round_
        self.problems: list[Problem] = []
        self.names = {w.submission_name: w for w in all_workloads()}

    def add(self, path: Path | str, what: str, fix: str) -> None:
        path = Path(path)
        rel = path.relative_to(self.root) if path.is_relative_to(self.root) else path
        self.problems.append(Problem(str(rel), what, fix))

    # -- structure ------------------------------------------------------------------------------
    def run(self) -> None:
        for entry in sorted(self.root.iterdir()):
            if entry.is_dir() and entry.name in ("closed", "open", "network"):
                self.division(entry)
            elif not (entry.is_file() and entry.suffix in (".md", ".pdf")):
                self.add(entry, "not allowed at the top level", "keep only closed/ open/ network/")
        self.files()

    def division(self, folder: Path) -> None:
        for entry in sorted(folder.iterdir()):
            if entry.is_dir():
                self.submitter(folder.name, entry)
            else:
                self.add(entry, "a loose file under the division", "move it into a submitter")

    def submitter(self, division: str, base: Path) -> None:
        closed = division in ("closed", "network")
        for entry in sorted(base.iterdir()):
            allowed = entry.name in _SUBMITTER_ENTRIES or entry.name == "calibration.md"
            allowed |= entry.name == "model_mapping.json" and division == "open"
            if not allowed:
                self.add(entry, "not a folder of a submission (SPEC §5.1)", "remove it")
        types = self.systems(division, base)
        results = base / "results"
        if not results.is_dir():
            self.add(results, "missing", "stage the results (python -m mlperf_trt submit)")
            return
        for system in sorted(p for p in results.iterdir() if p.is_dir()):
            system_type = types.get(system.name)
            if system_type is None:
                self.add(base / "systems" / f"{system.name}.json", "missing", "describe it")
            for bench in sorted(p for p in system.iterdir() if p.is_dir()):
                workload = self.names.get(bench.name)
                if workload is None:
                    self.add(bench, f"not a benchmark of {self.round}", "use the folder names")
                    continue
                self.benchmark(base, system.name, bench, workload, system_type, closed)

    def systems(self, division: str, base: Path) -> dict[str, str]:
        types: dict[str, str] = {}
        for path in sorted((base / "systems").glob("*.json")):
            try:
                desc = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                self.add(path, f"not readable JSON ({exc})", "rewrite it")
                continue
            if not isinstance(desc, dict):
                self.add(path, "not a JSON object", "rewrite it")
                continue
            for field in REQUIRED_SYSTEM_FIELDS:
                if field not in desc:
                    self.add(path, f"required field {field} is missing", "add it (SPEC §5.3)")
                elif field in MEANINGFUL_FIELDS and not desc[field]:
                    self.add(path, f"field {field} is empty", "give it a value (SPEC §5.3)")
            if desc.get("status") not in _STATUSES:
                self.add(path, f"status {desc.get('status')!r}", f"one of {', '.join(_STATUSES)}")
            system_type = str(desc.get("system_type", ""))
            if system_type not in _SYSTEM_TYPES:
                self.add(path, f"system_type {system_type!r}", f"one of {', '.join(_SYSTEM_TYPES)}")
                system_type = "datacenter"
            if str(desc.get("submitter", "")).lower() != base.name.lower():
                self.add(path, "submitter differs from the folder name", f"write {base.name}")
            if desc.get("division") != division:
                self.add(path, "division differs from the folder", f"write {division}")
            types[path.stem] = system_type
        return types

    def benchmark(
        self,
        base: Path,
        system: str,
        bench: Path,
        workload: Workload,
        system_type: str | None,
        closed: bool,
    ) -> None:
        rules = workload.rules(self.round)
        allowed = (
            rules.scenarios_for(system_type or "datacenter") if closed else rules.all_scenarios
        )
        present = []
        for scen in sorted(p for p in bench.iterdir() if p.is_dir()):
            if scen.name not in SCENARIOS or scen.name not in allowed:
                self.add(
                    scen,
                    f"{scen.name} is not a scenario of {bench.name} for a {system_type} system"
                    f" in {self.round}",
                    f"submit {', '.join(allowed)}",
                )
                continue
            present.append(scen.name)
            self.scenario(base, system, workload, scen, closed)
        if closed:
            for scenario in allowed:
                if scenario not in present:
                    self.add(
                        bench / scenario,
                        f"required scenario {scenario} of {bench.name} is missing"
                        f" ({system_type} system, SPEC §2.0)",
                        f"run and stage {scenario}",
                    )
        if not (base / "code" / bench.name).exists():
            self.add(base / "code" / bench.name, "missing", "add the benchmark's code folder")

    def scenario(
        self, base: Path, system: str, workload: Workload, scen: Path, closed: bool
    ) -> None:
        self.performance(scen / "performance" / "run_1", workload, closed, compliance=False)
        self.accuracy(scen / "accuracy", workload, closed)
        rel = scen.relative_to(base / "results")
        self.measurements(base / "measurements" / rel, system, scen.name)
        if closed:
            for test in workload.rules(self.round).compliance_tests:
                self.compliance(base / "compliance" / rel / test, test, workload)

    # -- runs -----------------------------------------------------------------------------------
    def file_set(self, folder: Path, required: Iterable[str], optional: Iterable[str] = ()) -> bool:
        if not folder.is_dir():
            self.add(folder, "missing", "stage this run")
            return False
        names = {p.name for p in folder.iterdir() if p.is_file()}
        for name in required:
            if name not in names:
                self.add(folder / name, "missing", "copy it from the run's folder")
        for name in sorted(names - set(required) - set(optional)):
            self.add(folder / name, "not allowed in this folder (SPEC §6)", "remove it")
        return all(name in names for name in required)

    def performance(self, run: Path, workload: Workload, closed: bool, compliance: bool) -> None:
        optional = () if compliance else ("mlperf_log_accuracy.json", "mlperf_log_trace.json")
        if not self.file_set(run, PERFORMANCE_FILES, optional):
            return
        try:
            summary = summarize(run)
        except ResultsError as exc:
            self.add(run / "mlperf_log_detail.txt", str(exc), "rerun the benchmark")
            return
        rules = workload.rules(self.round)
        latency = rules.server_latency_ms
        for what in submittable_problems(
            summary,
            round_seeds=rules.loadgen_seeds,
            required_psc=rules.performance_sample_count,
            offline_min_samples=rules.offline_min_samples,
            server_latency_ns=int(latency * 1e6) if latency is not None else None,
            equal_issue=rules.equal_issue and closed,
        ):
            self.add(run / "mlperf_log_detail.txt", what, "rerun with --duration full (SPEC §6)")
        version = summary.loadgen_version.split()[0] if summary.loadgen_version else ""
        if version and not f"v{version}".startswith(self.round + "."):
            self.add(
                run / "mlperf_log_detail.txt",
                f"LoadGen {version} wrote this log; round {self.round} needs LoadGen"
                f" {self.round[1:]}.x (its seeds and mlperf.conf, SPEC §3.1)",
                f"install mlcommons-loadgen=={self.round[1:]}.* and rerun",
            )
        if rules.token_metrics == "measured":
            self.tokens(run, summary.scenario, rules.ttft_ms, rules.tpot_ms)

    def tokens(
        self, run: Path, scenario: str, ttft_ms: float | None, tpot_ms: float | None
    ) -> None:
        log = read_detail_log(run / "mlperf_log_detail.txt")
        where = run / "mlperf_log_detail.txt"
        if str(log.get("requested_use_token_latencies", "")).lower() not in ("true", "1"):
            self.add(where, "requested_use_token_latencies is not true", "keep mlperf.conf's")
        if scenario != "Server":
            return
        for key, limit in (
            ("result_first_token_99.00_percentile_latency_ns", ttft_ms),
            ("result_time_per_output_token_99.00_percentile_ns", tpot_ms),
        ):
            value = log.get(key)
            if limit is not None and (
                not isinstance(value, (int, float)) or not value < limit * 1e6
            ):
                self.add(where, f"{key} = {value!r}, must be < {limit * 1e6:.0f}", "lower the QPS")

    def accuracy(self, folder: Path, workload: Workload, closed: bool) -> None:
        optional = ["mlperf_log_trace.json", "results.json", ".gitkeep"]
        sdxl = workload.benchmark.loadgen_key == "stable-diffusion-xl"
        if not self.file_set(folder, ACCURACY_FILES, optional):
            return
        txt = folder / "accuracy.txt"
        values = metric_values(txt.read_text(encoding="utf-8", errors="replace"))
        for target in workload.accuracy_targets(self.round):
            value = values.get(target.key)
            if value is None:
                self.add(txt, f"no line matches the {target.key} regex (SPEC §1.3)", "rescore")
            elif closed and not target.passes(value):
                self.add(
                    txt,
                    f"{target.key} = {value:g} misses the target (>= {target.lower!r},"
                    f" <= {target.upper!r})",
                    "improve accuracy (a higher precision) and rerun the accuracy run",
                )
        if read_hash_line(txt) is None:
            self.add(txt, "no hash= line (SPEC §1.3)", "run truncate_accuracy_log.py")
        log = folder / "mlperf_log_accuracy.json"
        if log.stat().st_size >= MAX_ACCURACY_LOG_SIZE:
            self.add(log, "not truncated (>= 10 KB)", "run truncate_accuracy_log.py")
        try:
            detail = read_detail_log(folder / "mlperf_log_detail.txt")
        except ResultsError as exc:
            self.add(folder / "mlperf_log_detail.txt", str(exc), "rerun the accuracy run")
            return
        for error in detail.errors:
            self.add(folder / "mlperf_log_detail.txt", f"LoadGen error: {error}", "fix and rerun")
        size = workload.rules(self.round).dataset_size
        count = detail.get("qsl_reported_total_count")
        if count != size:
            self.add(
                folder / "mlperf_log_detail.txt",
                f"the accuracy run covered {count} samples, the data set has {size}",
                "run on the full official data set (the v5.1+ checker enforces the size)",
            )
        if sdxl:
            for sample in _SDXL_IDS.get(self.round, ()):
                if not (folder / "images" / f"{sample}.png").is_file():
                    self.add(folder / "images" / f"{sample}.png", "missing", "dump the images")

    def measurements(self, folder: Path, system: str, scenario: str) -> None:
        if not folder.is_dir():
            self.add(folder, "missing", "stage the measurements")
            return
        for name in ("README.md", "user.conf") + (("mlperf.conf",) if self.round == "v4.1" else ()):
            path = folder / name
            if not path.is_file() or path.stat().st_size == 0:
                self.add(
                    path,
                    "missing or empty",
                    "copy the LoadGen release's file" if name == "mlperf.conf" else "write it",
                )
        pattern = f"{system}_*_{scenario}.json" if self.round == "v4.1" else f"{system}*.json"
        found = sorted(folder.glob(pattern))
        if not found:
            self.add(folder / f"{system}_<implementation>_{scenario}.json", "missing", "write it")
        for path in found[:1]:
            try:
                info = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                info = {}
            for key in _MODEL_INFO:
                if not (isinstance(info, dict) and info.get(key)):
                    self.add(path, f"field {key} is missing or empty", "fill it (SPEC §5.3)")

    def compliance(self, folder: Path, test: str, workload: Workload) -> None:
        if not folder.is_dir():
            self.add(
                folder, f"{test} is missing (SPEC §4)", f"python -m mlperf_trt audit --test {test}"
            )
            return
        if test in ("TEST01", "TEST04", "TEST05"):
            self.performance(folder / "performance" / "run_1", workload, True, compliance=True)
            self.verdict(folder / "verify_performance.txt", ("TEST PASS",))
        if test == "TEST01":
            text = self.verdict(folder / "verify_accuracy.txt", ())
            acc = folder / "accuracy"
            if "TEST PASS" not in text:
                self.fallback(acc, workload)
            log = acc / "mlperf_log_accuracy.json"
            if log.is_file() and log.stat().st_size >= MAX_ACCURACY_LOG_SIZE:
                self.add(log, "not truncated (>= 10 KB)", "run truncate_accuracy_log.py")
        if test == "TEST06":
            self.verdict(
                folder / "verify_accuracy.txt",
                ("EOS check pass: True", "Sample length check pass: True"),
            )
            text = (
                (folder / "verify_accuracy.txt").read_text(errors="replace")
                if (folder / "verify_accuracy.txt").is_file()
                else ""
            )
            if text and not re.search(r"First token check pass: (True|Skipped)", text):
                self.add(folder / "verify_accuracy.txt", "first-token check failed", "fix the SUT")

    def verdict(self, path: Path, needed: tuple[str, ...]) -> str:
        if not path.is_file():
            self.add(path, "missing", "rerun the compliance test")
            return ""
        text = path.read_text(encoding="utf-8", errors="replace")
        for line in needed:
            if line not in text:
                self.add(path, f"does not say {line!r}", "find why the test failed and rerun it")
        return text

    def fallback(self, acc: Path, workload: Workload) -> None:
        base, comp = acc / "baseline_accuracy.txt", acc / "compliance_accuracy.txt"
        if not (base.is_file() and comp.is_file()):
            self.add(acc, "TEST01 accuracy failed and no baseline/compliance accuracy", "rerun")
            return
        b = metric_values(base.read_text(errors="replace"))
        c = metric_values(comp.read_text(errors="replace"))
        for key, value in b.items():
            other = c.get(key)
            delta = accuracy_delta_percent(workload, key)
            if not other or abs(1 - value / other) * 100 > delta:
                self.add(acc, f"{key}: baseline {value} vs TEST01 {other} beyond {delta}%", "rerun")

    # -- files ----------------------------------------------------------------------------------
    def files(self) -> None:
        for path in sorted(self.root.rglob("*")):
            if path.name.startswith(".") or " " in path.name:
                self.add(path, "name starts with '.' or has a space (SPEC §5.1)", "rename it")
            if path.name == "__pycache__":
                self.add(path, "__pycache__ is not allowed", "remove it")
            if path.is_symlink() and not path.exists():
                self.add(path, "broken symlink", "remove it")
            elif path.is_dir() and not any(path.iterdir()):
                self.add(path, "empty folder", "remove it")
            elif path.is_file():
                size = path.stat().st_size
                if size == 0:
                    self.add(path, "empty file", "remove it or fill it")
                elif size > _MAX_FILE:
                    self.add(path, "larger than 50 MB (SPEC §5.1)", "truncate or drop it")

    # -- harness records ------------------------------------------------------------------------
    def records(self, results_dir: Path) -> None:
        found, _ = find_results(results_dir)
        for item in found:
            for run in (item.performance, item.accuracy):
                resolved = read_resolved(run)
                if not resolved:
                    continue
                rel = str(run)  # harness records: the results path, not a submission file
                inputs = resolved.get("inputs")
                if isinstance(inputs, dict) and inputs.get("synthetic"):
                    self.add(rel, "synthetic data", "run on the official data set (--data-dir)")
                notes = resolved.get("notes")
                if isinstance(notes, list) and any("built-in" in str(n) for n in notes):
                    self.add(rel, "the built-in model, not the official weights", "--model-path")
                if resolved.get("duration") not in (None, "full"):
                    self.add(
                        rel, f"--duration {resolved['duration']}", "rerun with --duration full"
                    )
                if resolved.get("backend") == "null":
                    self.add(rel, "the null backend does no inference", "use --backend trt or ort")


def check_submission(
    root: Path, *, round_: str = DEFAULT_ROUND, results_dir: Path | None = None
) -> list[Problem]:
    """Every problem of the staged tree at `root` (SPEC §5, §6); [] when the self-check passes.

    With `results_dir` (the harness results the tree was staged from), also what the harness
    recorded about each run. SubmissionError only when `root` is not a folder at all.
    """
    root = Path(root).resolve()
    try:
        round_ = check_round(round_)
    except BenchmarkError as exc:
        raise SubmissionError(str(exc)) from None
    if not root.is_dir():
        raise SubmissionError(f"{root}: no such folder; stage one with `submit` first")
    checker = _Checker(root, round_)
    checker.run()
    if results_dir is not None:
        checker.records(Path(results_dir).resolve())
    return checker.problems
