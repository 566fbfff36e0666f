"""Resolving a run's settings: field defaults < duration preset < config file < `--set`.

Every value remembers where it came from; the resolved config is written as JSON beside every
result (DESIGN §2).
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlperf_trt.config.fields import FIELDS, Context, Value, as_conf_value, get_field
from mlperf_trt.errors import ConfigError, closest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

DURATIONS: tuple[str, ...] = ("smoke", "short", "full")


def duration_preset(duration: str, scenario: str) -> dict[str, Value]:
    """LoadGen limits of a duration preset.

    `smoke` finishes in seconds (tests use it), `short` takes about a minute, `full` keeps the
    official durations and counts of the built-in mlperf.conf (SPEC §2.0: 600 s and the
    per-benchmark minimum counts). Only `full` can be submittable.
    """
    if duration == "full":
        return {}
    if duration == "smoke":
        preset: dict[str, Value] = {"min_duration_ms": 1000}
        # MultiStream keeps mlperf.conf's 662 queries: the p99 early-stopping estimate needs them.
        # Server: 600 queries, enough for the p99 early-stopping estimate (SPEC §3.6) at any QPS.
        counts = {"Offline": 64, "SingleStream": 64, "Server": 600}
    elif duration == "short":
        preset = {"min_duration_ms": 60_000}
        counts = {"Offline": 1, "SingleStream": 100, "Server": 100}
    else:
        raise ConfigError(
            f"--duration {duration!r} is not one of {', '.join(DURATIONS)}"
            f"{closest(duration, DURATIONS)}"
        )
    if scenario in counts:
        preset["min_query_count"] = counts[scenario]
    return preset


@dataclass(frozen=True)
class ResolvedConfig:
    """The settings of one run, with the source of each value."""

    context: Context
    duration: str
    values: Mapping[str, Value | None]
    sources: Mapping[str, str]
    config_files: tuple[str, ...] = field(default=())

    def __getitem__(self, name: str) -> Any:
        get_field(name, "config lookup")
        return self.values[name]

    def with_value(self, name: str, value: Value, source: str) -> ResolvedConfig:
        """A copy with one field replaced (e.g. a hint measured on this machine)."""
        f = get_field(name, "config update")
        parsed = f.parse(value, source)
        return dataclasses.replace(
            self,
            values={**self.values, name: parsed},
            sources={**self.sources, name: source},
        )

    def user_conf_settings(self) -> dict[str, int | float]:
        """user.conf keys (without model.scenario.) of every LoadGen field set for this scenario."""
        out: dict[str, int | float] = {}
        for f in FIELDS:
            value = self.values.get(f.name)
            if f.conf_key and value is not None and f.applies_to(self.context.scenario):
                out[f.conf_key] = as_conf_value(f, value)
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "workload": self.context.workload,
            "scenario": self.context.scenario,
            "backend": self.context.backend,
            "duration": self.duration,
            "config_files": list(self.config_files),
            "settings": {
                name: {"value": self.values[name], "source": self.sources[name]}
                for name in sorted(self.values)
            },
        }


def parse_set(items: Iterable[str]) -> list[tuple[str, str]]:
    """`--set key=value` strings -> (key, raw value); ConfigError on a malformed item."""
    pairs = []
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip() or not raw.strip():
            raise ConfigError(
                f"--set {item!r} is malformed: expected KEY=VALUE,"
                " e.g. --set server_target_qps=1000"
            )
        get_field(key.strip(), f"--set {item}")
        pairs.append((key.strip(), raw.strip()))
    return pairs


def load_config_file(path: Path, scenario: str) -> list[tuple[str, object]]:
    """Settings of a TOML file: top-level keys, then a `[Scenario]` table for this scenario."""
    if not path.is_file():
        raise ConfigError(f"--config {path}: no such file; give the path of a TOML settings file")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--config {path}: not valid TOML: {exc}") from None
    from mlperf_trt.benchmarks import SCENARIOS

    items: list[tuple[str, object]] = []
    for key, value in data.items():
        if isinstance(value, dict):
            if key not in SCENARIOS:
                raise ConfigError(
                    f"{path}: table [{key}] is not a scenario{closest(key, SCENARIOS)};"
                    f" tables may only be one of {', '.join(SCENARIOS)}"
                )
            continue
        get_field(key, str(path))
        items.append((key, value))
    for key, value in dict(data.get(scenario, {})).items():
        get_field(key, f"{path} [{scenario}]")
        items.append((key, value))
    return items


def resolve_config(
    context: Context,
    *,
    duration: str = "full",
    config_files: Iterable[Path] = (),
    overrides: Iterable[str] = (),
) -> ResolvedConfig:
    """Resolves every field for `context`; raises ConfigError naming the bad key or value."""
    values: dict[str, Value | None] = {}
    sources: dict[str, str] = {}
    for f in FIELDS:
        values[f.name] = f.default(context)
        sources[f.name] = "default"
    for name, value in duration_preset(duration, context.scenario).items():
        values[name] = value
        sources[name] = f"duration {duration}"
    files = tuple(Path(p) for p in config_files)
    for path in files:
        for name, raw in load_config_file(path, context.scenario):
            values[name] = get_field(name, str(path)).parse(raw, str(path))
            sources[name] = f"file {path}"
    for name, raw in parse_set(overrides):
        values[name] = get_field(name, "--set").parse(raw, f"--set {name}={raw}")
        sources[name] = "--set"
    return ResolvedConfig(context, duration, values, sources, tuple(str(p) for p in files))
