"""Typed reading of LoadGen's output files (SPEC.md §3.6) and the checks of SPEC.md §6.

The detail log (`mlperf_log_detail.txt`) is the source of truth: one JSON object per line after
the prefix ``:::MLLOG ``, with `key`, `value` and `metadata.is_error` / `metadata.is_warning`.
Values are JSON numbers, strings, booleans, lists or objects; every reader here accepts a number,
a numeric string or a boolean where it expects a number or a flag.

Key names below were checked against LoadGen 5.0.21 runs of all four scenarios (plus token and
accuracy runs). Per scenario, LoadGen logs:

* all: result_validity, result_min_duration_met, result_min_queries_met, early_stopping_met,
  result_query_count, result_{min,max,mean}_latency_ns, result_XX.XX_percentile_latency_ns,
  num_errors;
  result_invalid_reason (a recommendation) only when INVALID;
* Offline: result_samples_per_second; early_stopping_result is empty;
* Server: result_perf_constraints_met, result_scheduled_samples_per_sec,
  result_completed_samples_per_sec, result_overlatency_query_count;
* SingleStream: early_stopping_latency_ss (p90 estimate), early_stopping_latency_ms (p99 estimate),
  result_qps_with_loadgen_overhead, result_qps_without_loadgen_overhead;
* MultiStream: early_stopping_latency_ms, result_{min,max,mean}_query_latency_ns,
  result_XX.XX_percentile_per_query_latency_ns;
* tokens: result_tokens_per_second (Offline), result_completed_tokens_per_second (Server, also in
  SingleStream), result_inferred_tokens_per_second / result_inferred_completed_tokens_per_second
  (gptj), early_stopping_ttft_result / early_stopping_tpot_result instead of
  early_stopping_result; only requested_use_token_latencies is logged (no infer_token_latencies).
An AccuracyOnly run logs settings and messages but no result_* entries.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from mlperf_trt.errors import ResultsError

__all__ = [
    "DETAIL_LOG",
    "SUMMARY_LOG",
    "DetailLog",
    "RunSummary",
    "format_summary",
    "read_detail_log",
    "submittable_problems",
    "summarize",
]

DETAIL_LOG = "mlperf_log_detail.txt"
SUMMARY_LOG = "mlperf_log_summary.txt"
_MARKER = ":::MLLOG "
# SPEC.md §6: the checker requires effective_min_duration_ms >= 600000 for a submission run.
SUBMISSION_MIN_DURATION_MS = 600_000
_PERCENTILE_KEY = re.compile(r"result_(\d+\.\d+)_percentile_latency_ns")


@dataclass(frozen=True)
class DetailLog:
    """The entries of one `mlperf_log_detail.txt`."""

    entries: Mapping[str, object]  # key -> value of the LAST occurrence of each key
    errors: tuple[str, ...]  # every entry with metadata.is_error true, as "key: value"
    warnings: tuple[str, ...]  # every entry with metadata.is_warning true, as "key: value"

    def get(self, key: str, default: object = None) -> object:
        """The value logged for `key`, or `default` when LoadGen did not log it."""
        return self.entries.get(key, default)


def _is_true(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return False


def read_detail_log(path: Path) -> DetailLog:
    """Read a LoadGen detail log: every line starting with ``:::MLLOG `` is one JSON entry."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ResultsError(
            f"{path} does not exist: expected LoadGen's detail log there; run the benchmark (or"
            " point at the folder that holds mlperf_log_detail.txt)"
        ) from None
    except (OSError, UnicodeDecodeError) as err:
        raise ResultsError(f"cannot read the LoadGen detail log {path}: {err}") from err
    entries: dict[str, object] = {}
    errors: list[str] = []
    warnings: list[str] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.startswith(_MARKER):
            continue
        try:
            record = json.loads(line[len(_MARKER) :])
        except json.JSONDecodeError as err:
            raise ResultsError(
                f"{path}, line {lineno}: not a JSON LoadGen entry ({err}); the log is damaged or"
                " was cut off (a killed run); rerun the benchmark"
            ) from None
        if not isinstance(record, dict) or not isinstance(record.get("key"), str):
            raise ResultsError(
                f"{path}, line {lineno}: a LoadGen entry needs a string 'key' field; the file is"
                " not a LoadGen detail log"
            )
        key = record["key"]
        value = record.get("value")
        entries[key] = value
        metadata = record.get("metadata")
        if isinstance(metadata, dict):
            if _is_true(metadata.get("is_error")):
                errors.append(f"{key}: {value}")
            if _is_true(metadata.get("is_warning")):
                warnings.append(f"{key}: {value}")
    if not entries:
        raise ResultsError(
            f"{path} has no ':::MLLOG' entries: expected LoadGen's detail log; the run did not"
            " start or the file is something else"
        )
    return DetailLog(MappingProxyType(entries), tuple(errors), tuple(warnings))


