"""The typed field registry: every setting of a run, one record each (DESIGN §2).

Names follow LoadGen's TestSettings where a field means the same thing (SPEC §3.3), so that a
submitter can read them as LoadGen's; the harness's own settings sit beside them. A field with a
`conf_key` is written into user.conf (SPEC §3.4) for the scenarios it applies to.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mlperf_trt.errors import ConfigError, closest

Value = int | float | bool | str


@dataclass(frozen=True)
class Context:
    """What defaults are derived from: the workload, scenario, backend and detected system."""

    workload: str
    scenario: str
    backend: str
    cpu_threads: int
    gpus: int
    samples_per_query: int = 8
    duration: str = "full"
    default_precision: str = "fp32"


@dataclass(frozen=True)
class Field:
    name: str
    type: type
    unit: str
    doc: str
    default: Callable[[Context], Value | None]
    minimum: float | None = None
    conf_key: str | None = None  # user.conf key (without model.scenario.)
    conf_scale: float = 1.0  # field value * conf_scale = user.conf value (ns -> ms)
    scenarios: tuple[str, ...] = ()  # scenarios the field applies to; () = all
    choices: tuple[str, ...] = ()  # the valid values of a str field; () = any

    def applies_to(self, scenario: str) -> bool:
        return not self.scenarios or scenario in self.scenarios

    def parse(self, raw: object, source: str) -> Value:
        """Converts a value from a TOML file or `--set`; ConfigError when it does not fit."""
        value: Value
        try:
            if self.type is bool:
                if isinstance(raw, bool):
                    value = raw
                elif isinstance(raw, str) and raw.strip().lower() in _BOOLS:
                    value = _BOOLS[raw.strip().lower()]
                else:
                    raise ValueError
            elif self.type is int:
                if isinstance(raw, bool):
                    raise ValueError
                if isinstance(raw, int):
                    value = raw
                else:
                    number = float(str(raw).replace("_", ""))
                    if not number.is_integer():
                        raise ValueError
                    value = int(number)
            elif self.type is float:
                if isinstance(raw, bool):
                    raise ValueError
                value = float(str(raw).replace("_", "")) if isinstance(raw, str) else float(raw)  # type: ignore[arg-type]
                if not math.isfinite(value):
                    raise ValueError
            else:
                value = str(raw).strip()
                if self.choices and value not in self.choices:
                    raise ConfigError(
                        f"{source}: {self.name} = {value!r} is not one of"
                        f" {', '.join(self.choices)}{closest(value, self.choices)}"
                    )
        except (TypeError, ValueError):
            raise ConfigError(
                f"{source}: {self.name} = {raw!r} is not a valid {self.type.__name__}"
                f" ({self.doc}; unit: {self.unit or 'none'})"
            ) from None
        if self.minimum is not None and isinstance(value, int | float) and value < self.minimum:
            raise ConfigError(
                f"{source}: {self.name} = {value!r} is below its minimum {self.minimum:g}"
                f" ({self.doc})"
            )
        return value


_BOOLS = {
    "true": True,
    "1": True,
    "yes": True,
    "on": True,
    "false": False,
    "0": False,
    "no": False,
    "off": False,
}


def _const(value: Value | None) -> Callable[[Context], Value | None]:
    return lambda ctx: value


def _default_batch_size(ctx: Context) -> int:
    if ctx.scenario == "SingleStream":
        return 1
    if ctx.scenario == "MultiStream":
        return ctx.samples_per_query
    if ctx.backend == "null":
        return 256 if ctx.scenario == "Offline" else 64
    if ctx.scenario == "Offline":
        return 32
    # Server on a CPU: a batch of 8 alone can take longer than resnet50's 15 ms bound (SPEC
    # §2.0), so each query runs as it arrives; GPUs batch.
    return 8 if ctx.gpus else 1


def _default_workers(ctx: Context) -> int:
    # The null backend does no work: one worker per group keeps the GIL free for LoadGen.
    # SingleStream/MultiStream run one query at a time: one worker with every thread is fastest.
    if ctx.backend == "null" or ctx.scenario in ("SingleStream", "MultiStream"):
        return 1
    return 2 if ctx.gpus else max(1, min(2, ctx.cpu_threads))


# LoadGen pre-generates queries from these hints, and a run is INVALID when the SUT is faster than
# them (Offline: "min duration not met"; SingleStream/MultiStream: "ran out of generated queries").
# The null backend answers in tens of microseconds, so its hints are aggressive for `smoke`; for
# longer runs they stay moderate because LoadGen holds every pre-generated query in memory.
def _default_offline_qps(ctx: Context) -> float:
    if ctx.backend == "null":
        return 1_500_000.0 if ctx.duration == "smoke" else 10_000.0
    return 100.0


def _default_server_qps(ctx: Context) -> float:
    return 10_000.0 if ctx.backend == "null" else 50.0


def _default_ss_latency(ctx: Context) -> int:
    if ctx.backend == "null":
        return 10_000 if ctx.duration == "smoke" else 40_000
    return 20_000_000


def _default_ms_latency(ctx: Context) -> int:
    if ctx.backend == "null":
        return 20_000 if ctx.duration == "smoke" else 80_000
    return 80_000_000


def _default_intra_op_threads(ctx: Context) -> int:
    return max(1, ctx.cpu_threads // max(1, _default_workers(ctx)))


FIELDS: tuple[Field, ...] = (
    # --- LoadGen settings (SPEC §3.3); written to user.conf ------------------------------
    Field(
        "offline_expected_qps",
        float,
        "samples/s",
        "Offline expected throughput; query size = max(min_query_count, 1.1 x min_duration x qps)",
        _default_offline_qps,
        minimum=1e-9,
        conf_key="target_qps",
        scenarios=("Offline",),
    ),
    Field(
        "server_target_qps",
        float,
        "queries/s",
        "Server Poisson arrival rate",
        _default_server_qps,
        minimum=1e-9,
        conf_key="target_qps",
        scenarios=("Server",),
    ),
    Field(
        "single_stream_expected_latency_ns",
        int,
        "ns",
        "SingleStream expected latency (a query-generation hint only)",
        _default_ss_latency,
        minimum=1,
        conf_key="target_latency",
        conf_scale=1e-6,
        scenarios=("SingleStream",),
    ),
    Field(
        "multi_stream_expected_latency_ns",
        int,
        "ns",
        "MultiStream expected latency per query (a hint only)",
        _default_ms_latency,
        minimum=1,
        conf_key="target_latency",
        conf_scale=1e-6,
        scenarios=("MultiStream",),
    ),
    Field(
        "server_target_latency_ns",
        int,
        "ns",
        "Server p99 latency bound; set by mlperf.conf per benchmark (SPEC §2.0), and a run with a"
        " looser one is not submittable",
        _const(None),
        minimum=1,
        conf_key="target_latency",
        conf_scale=1e-6,
        scenarios=("Server",),
    ),
    Field(
        "min_duration_ms",
        int,
        "ms",
        "minimum run duration (600000 for a submission, SPEC §6)",
        _const(None),
        minimum=0,
        conf_key="min_duration",
    ),
    Field(
        "max_duration_ms",
        int,
        "ms",
        "maximum run duration (0 = none)",
        _const(None),
        minimum=0,
        conf_key="max_duration",
    ),
    Field(
        "min_query_count",
        int,
        "queries",
        "minimum query count (Offline: minimum samples of the one query)",
        _const(None),
        minimum=1,
        conf_key="min_query_count",
    ),
    Field(
        "max_query_count",
        int,
        "queries",
        "maximum query count (0 = none)",
        _const(None),
        minimum=0,
        conf_key="max_query_count",
    ),
    Field(
        "performance_sample_count_override",
        int,
        "samples",
        "samples loaded for a performance run (must stay >= the benchmark's PSC to submit)",
        _const(None),
        minimum=1,
        conf_key="performance_sample_count_override",
    ),
    # --- the harness's own settings -------------------------------------------------------
    Field(
        "batch_size", int, "samples", "largest batch a worker runs", _default_batch_size, minimum=1
    ),
    Field(
        "server_batch_timeout_us",
        int,
        "us",
        "Server: run a partial batch once its oldest sample waited this long",
        _const(1000),
        minimum=0,
    ),
    Field(
        "workers",
        int,
        "threads",
        "worker threads (executors) per worker group",
        _default_workers,
        minimum=1,
    ),
    Field(
        "worker_groups",
        int,
        "groups",
        "worker groups: one per GPU on GPU systems, a setting on a CPU machine",
        lambda ctx: max(1, ctx.gpus),
        minimum=1,
    ),
    Field(
        "intra_op_threads",
        int,
        "threads",
        "compute threads per executor (ONNX Runtime)",
        _default_intra_op_threads,
        minimum=1,
    ),
    Field(
        "precision",
        str,
        "",
        "engine precision (default: the benchmark's default for the backend)",
        lambda ctx: ctx.default_precision,
        choices=("fp32", "fp16", "bf16", "int8", "fp8"),
    ),
    Field(
        "model_size",
        str,
        "",
        "built-in model size: full (the real architecture) or tiny (same interface, for tests)",
        _const("full"),
        choices=("full", "tiny"),
    ),
    Field(
        "engine_batch_sizes",
        str,
        "samples",
        "batch sizes the engine is built for, e.g. '1,8,32' (TensorRT: one optimisation"
        " profile each); empty: batch_size alone",
        _const(""),
    ),
    Field(
        "gpus",
        str,
        "",
        "GPUs the trt backend uses, one worker group each: 'all' or a list such as '0,1'",
        _const("all"),
    ),
    Field(
        "pairs_per_batch",
        int,
        "pairs",
        "dlrm-v2: the user-item pairs a batch carries at most (a sample of more goes alone;"
        " samples are never split)",
        _const(4096),
        minimum=1,
    ),
    Field(
        "windows_per_batch",
        int,
        "windows",
        "3d-unet: the 128^3 sliding windows of a volume the engine runs at once",
        _const(2),
        minimum=1,
    ),
    Field(
        "length_buckets",
        str,
        "tokens",
        "sequence-length buckets a batch never mixes (bert, LLMs): ascending bounds such as"
        " '128,256,384', 'auto' (the benchmark's own), or 'none' (every batch runs the full"
        " padded length)",
        _const("auto"),
    ),
    Field(
        "synthetic_samples",
        int,
        "samples",
        "size of the synthetic data set made when no --data-dir is given",
        _const(500),
        minimum=8,
    ),
    Field(
        "enable_trace",
        bool,
        "",
        "write LoadGen's mlperf_log_trace.json (large, slow)",
        _const(False),
    ),
    Field(
        "failure_grace_s",
        float,
        "s",
        "after a worker error, how long to let LoadGen drain before the process exits",
        _const(20.0),
        minimum=0,
    ),
    Field(
        "progress_interval_s",
        float,
        "s",
        "seconds between progress lines",
        _const(2.0),
        minimum=0.05,
    ),
)

FIELDS_BY_NAME: Mapping[str, Field] = {f.name: f for f in FIELDS}


def get_field(name: str, source: str) -> Field:
    """The field called `name`; ConfigError naming the closest valid key otherwise."""
    field = FIELDS_BY_NAME.get(name)
    if field is None:
        raise ConfigError(
            f"{source}: unknown setting {name!r}{closest(name, FIELDS_BY_NAME)};"
            f" `python -m mlperf_trt config --list` shows every setting"
        )
    return field


def describe_fields() -> str:
    """One line per field: name, type, unit, doc."""
    width = max(len(f.name) for f in FIELDS)
    lines = []
    for f in FIELDS:
        unit = f" [{f.unit}]" if f.unit else ""
        where = f" ({', '.join(f.scenarios)})" if f.scenarios else ""
        lines.append(f"{f.name:<{width}}  {f.type.__name__:<5} {f.doc}{unit}{where}")
    return "\n".join(lines)


def as_conf_value(field: Field, value: Any) -> int | float:
    scaled = value * field.conf_scale
    return int(scaled) if float(scaled).is_integer() else float(scaled)
