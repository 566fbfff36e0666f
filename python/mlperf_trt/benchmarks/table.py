"""The `list` table: every workload's rules and accuracy targets of one round, as plain text."""

from __future__ import annotations

from mlperf_trt.benchmarks import all_workloads, check_round
from mlperf_trt.benchmarks.base import DEFAULT_ROUND, ROUND_SEEDS, AccuracyMetric, Rules, Workload

# Widest line the table aims for (the brief: readable in a 200-column terminal).
MAX_WIDTH = 200

_SCENARIO_ABBREV = {"SingleStream": "SS", "MultiStream": "MS", "Server": "Srv", "Offline": "Off"}
_TEST_ABBREV = {"TEST01": "T01", "TEST04": "T04", "TEST05": "T05", "TEST06": "T06"}
_METRIC_ABBREV = {
    "CLIP_SCORE": "CLIP",
    "FID_SCORE": "FID",
    "TOKENS_PER_SAMPLE": "tokens/sample",
    "gsm8k_accuracy": "gsm8k",
    "mbxp_accuracy": "mbxp",
    "GEN_LEN": "gen_len",
}
_HEADERS = (
    "workload",
    "LoadGen key",
    "submission",
    "dataset",
    "PSC",
    "datacenter",
    "edge",
    "Server bound",
    "Offline min",
    "equal",
    "tokens",
    "compliance",
)
_INDENT = "    "


def _num(value: float) -> str:
    """Shortest faithful text of a stored constant: 76.46, 0.8633, 4016878, 3615190.2."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def _scenarios(names: tuple[str, ...]) -> str:
    return ",".join(_SCENARIO_ABBREV[s] for s in names) or "-"


def _server_bound(rules: Rules) -> str:
    if rules.ttft_ms is not None and rules.tpot_ms is not None:
        return f"TTFT {_num(rules.ttft_ms)}/TPOT {_num(rules.tpot_ms)} ms"
    if rules.server_latency_ms is None:
        return "-"
    text = f"{_num(rules.server_latency_ms)} ms"
    # bert v5.0: mlperf.conf keeps 130 ms though no category requires Server (SPEC §2.0).
    return text if "Server" in rules.all_scenarios else f"{text} (conf only)"


def _tokens(rules: Rules) -> str:
    if rules.token_metrics == "inferred":
        return f"inferred x{rules.token_latency_scaling_factor}"
    return "-" if rules.token_metrics == "none" else rules.token_metrics


def format_metric(metric: AccuracyMetric, variant: str) -> str:
    """`key ref (99%: lower)`, or `key lower–upper (ref X)` for a closed range."""
    key = _METRIC_ABBREV.get(metric.key, metric.key)
    if metric.lower is not None and metric.upper is not None:
        return f"{key} {_num(metric.lower)}–{_num(metric.upper)} (ref {_num(metric.reference)})"
    if metric.lower is not None:
        return f"{key} {_num(metric.reference)} ({variant}%: {_num(metric.lower)})"
    if metric.upper is not None:
        return f"{key} {_num(metric.reference)} ({variant}%: <= {_num(metric.upper)})"
    return f"{key} {_num(metric.reference)} (no threshold)"


def _row(workload: Workload, round: str) -> tuple[str, ...]:
    rules = workload.rules(round)
    return (
        workload.name,
        workload.benchmark.loadgen_key,
        workload.submission_name,
        f"{rules.dataset_size:,}",
        f"{rules.performance_sample_count:,}",
        _scenarios(rules.scenarios["datacenter"]),
        _scenarios(rules.scenarios["edge"]),
        _server_bound(rules),
        f"{rules.offline_min_samples:,}",
        "yes" if rules.equal_issue else "no",
        _tokens(rules),
        ",".join(_TEST_ABBREV[t] for t in rules.compliance_tests) or "-",
    )


def _wrap(items: list[str], first: str, width: int) -> list[str]:
    """Join items with '; ' into lines no wider than `width`, continuations aligned."""
    lines: list[str] = []
    current = first
    pad = " " * len(first)
    for item in items:
        piece = item if current in (first, pad) else f"; {item}"
        if len(current) + len(piece) > width and current not in (first, pad):
            lines.append(current + ";")
            current, piece = pad, item
        current += piece
    lines.append(current)
    return lines


def render_table(round: str = DEFAULT_ROUND) -> str:
    """Rules and accuracy targets of every workload in `round`: a row plus accuracy lines each."""
    round = check_round(round)
    workloads = all_workloads()
    rows = [_row(w, round) for w in workloads]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(_HEADERS)]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    qsl, sample_index, schedule = ROUND_SEEDS[round]
    out = [
        f"MLPerf Inference {round}: {len(workloads)} workloads "
        f"(LoadGen seeds qsl {qsl}, sample_index {sample_index}, schedule {schedule})",
        "",
        line(_HEADERS),
        line(tuple("-" * w for w in widths)),
    ]
    for workload, row in zip(workloads, rows, strict=True):
        out.append(line(row))
        metrics = [format_metric(m, workload.variant) for m in workload.accuracy_targets(round)]
        out.extend(_wrap(metrics, f"{_INDENT}accuracy: ", MAX_WIDTH))
    out += [
        "",
        "SS=SingleStream MS=MultiStream Srv=Server Off=Offline; '-' = not required. "
        "Server bound at p99.",
        "accuracy: reference (target%: checker pass value, compared >=); "
        "a range a–b is closed (checker bounds).",
    ]
    return "\n".join(out) + "\n"