@dataclass(frozen=True)
class RunSummary:
    """What one LoadGen run reported (SPEC.md §3.6), in the terms of the submission checker (§6)."""

    scenario: str  # "Offline", "Server", "SingleStream", "MultiStream"
    mode: str  # effective_test_mode: "PerformanceOnly", "AccuracyOnly", ...
    # LoadGen's own verdict (result_validity == "VALID"). An accuracy run has no verdict: there it
    # means "no errors logged". Errors fail the checker even when VALID (SPEC.md §3.6).
    valid: bool
    invalid_reasons: tuple[str, ...]
    metric_name: str  # SPEC.md §6 "Reported metric"; "" for a run without one (accuracy mode)
    metric_value: float  # 0.0 when metric_name is ""
    latency_percentiles_ns: Mapping[str, float]  # "50.00", "90.00", ... -> ns (sample latencies)
    min_latency_ns: float | None
    max_latency_ns: float | None
    mean_latency_ns: float | None
    samples_per_second: float | None  # Offline result_samples_per_second, Server completed/s
    effective: Mapping[str, object]  # every effective_* entry, key without the prefix
    loadgen_version: str
    errors: tuple[str, ...]
    warnings: tuple[str, ...]


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _integer(value: object) -> int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)  # exact for u64 seeds, which a float would round
        except ValueError:
            number = _number(text)
            return int(number) if number is not None and number.is_integer() else None
    return None


def _percentile_label(fraction: object, default: float) -> str:
    number = _number(fraction)
    if number is None or not 0 < number < 1:
        number = default
    return f"p{number * 100:g}"


def _metric(log: DetailLog, scenario: str, path: Path) -> tuple[str, float]:
    """The reported metric of SPEC.md §6 for `scenario`, read from the detail log."""

    def nonzero(key: str) -> float | None:
        number = _number(log.get(key))
        return number if number is not None and number != 0 else None

    def required(key: str) -> float:
        number = _number(log.get(key))
        if number is None:
            raise ResultsError(
                f"{path}: no {key} entry for this {scenario} run; the run did not finish or the"
                " log was cut off; rerun the benchmark"
            )
        return number

    if scenario == "Offline":
        # SPEC.md §6: llama2/mixtral report tokens/s, gptj inferred tokens/s.
        if (tokens := nonzero("result_tokens_per_second")) is not None:
            return "Tokens/s", tokens
        if (tokens := nonzero("result_inferred_tokens_per_second")) is not None:
            return "Tokens/s (inferred)", tokens
        return "Samples/s", required("result_samples_per_second")
    if scenario == "Server":
        if (tokens := nonzero("result_completed_tokens_per_second")) is not None:
            return "Completed tokens/s", tokens
        if (tokens := nonzero("result_inferred_completed_tokens_per_second")) is not None:
            return "Completed tokens/s (inferred)", tokens
        return "Completed samples/s", required("result_completed_samples_per_sec")
    if scenario in ("SingleStream", "MultiStream"):
        single = scenario == "SingleStream"
        label = _percentile_label(
            log.get("effective_target_latency_percentile"), 0.90 if single else 0.99
        )
        # SPEC.md §6: SingleStream reports early_stopping_latency_ss, MultiStream
        # early_stopping_latency_ms (the per-query p99 estimate), both in ms.
        key = "early_stopping_latency_ss" if single else "early_stopping_latency_ms"
        what = f"{label} latency" if single else f"{label} latency per query"
        estimate = _number(log.get(key))
        if estimate is not None:
            return f"{what} (ms, early-stopping estimate)", estimate / 1e6
        # Without an early-stopping estimate (it was not met), fall back to the plain percentile.
        percent = label[1:]
        fallback = (
            f"result_{float(percent):.2f}_percentile_latency_ns"
            if single
            else f"result_{float(percent):.2f}_percentile_per_query_latency_ns"
        )
        return f"{what} (ms)", required(fallback) / 1e6
    raise ResultsError(
        f"{path}: effective_scenario {scenario!r} is not one of SingleStream, MultiStream, Server,"
        " Offline"
    )


