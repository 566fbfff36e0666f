"""`report`: one row per run found under a results folder, and a latency plot (PNG).

Rows cover performance and accuracy runs and compliance tests (SPEC §3.6, §4, §6): the metric,
LoadGen's verdict, accuracy against the round's targets, and whether the run could be submitted
(or why not). The plot shows the latency distribution of every Server and SingleStream run: from
the per-sample events of mlperf_log_trace.json when the run kept a trace (enable_trace), else
from the percentiles of the detail log.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from mlperf_trt.benchmarks import DEFAULT_ROUND, ROUNDS
from mlperf_trt.errors import ResultsError
from mlperf_trt.results import RunSummary, submittable_problems, summarize
from mlperf_trt.submission.check import metric_values
from mlperf_trt.submission.tree import ScenarioResults, find_results, read_resolved

__all__ = ["RunRow", "collect_runs", "format_table", "plot_latencies", "trace_latencies_ns"]

_TRACE_EVENT = re.compile(r'"name":"Sample".*?"ph":"([be])".*?"id":(\d+),"ts":([\d.]+)')


@dataclass(frozen=True)
class RunRow:
    system: str
    benchmark: str  # the workload name, e.g. resnet50
    scenario: str
    mode: str  # performance | accuracy | TEST01 | TEST04 | TEST05 | TEST06
    metric: str  # what the value is ("Samples/s", "acc", ...); "" when none
    value: float | None
    validity: str  # VALID | INVALID | "" (accuracy runs have no LoadGen verdict)
    accuracy: str  # "acc 76.1 >= 75.6954 PASS", a compliance verdict, or ""
    submittable: bool
    why_not: tuple[str, ...]
    path: Path
    latencies_ns: tuple[float, ...] = field(default=(), repr=False)  # per sample, trace only
    percentiles_ns: tuple[tuple[float, float], ...] = field(default=(), repr=False)


def _round(resolved: dict[str, object]) -> str:
    value = str(resolved.get("round") or DEFAULT_ROUND)
    return value if value in ROUNDS else DEFAULT_ROUND


def _records(resolved: dict[str, object]) -> list[str]:
    """What the harness recorded that makes a run unsubmittable (see check.py)."""
    why = []
    inputs = resolved.get("inputs")
    if isinstance(inputs, dict) and inputs.get("synthetic"):
        why.append("synthetic data")
    notes = resolved.get("notes")
    if isinstance(notes, list) and any("built-in" in str(n) for n in notes):
        why.append("built-in model")
    if resolved.get("duration") not in (None, "full"):
        why.append(f"--duration {resolved['duration']}")
    if resolved.get("backend") == "null":
        why.append("null backend")
    return why


def trace_latencies_ns(trace: Path) -> tuple[float, ...]:
    """Per-sample latencies from LoadGen's trace ("Sample" begin/end events, ts in µs).

    LoadGen 5.0 writes some argument strings with doubled quotes, so the file is not valid JSON;
    the events are read line by line.
    """
    begins: dict[str, float] = {}
    out: list[float] = []
    try:
        with open(trace, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if '"name":"Sample"' not in line:
                    continue
                match = _TRACE_EVENT.search(line.replace(", ", ","))
                if not match:
                    continue
                phase, ident, ts = match.group(1), match.group(2), float(match.group(3))
                if phase == "b":
                    begins[ident] = ts
                elif ident in begins:
                    out.append((ts - begins.pop(ident)) * 1000.0)
    except OSError:
        return ()
    return tuple(out)


def _performance_row(item: ScenarioResults, run: Path, mode: str) -> RunRow | None:
    resolved = read_resolved(run)
    try:
        summary = summarize(run)
    except ResultsError as exc:
        return RunRow(
            item.system_id,
            item.workload.name,
            item.scenario,
            mode,
            "",
            None,
            "INVALID",
            "",
            False,
            (str(exc),),
            run,
        )
    rules = item.workload.rules(_round(resolved))
    latency = rules.server_latency_ms
    why = submittable_problems(
        summary,
        round_seeds=rules.loadgen_seeds,
        required_psc=rules.performance_sample_count,
        offline_min_samples=rules.offline_min_samples,
        server_latency_ns=int(latency * 1e6) if latency is not None else None,
        equal_issue=rules.equal_issue,
    )
    why = [*_records(resolved), *why]
    trace = run / "mlperf_log_trace.json"
    samples = trace_latencies_ns(trace) if trace.is_file() and trace.stat().st_size else ()
    return RunRow(
        item.system_id,
        item.workload.name,
        item.scenario,
        mode,
        summary.metric_name,
        summary.metric_value,
        "VALID" if summary.valid else "INVALID",
        "",
        not why,
        tuple(why),
        run,
        samples,
        _percentile_points(summary),
    )


def _percentile_points(summary: RunSummary) -> tuple[tuple[float, float], ...]:
    points = [(float(p), v) for p, v in summary.latency_percentiles_ns.items()]
    if summary.min_latency_ns is not None:
        points.insert(0, (0.0, summary.min_latency_ns))
    if summary.max_latency_ns is not None:
        points.append((100.0, summary.max_latency_ns))
    return tuple(points)


def _accuracy_row(item: ScenarioResults) -> RunRow:
    run = item.accuracy
    resolved = read_resolved(run)
    round_ = _round(resolved)
    txt = run / "accuracy.txt"
    why = _records(resolved)
    if not txt.is_file():
        return RunRow(
            item.system_id,
            item.workload.name,
            item.scenario,
            "accuracy",
            "",
            None,
            "",
            "no accuracy.txt",
            False,
            (*why, "no accuracy.txt"),
            run,
        )
    values = metric_values(txt.read_text(encoding="utf-8", errors="replace"))
    parts, ok = [], True
    first: tuple[str, float] | None = None
    for target in item.workload.accuracy_targets(round_):
        value = values.get(target.key)
        if value is None:
            parts.append(f"{target.key} missing")
            ok = False
            continue
        first = first or (target.key, value)
        passed = target.passes(value)
        ok &= passed
        bound = f">= {target.lower:g}" if target.lower is not None else ""
        if target.upper is not None:
            bound += f" <= {target.upper:g}"
        parts.append(f"{target.key} {value:g} {bound} {'PASS' if passed else 'FAIL'}")
    if not ok:
        why.append(f"accuracy below the {round_} target")
    return RunRow(
        item.system_id,
        item.workload.name,
        item.scenario,
        "accuracy",
        first[0] if first else "",
        first[1] if first else None,
        "",
        "; ".join(parts),
        not why,
        tuple(why),
        run,
    )


def _test_row(item: ScenarioResults, test: str) -> RunRow:
    folder = item.path / test
    verdicts = []
    for name in ("verify_accuracy.txt", "verify_performance.txt"):
        path = folder / name
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            passed = "TEST PASS" in text or (
                test == "TEST06"
                and "EOS check pass: True" in text
                and "Sample length check pass: True" in text
                and re.search(r"First token check pass: (True|Skipped)", text) is not None
            )
            verdicts.append(f"{name[7:-4]} {'PASS' if passed else 'FAIL'}")
    run = folder / "performance" / "run_1"
    row = _performance_row(item, run, test) if (run / "mlperf_log_detail.txt").is_file() else None
    why = list(row.why_not) if row else []
    if not verdicts or any(v.endswith("FAIL") for v in verdicts):
        why.append("compliance test failed" if verdicts else "no verification output")
    return RunRow(
        item.system_id,
        item.workload.name,
        item.scenario,
        test,
        row.metric if row else "",
        row.value if row else None,
        row.validity if row else "",
        ", ".join(verdicts) or "not verified",
        not why,
        tuple(why),
        folder,
    )


def collect_runs(results_dir: Path) -> list[RunRow]:
    """One row per run under `results_dir` (performance, accuracy, each compliance test)."""
    found, _ = find_results(results_dir)
    rows: list[RunRow] = []
    for item in found:
        if (item.performance / "mlperf_log_detail.txt").is_file():
            row = _performance_row(item, item.performance, "performance")
            if row is not None:
                rows.append(row)
        if (item.accuracy / "mlperf_log_detail.txt").is_file():
            rows.append(_accuracy_row(item))
        rows.extend(_test_row(item, test) for test in item.tests())
    return rows


def format_table(rows: list[RunRow]) -> str:
    """A fixed-width table, one line per run, then the reasons a run is not submittable."""
    header = (
        "system",
        "benchmark",
        "scenario",
        "mode",
        "metric",
        "value",
        "result",
        "accuracy",
        "submittable",
    )
    body = []
    for row in rows:
        value = "" if row.value is None else f"{row.value:.6g}"
        body.append(
            (
                row.system,
                row.benchmark,
                row.scenario,
                row.mode,
                row.metric,
                value,
                row.validity,
                row.accuracy,
                "yes" if row.submittable else "no",
            )
        )
    widths = [max(len(str(r[i])) for r in (header, *body)) for i in range(len(header))]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in (header, *body)
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for row in rows:
        if row.why_not:
            lines.append(
                f"{row.benchmark} {row.scenario} {row.mode}: not submittable: "
                + "; ".join(row.why_not)
            )
    return "\n".join(lines) + "\n"


def plot_latencies(rows: list[RunRow], out: Path) -> Path | None:
    """A PNG with the latency distribution of each Server/SingleStream performance run.

    Returns `out`, or None when no such run exists (nothing is written then).
    """
    chosen = [
        r
        for r in rows
        if r.scenario in ("Server", "SingleStream")
        and r.mode == "performance"
        and (r.latencies_ns or r.percentiles_ns)
    ]
    if not chosen:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(chosen), 1, figsize=(8, 3 * len(chosen)), squeeze=False)
    for ax, row in zip(axes[:, 0], chosen, strict=True):
        title = f"{row.system} {row.benchmark} {row.scenario} ({row.validity})"
        if row.latencies_ns:
            ax.hist([v / 1e6 for v in row.latencies_ns], bins=60, color="tab:blue")
            ax.set_ylabel("samples")
            title += f", {len(row.latencies_ns)} samples from the trace"
        else:
            pcts = [p for p, _ in row.percentiles_ns]
            ax.plot([v / 1e6 for _, v in row.percentiles_ns], pcts, marker="o")
            ax.set_ylabel("percentile")
            title += ", percentiles from the detail log"
        ax.set_xlabel("latency (ms)")
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png", dpi=90)
    plt.close(fig)
    return out
