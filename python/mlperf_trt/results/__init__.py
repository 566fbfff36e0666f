"""Result folders, user.conf files and LoadGen log parsing (DESIGN.md §2, §5; SPEC.md §3.4-§3.6)."""

from __future__ import annotations

from mlperf_trt.results.layout import (
    MODES,
    SCENARIOS,
    AtomicResultDir,
    atomic_write_json,
    atomic_write_text,
    result_dir,
)
from mlperf_trt.results.loadgen_log import (
    DETAIL_LOG,
    SUMMARY_LOG,
    DetailLog,
    RunSummary,
    format_summary,
    read_detail_log,
    submittable_problems,
    summarize,
)
from mlperf_trt.results.userconf import USER_CONF_KEYS, parse_conf, render_user_conf

__all__ = [
    "DETAIL_LOG",
    "MODES",
    "SCENARIOS",
    "SUMMARY_LOG",
    "USER_CONF_KEYS",
    "AtomicResultDir",
    "DetailLog",
    "RunSummary",
    "atomic_write_json",
    "atomic_write_text",
    "format_summary",
    "parse_conf",
    "read_detail_log",
    "render_user_conf",
    "result_dir",
    "submittable_problems",
    "summarize",
]