def summarize(run_dir: Path) -> RunSummary:
    """Read `run_dir/mlperf_log_detail.txt` into a RunSummary."""
    run_dir = Path(run_dir)
    path = run_dir / DETAIL_LOG
    log = read_detail_log(path)
    scenario = log.get("effective_scenario", log.get("requested_scenario"))
    if not isinstance(scenario, str) or not scenario:
        raise ResultsError(
            f"{path}: no effective_scenario entry; LoadGen logs it when a test starts, so this run"
            " never started; rerun the benchmark"
        )
    mode_value = log.get("effective_test_mode", log.get("requested_test_mode"))
    mode = mode_value if isinstance(mode_value, str) else ""
    validity = log.get("result_validity")

    reasons: list[str] = []
    if validity is None:
        if mode in ("PerformanceOnly", "SubmissionRun", "FindPeakPerformance"):
            raise ResultsError(
                f"{path}: no result_validity entry in a {mode} run; LoadGen writes it when the"
                " test ends, so the run did not finish; rerun the benchmark"
            )
        valid = not log.errors  # accuracy runs have no LoadGen verdict
        metric_name, metric_value = "", 0.0
    else:
        valid = str(validity).strip().upper() == "VALID"
        # SPEC.md §3.6: the four sub-checks behind "Result is : VALID".
        for key, reason in (
            ("result_min_duration_met", "min duration not met"),
            ("result_min_queries_met", "min queries not met"),
            ("result_perf_constraints_met", "latency constraint not met"),
            ("early_stopping_met", "early stopping not met"),
        ):
            if key in log.entries and not _is_true(log.get(key)):
                reasons.append(reason)
        recommendation = log.get("result_invalid_reason")
        if not valid and isinstance(recommendation, str) and recommendation.strip():
            reasons.append(f"LoadGen recommends: {recommendation.strip()}")
        if not valid and not reasons:
            reasons.append(f"LoadGen reported result_validity {validity!r}")
        metric_name, metric_value = _metric(log, scenario, path)
    reasons.extend(f"LoadGen error {error}" for error in log.errors)

    percentiles: dict[str, float] = {}
    for key, value in log.entries.items():
        match = _PERCENTILE_KEY.fullmatch(key)
        number = _number(value)
        if match and number is not None:
            percentiles[match.group(1)] = number
    if scenario == "Offline":
        throughput = _number(log.get("result_samples_per_second"))
    elif scenario == "Server":
        throughput = _number(log.get("result_completed_samples_per_sec"))
    else:
        throughput = None
    effective = {
        key[len("effective_") :]: value
        for key, value in log.entries.items()
        if key.startswith("effective_")
    }
    version = log.get("loadgen_version")
    return RunSummary(
        scenario=scenario,
        mode=mode,
        valid=valid,
        invalid_reasons=tuple(reasons),
        metric_name=metric_name,
        metric_value=metric_value,
        latency_percentiles_ns=MappingProxyType(
            dict(sorted(percentiles.items(), key=lambda item: float(item[0])))
        ),
        min_latency_ns=_number(log.get("result_min_latency_ns")),
        max_latency_ns=_number(log.get("result_max_latency_ns")),
        mean_latency_ns=_number(log.get("result_mean_latency_ns")),
        samples_per_second=throughput,
        effective=MappingProxyType(effective),
        loadgen_version=version if isinstance(version, str) else "",
        errors=log.errors,
        warnings=log.warnings,
    )


