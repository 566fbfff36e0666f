"""The workload layer: the nine MLPerf benchmarks as data, keyed by round (DESIGN.md §2, §3, §6).

>>> w = resolve("bert-99.9")
>>> w.submission_name, w.rules("v4.1").scenarios["edge"]
('bert-99.9', ())
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from mlperf_trt.benchmarks import (
    bert,
    dlrm,
    gptj,
    llama2,
    mixtral,
    resnet50,
    retinanet,
    sdxl,
    unet3d,
)
from mlperf_trt.benchmarks.base import (
    BACKENDS,
    CATEGORIES,
    COMPLIANCE_TESTS,
    DEFAULT_ROUND,
    PRECISIONS,
    ROUND_SEEDS,
    ROUNDS,
    SCENARIOS,
    TOKEN_METRICS,
    AccuracyMetric,
    Benchmark,
    ModelCard,
    PayloadSpec,
    Rules,
    TensorSpec,
    Workload,
)
from mlperf_trt.errors import BenchmarkError, closest

__all__ = [
    "BACKENDS",
    "CATEGORIES",
    "COMPLIANCE_TESTS",
    "DEFAULT_ROUND",
    "PRECISIONS",
    "ROUNDS",
    "ROUND_SEEDS",
    "SCENARIOS",
    "TOKEN_METRICS",
    "AccuracyMetric",
    "Benchmark",
    "ModelCard",
    "PayloadSpec",
    "Rules",
    "TensorSpec",
    "Workload",
    "all_benchmarks",
    "all_workloads",
    "check_round",
    "check_scenario",
    "get_benchmark",
    "resolve",
]

# The nine benchmarks in SPEC §0 order.
_BENCHMARKS: tuple[Benchmark, ...] = (
    resnet50.BENCHMARK,
    retinanet.BENCHMARK,
    unet3d.BENCHMARK,
    bert.BENCHMARK,
    gptj.BENCHMARK,
    llama2.BENCHMARK,
    mixtral.BENCHMARK,
    dlrm.BENCHMARK,
    sdxl.BENCHMARK,
)
_WORKLOADS: tuple[Workload, ...] = tuple(Workload(b, v) for b in _BENCHMARKS for v in b.variants)


def _normalise(name: str) -> str:
    return str(name).strip().lower().replace("_", "-")


def _build_names() -> tuple[Mapping[str, Workload], Mapping[str, tuple[str, ...]]]:
    """Every accepted spelling -> workload; and, per canonical name, its other spellings.

    A family name alone means its first (99%) variant; family names, their aliases and the
    submission stem all take a "-99"/"-99.9" suffix, so "gpt-j-99", "dlrmv2-99.9" and "resnet-99"
    resolve too (SPEC §0 names).
    """
    names: dict[str, Workload] = {}
    spellings: dict[str, list[str]] = {}

    def add(spelling: str, workload: Workload) -> None:
        key = _normalise(spelling)
        known = names.get(key)
        if known is not None and known != workload:
            raise BenchmarkError(f"name {key!r} would name both {known.name} and {workload.name}")
        if known is None:
            names[key] = workload
            if key != workload.name:
                spellings.setdefault(workload.name, []).append(key)

    for workload in _WORKLOADS:  # canonical and submission names first, so they win
        add(workload.name, workload)
        add(workload.submission_name, workload)
    for benchmark in _BENCHMARKS:
        stems = (benchmark.name, benchmark.submission_stem or benchmark.name, *benchmark.aliases)
        for stem in stems:
            add(stem, Workload(benchmark, benchmark.variants[0]))
            for variant in benchmark.variants:
                add(f"{stem}-{variant}", Workload(benchmark, variant))
    return MappingProxyType(names), MappingProxyType({k: tuple(v) for k, v in spellings.items()})


_NAMES, _SPELLINGS = _build_names()


def all_benchmarks() -> tuple[Benchmark, ...]:
    """The nine benchmarks, in SPEC §0 order."""
    return _BENCHMARKS


def all_workloads() -> tuple[Workload, ...]:
    """Every benchmark x variant: the 14 submission folder names of SPEC §5.1 (no interactive)."""
    return _WORKLOADS


def accepted_names() -> Mapping[str, tuple[str, ...]]:
    """Canonical workload name -> the other spellings resolve() accepts for it."""
    return MappingProxyType({w.name: _SPELLINGS.get(w.name, ()) for w in _WORKLOADS})


def resolve(model: str) -> Workload:
    """The workload `--model` names: canonical, submission folder name or alias, any case."""
    workload = _NAMES.get(_normalise(model))
    if workload is not None:
        return workload
    canonical = ", ".join(w.name for w in _WORKLOADS)
    families = []
    for benchmark in _BENCHMARKS:
        for stem in (benchmark.name, benchmark.submission_stem, *benchmark.aliases):
            if stem and stem not in families and stem not in {w.name for w in _WORKLOADS}:
                families.append(stem)
    raise BenchmarkError(
        f"unknown model {model!r}: expected one of {canonical}; or a family name or alias "
        f"({', '.join(families)}), which means its 99% variant and takes a -99 / -99.9 suffix "
        f"where that variant exists; case does not matter{closest(_normalise(model), _NAMES)}"
    )


def get_benchmark(name: str) -> Benchmark:
    """The benchmark family a name (family, workload, submission name or alias) belongs to."""
    return resolve(name).benchmark


def check_round(round: str) -> str:
    """The canonical round name ("5.0" and "V5.0" give "v5.0"); BenchmarkError listing ROUNDS."""
    text = str(round).strip().lower()
    candidate = text if text.startswith("v") else f"v{text}"
    if candidate in ROUNDS:
        return candidate
    raise BenchmarkError(
        f"unknown round {round!r}: expected one of {', '.join(ROUNDS)} (default {DEFAULT_ROUND})"
        f"{closest(candidate, ROUNDS)}"
    )


def check_scenario(scenario: str) -> str:
    """The canonical scenario name, matched case-insensitively ("offline" -> "Offline")."""
    by_lower = {s.lower(): s for s in SCENARIOS}
    text = str(scenario).strip().lower().replace("-", "").replace("_", "")
    found = by_lower.get(text)
    if found is not None:
        return found
    match = closest(text, by_lower)
    for lower, proper in by_lower.items():  # suggest the proper spelling, not the lower-case key
        match = match.replace(repr(lower), repr(proper))
    raise BenchmarkError(
        f"unknown scenario {scenario!r}: expected one of {', '.join(SCENARIOS)}{match}"
    )
