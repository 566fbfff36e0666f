"""The workload layer's types: what a benchmark is, as data (DESIGN.md §2, §3, §6).

Every MLPerf constant the harness honours lives in the benchmark modules next to this one, keyed by
round, and is read through these frozen records. Nothing here imports anything beyond numpy and the
standard library, so any layer (config, data, harness, submission) may depend on it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from mlperf_trt.errors import BenchmarkError, closest

# Rounds whose constants are encoded; v5.0 is the harness default (SPEC §0, DESIGN §6).
ROUNDS: tuple[str, ...] = ("v4.1", "v5.0")
DEFAULT_ROUND = "v5.0"
# LoadGen's scenarios, in the order the submission tree and the table use (SPEC §3.2).
SCENARIOS: tuple[str, ...] = ("SingleStream", "MultiStream", "Server", "Offline")
# System categories of the rules (SPEC §2.0; a "datacenter,edge" system submits the union).
CATEGORIES: tuple[str, ...] = ("datacenter", "edge")
# Backends of the engine layer and the precisions a default may name (DESIGN §2).
BACKENDS: tuple[str, ...] = ("trt", "ort", "null")
PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "bf16", "int8", "fp8")
# How token latencies are measured (SPEC §2.5 inferred for gptj, §2.6/§2.7 measured for the LLMs).
TOKEN_METRICS: tuple[str, ...] = ("none", "measured", "inferred")
# Compliance tests a round may require (SPEC §4; TEST05 only in v4.1, Appendix A).
COMPLIANCE_TESTS: tuple[str, ...] = ("TEST01", "TEST04", "TEST05", "TEST06")

# Round seeds built into LoadGen: (qsl, sample_index, schedule) (SPEC §3.3; v4.1: Appendix A).
ROUND_SEEDS: Mapping[str, tuple[int, int, int]] = MappingProxyType(
    {
        "v4.1": (3066443479025735752, 10688027786191513374, 14962580496156340209),
        "v5.0": (6023615788873153749, 15036839855038426416, 9933818062894767841),
    }
)
# mlperf.conf: MultiStream samples_per_query = 8 for every benchmark (SPEC §2.0).
MULTISTREAM_SAMPLES_PER_QUERY = 8


def check_choice(kind: str, value: str, choices: Iterable[str]) -> str:
    """Return `value` when it is one of `choices`, else raise BenchmarkError naming all of them."""
    options = tuple(choices)
    if value in options:
        return value
    listed = ", ".join(options) if options else "(none)"
    raise BenchmarkError(
        f"unknown {kind} {value!r}: expected one of {listed}{closest(str(value), options)}"
    )


def _check_dtype(what: str, dtype: str) -> None:
    try:
        np.dtype(dtype)
    except TypeError as exc:
        raise BenchmarkError(
            f"{what}: {dtype!r} is not a numpy dtype name (e.g. 'float32', 'int64')"
        ) from exc


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of the official model (SPEC §2.x)."""

    name: str  # official tensor name, e.g. "input_tensor:0"
    dtype: str  # numpy dtype name: "float32", "int64", ...
    shape: tuple[int | str, ...]  # "N" = batch dimension, other str = dynamic dims, ints fixed

    def __post_init__(self) -> None:
        _check_dtype(f"tensor {self.name!r}", self.dtype)


@dataclass(frozen=True)
class ModelCard:
    """The official model's interface and where it comes from."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    source: str  # where the official model comes from (SPEC §2.x)

    def input(self, name: str) -> TensorSpec:
        """The input named `name`; BenchmarkError listing the inputs otherwise."""
        return self._find("input", name, self.inputs)

    def output(self, name: str) -> TensorSpec:
        """The output named `name`; BenchmarkError listing the outputs otherwise."""
        return self._find("output", name, self.outputs)

    @staticmethod
    def _find(kind: str, name: str, specs: tuple[TensorSpec, ...]) -> TensorSpec:
        by_name = {spec.name: spec for spec in specs}
        return by_name[check_choice(f"model {kind}", name, by_name)]


@dataclass(frozen=True)
class PayloadSpec:
    """The response bytes of one sample (SPEC §1.2)."""

    dtype: str  # numpy dtype name of the elements
    # elements per sample when fixed; for variable payloads the typical count the null backend sends
    elements: int
    variable: bool = False  # the real count varies per sample
    # LLM token payload: n_tokens = elements, FirstTokenComplete outside Offline
    tokens: bool = False

    def __post_init__(self) -> None:
        _check_dtype("payload", self.dtype)
        if self.elements < 1:
            raise BenchmarkError(f"payload element count must be >= 1, got {self.elements}")

    @property
    def itemsize(self) -> int:
        return int(np.dtype(self.dtype).itemsize)

    @property
    def nbytes(self) -> int:
        return self.elements * self.itemsize


@dataclass(frozen=True)
class AccuracyMetric:
    """One accuracy target the submission checker enforces (SPEC §1.3, §2.0, §6)."""

    key: str  # checker metric key: "acc", "mAP", "DICE", "F1", "ROUGE1", ...
    reference: float  # reference value, in the unit the checker compares
    unit: str  # "%", "", "chars", "tokens"
    lower: float | None  # pass threshold (checker: value >= lower); None where there is none
    upper: float | None = None  # upper bound where the checker has one

    def passes(self, value: float) -> bool:
        """True when `value` meets this target the way the checker compares it (SPEC §6)."""
        if self.lower is not None and value < self.lower:
            return False
        return not (self.upper is not None and value > self.upper)


def scaled_target(key: str, reference: float, unit: str, factor: float) -> AccuracyMetric:
    """A target at `factor` x reference: the checker's rule where SPEC §2.0 gives no value."""
    return AccuracyMetric(key, reference, unit, round(reference * factor, 9))