def submittable_problems(
    summary: RunSummary,
    *,
    round_seeds: tuple[int, int, int],
    required_psc: int,
    offline_min_samples: int,
    server_latency_ns: int | None,
    equal_issue: bool,
) -> list[str]:
    """The SPEC.md §6 performance-run checks that the detail log answers; [] means submittable.

    `round_seeds` are the (qsl, sample_index, schedule) seeds of the target round (SPEC.md §3.3),
    `required_psc` the benchmark's performance sample count, `offline_min_samples` its Offline
    minimum, `server_latency_ns` its Server latency bound (None: no sample-latency bound, e.g. the
    token-latency LLMs) and `equal_issue` whether the round requires sample_concatenate_permutation.
    """
    problems: list[str] = []
    eff = summary.effective

    def eff_int(name: str) -> int | None:
        value = _integer(eff.get(name))
        if value is None:
            problems.append(
                f"the detail log has no usable effective_{name} (found {eff.get(name)!r}); the"
                " run is incomplete or not from LoadGen"
            )
        return value

    if summary.mode != "PerformanceOnly":
        problems.append(
            f"the run is in {summary.mode or 'an unknown'} mode; a performance result must come"
            " from a PerformanceOnly run (SPEC.md §6.5)"
        )
    if not summary.valid:
        why = [r for r in summary.invalid_reasons if not r.startswith("LoadGen error")]
        problems.append(
            "LoadGen reported the result INVALID"
            + (f" ({'; '.join(why)})" if why else "")
            + "; the checker needs result_validity VALID"
        )
    if summary.errors:
        problems.append(
            f"the detail log holds {len(summary.errors)} LoadGen error(s), and the checker rejects"
            f" any error even in a VALID run: {'; '.join(summary.errors)}"
        )
    min_duration = eff_int("min_duration_ms")
    if min_duration is not None and min_duration < SUBMISSION_MIN_DURATION_MS:
        problems.append(
            f"effective_min_duration_ms is {min_duration}, the checker needs at least"
            f" {SUBMISSION_MIN_DURATION_MS} (a shortened run cannot be submitted)"
        )
    psc = eff_int("performance_sample_count")
    if psc is not None and psc < required_psc:
        problems.append(
            f"effective_performance_sample_count is {psc}, the benchmark needs at least"
            f" {required_psc}"
        )
    for name, expected in zip(
        ("qsl_rng_seed", "sample_index_rng_seed", "schedule_rng_seed"), round_seeds, strict=True
    ):
        found = eff_int(name)
        if found is not None and found != expected:
            problems.append(
                f"effective_{name} is {found}, the round needs {expected}; use the LoadGen release"
                " of the target round and do not set seeds in user.conf (SPEC.md §3.3)"
            )
    if equal_issue and not _is_true(eff.get("sample_concatenate_permutation")):
        problems.append(
            "effective_sample_concatenate_permutation is"
            f" {eff.get('sample_concatenate_permutation')!r}, the benchmark needs equal issue"
            " (true, set by the built-in mlperf.conf)"
        )
    if summary.scenario == "Offline":
        samples = eff_int("samples_per_query")
        if samples is not None and samples < offline_min_samples:
            problems.append(
                f"effective_samples_per_query is {samples}, Offline needs at least"
                f" {offline_min_samples} samples in its query"
            )
        queries = eff_int("min_query_count")
        if queries is not None and queries < 1:
            problems.append(f"effective_min_query_count is {queries}, Offline needs at least 1")
    if summary.scenario == "Server" and server_latency_ns is not None:
        latency = eff_int("target_latency_ns")
        if latency is not None and latency > server_latency_ns:
            problems.append(
                f"effective_target_latency_ns is {latency}, the benchmark's Server bound is"
                f" {server_latency_ns} ns"
            )
    return problems


def _ms(value_ns: float | None) -> str:
    if value_ns is None or not math.isfinite(value_ns):
        return "n/a"
    return f"{value_ns / 1e6:.3f}"


def format_summary(summary: RunSummary) -> str:
    """A one-screen human summary of a run."""
    lines = [
        f"Scenario : {summary.scenario}",
        f"Mode     : {summary.mode}",
    ]
    if summary.metric_name:
        lines.append(f"{summary.metric_name} : {summary.metric_value:.6g}")
        verdict = "VALID" if summary.valid else "INVALID"
        if summary.valid and summary.errors:
            verdict += " (but LoadGen logged errors, which the submission checker rejects)"
        lines.append(f"Result is : {verdict}")
    else:
        lines.append("Result is : (accuracy run: no performance verdict; see accuracy.txt)")
    lines.extend(f"  * {reason}" for reason in summary.invalid_reasons)
    if summary.samples_per_second is not None and not summary.metric_name.startswith(
        ("Samples", "Completed samples")
    ):
        lines.append(f"Samples/s : {summary.samples_per_second:.6g}")
    if summary.latency_percentiles_ns or summary.mean_latency_ns is not None:
        lines.append(
            f"Latency (ms): min {_ms(summary.min_latency_ns)}  mean {_ms(summary.mean_latency_ns)}"
            f"  max {_ms(summary.max_latency_ns)}"
        )
        lines.append(
            "  "
            + "  ".join(
                f"p{float(label):g} {_ms(value)}"
                for label, value in summary.latency_percentiles_ns.items()
            )
        )
    lines.append(f"Errors   : {len(summary.errors)}   Warnings: {len(summary.warnings)}")
    lines.append(f"LoadGen  : {summary.loadgen_version or 'unknown'}")
    return "\n".join(lines) + "\n"
