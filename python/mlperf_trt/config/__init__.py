"""Run settings: one typed field registry, resolved from defaults, presets, files and --set."""

from __future__ import annotations

from mlperf_trt.config.fields import (
    FIELDS,
    FIELDS_BY_NAME,
    Context,
    Field,
    describe_fields,
    get_field,
)
from mlperf_trt.config.resolve import (
    DURATIONS,
    ResolvedConfig,
    duration_preset,
    load_config_file,
    parse_set,
    resolve_config,
)

__all__ = [
    "DURATIONS",
    "FIELDS",
    "FIELDS_BY_NAME",
    "Context",
    "Field",
    "ResolvedConfig",
    "describe_fields",
    "duration_preset",
    "get_field",
    "load_config_file",
    "parse_set",
    "resolve_config",
]