@dataclass(frozen=True)
class Rules:
    """LoadGen and checker rules of one benchmark in one round.

    Sources: SPEC §2.0, §3.3, §4, §6 and Appendix A.
    """

    round: str
    dataset_size: int  # accuracy set size / QSL total count
    performance_sample_count: int  # required PSC
    # category -> required scenarios (empty: not in that category)
    scenarios: Mapping[str, tuple[str, ...]]
    # Server p99 bound; None where the bound is TTFT/TPOT or there is no Server
    server_latency_ms: float | None
    ttft_ms: float | None  # LLMs only
    tpot_ms: float | None
    offline_min_samples: int
    equal_issue: bool
    # "none" | "measured" (use_token_latencies) | "inferred" (infer_token_latencies)
    token_metrics: str
    token_latency_scaling_factor: int | None
    multistream_samples_per_query: int
    compliance_tests: tuple[str, ...]
    accuracy_log_sampling_target: int | None  # TEST01 sampling target
    loadgen_seeds: tuple[int, int, int]  # (qsl, sample_index, schedule)

    def __post_init__(self) -> None:
        check_choice("round", self.round, ROUNDS)
        check_choice("token metrics mode", self.token_metrics, TOKEN_METRICS)
        for test in self.compliance_tests:
            check_choice("compliance test", test, COMPLIANCE_TESTS)
        scenarios: dict[str, tuple[str, ...]] = {}
        for category, names in self.scenarios.items():
            check_choice("system category", category, CATEGORIES)
            for scenario in names:
                check_choice("scenario", scenario, SCENARIOS)
            scenarios[category] = tuple(s for s in SCENARIOS if s in names)
        for category in CATEGORIES:
            scenarios.setdefault(category, ())
        object.__setattr__(self, "scenarios", MappingProxyType(scenarios))

    def __hash__(self) -> int:  # the scenarios mapping is not hashable by itself
        items = tuple((k, v) for k, v in self.scenarios.items())
        fields = tuple(
            getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "scenarios"
        )
        return hash((fields, items))

    def scenarios_for(self, system_type: str) -> tuple[str, ...]:
        """Required scenarios of "datacenter", "edge" or both (the union) (SPEC §2.0, §5.3)."""
        parts = [p.strip().lower() for p in str(system_type).split(",")]
        valid = ("datacenter", "edge", "datacenter,edge", "edge,datacenter")
        if not parts or any(p not in CATEGORIES for p in parts) or len(set(parts)) != len(parts):
            raise BenchmarkError(
                f"unknown system type {system_type!r}: expected one of {', '.join(valid)}"
                f"{closest(str(system_type).lower(), valid)}"
            )
        wanted = {s for p in parts for s in self.scenarios[p]}
        return tuple(s for s in SCENARIOS if s in wanted)

    @property
    def all_scenarios(self) -> tuple[str, ...]:
        """Union over categories, in SCENARIOS order."""
        return self.scenarios_for(",".join(CATEGORIES))

    @property
    def categories(self) -> tuple[str, ...]:
        """The categories in which the benchmark is required this round."""
        return tuple(c for c in CATEGORIES if self.scenarios[c])


def derive_rules(
    base: Rules,
    round: str,
    *,
    scenarios: Mapping[str, tuple[str, ...]] | None = None,
    compliance_tests: tuple[str, ...] | None = None,
) -> Rules:
    """`base` moved to another round: that round's seeds, plus what Appendix A changes."""
    check_choice("round", round, ROUNDS)
    return dataclasses.replace(
        base,
        round=round,
        loadgen_seeds=ROUND_SEEDS[round],
        scenarios=base.scenarios if scenarios is None else scenarios,
        compliance_tests=base.compliance_tests if compliance_tests is None else compliance_tests,
    )


def _union_scenarios(rules: Iterable[Rules]) -> dict[str, tuple[str, ...]]:
    merged: dict[str, set[str]] = {c: set() for c in CATEGORIES}
    for r in rules:
        for c in CATEGORIES:
            merged[c].update(r.scenarios[c])
    return {c: tuple(s for s in SCENARIOS if s in merged[c]) for c in CATEGORIES}


@dataclass(frozen=True)
class Benchmark:
    """One MLPerf benchmark family: model, data, payload and, per round, rules and targets."""

    name: str  # canonical family name: "resnet50", "3d-unet", "gptj", ...
    variants: tuple[str, ...]  # ("99",) or ("99", "99.9")
    loadgen_key: str  # SPEC §0 mapping
    dataset: str
    metric: str  # human name of the primary metric
    model_card: ModelCard
    payload: PayloadSpec
    # backend -> variant -> precision
    default_precisions: Mapping[str, Mapping[str, str]] = field(compare=False)
    round_rules: Mapping[str, Rules] = field(default_factory=dict, compare=False)  # round -> rules
    # (round, variant) -> category -> scenarios where a variant differs (bert-99.9 in v4.1)
    variant_scenarios: Mapping[tuple[str, str], Mapping[str, tuple[str, ...]]] = field(
        default_factory=dict, compare=False
    )
    targets: Mapping[tuple[str, str], tuple[AccuracyMetric, ...]] = field(
        default_factory=dict, compare=False
    )
    # submission folder stem where it differs from name (resnet50 -> "resnet", SPEC §0)
    submission_stem: str = ""
    aliases: tuple[str, ...] = ()  # other family names accepted by resolve() (lower case)

    def __post_init__(self) -> None:
        """Check the tables are complete, so a missing entry fails at import, not mid-run."""
        if not self.variants:
            raise BenchmarkError(f"benchmark {self.name!r} has no variants")
        for round_ in ROUNDS:
            rules = self.round_rules.get(round_)
            if rules is None or rules.round != round_:
                raise BenchmarkError(f"benchmark {self.name!r}: no rules for round {round_}")
            for variant in self.variants:
                if (round_, variant) not in self.targets:
                    raise BenchmarkError(
                        f"benchmark {self.name!r}: no accuracy targets for {round_} {variant}"
                    )
        for backend in BACKENDS:
            per_variant = self.default_precisions.get(backend, {})
            for variant in self.variants:
                check_choice(
                    f"{self.name} {backend} precision", per_variant.get(variant, "?"), PRECISIONS
                )
        object.__setattr__(
            self, "default_precisions", MappingProxyType(dict(self.default_precisions))
        )
        object.__setattr__(self, "round_rules", MappingProxyType(dict(self.round_rules)))
        object.__setattr__(
            self, "variant_scenarios", MappingProxyType(dict(self.variant_scenarios))
        )
        object.__setattr__(self, "targets", MappingProxyType(dict(self.targets)))

    def _check_variant(self, variant: str) -> str:
        return check_choice(f"variant of {self.name}", str(variant), self.variants)

    def submission_name(self, variant: str) -> str:
        """The submission folder name (SPEC §0): "resnet", "bert-99.9", "mixtral-8x7b", ..."""
        self._check_variant(variant)
        stem = self.submission_stem or self.name
        return stem if len(self.variants) == 1 else f"{stem}-{variant}"

    def variant_name(self, variant: str) -> str:
        """The user-facing name: "resnet50", "bert-99.9", "gptj-99", "stable-diffusion-xl"."""
        self._check_variant(variant)
        return self.name if len(self.variants) == 1 else f"{self.name}-{variant}"

    def rules(self, round: str = DEFAULT_ROUND, variant: str | None = None) -> Rules:
        """The rules of `round`; with a variant, its own scenario lists (bert-99.9 in v4.1).

        Without a variant the scenario lists are the union over the variants (the family's lists).
        """
        check_choice("round", round, ROUNDS)
        base = self.round_rules[round]
        if variant is None:
            per_variant = [self._variant_rules(base, v) for v in self.variants]
            return dataclasses.replace(base, scenarios=_union_scenarios(per_variant))
        self._check_variant(variant)
        return self._variant_rules(base, variant)

    def _variant_rules(self, base: Rules, variant: str) -> Rules:
        override = self.variant_scenarios.get((base.round, variant))
        return base if override is None else dataclasses.replace(base, scenarios=override)

    def accuracy_targets(self, round: str, variant: str) -> tuple[AccuracyMetric, ...]:
        """The metrics the checker enforces for `variant` in `round` (SPEC §2.0, Appendix A)."""
        check_choice("round", round, ROUNDS)
        self._check_variant(variant)
        return self.targets[(round, variant)]

    def default_precision(self, backend: str, variant: str) -> str:
        """The precision a build uses unless told otherwise (DESIGN §6)."""
        check_choice("backend", backend, BACKENDS)
        self._check_variant(variant)
        return self.default_precisions[backend][variant]


@dataclass(frozen=True)
class Workload:
    """A benchmark with one variant chosen: what `--model` names."""

    benchmark: Benchmark
    variant: str

    def __post_init__(self) -> None:
        self.benchmark._check_variant(self.variant)

    def __str__(self) -> str:
        return self.name

    @property
    def name(self) -> str:
        return self.benchmark.variant_name(self.variant)

    @property
    def submission_name(self) -> str:
        return self.benchmark.submission_name(self.variant)

    def rules(self, round: str = DEFAULT_ROUND) -> Rules:
        return self.benchmark.rules(round, self.variant)

    def accuracy_targets(self, round: str = DEFAULT_ROUND) -> tuple[AccuracyMetric, ...]:
        return self.benchmark.accuracy_targets(round, self.variant)

    def default_precision(self, backend: str) -> str:
        return self.benchmark.default_precision(backend, self.variant)
