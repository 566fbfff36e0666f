"""LoadGen config files: writing user.conf and reading any LoadGen conf file (SPEC.md §3.4).

LoadGen's parser (TestSettings::FromConfig) is whitespace-token based and quietly forgiving in
ways that lose settings, so this module writes only lines it reads back exactly and refuses lines
it would misread:

* ``key=value`` without spaces is silently ignored by LoadGen (the whole token is taken as a key);
* ``#comment`` glued to the '#' followed by more words makes FromConfig fail with -EINVAL;
* a trailing ``# comment`` after a value is read as another value and fails;
* integer keys are read with strtoull: ``1234.9`` becomes 1234 and ``010`` is octal 8.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Mapping
from decimal import Decimal

from mlperf_trt.errors import ConfigError, closest

__all__ = ["USER_CONF_KEYS", "parse_conf", "render_user_conf"]

_SCENARIOS = ("SingleStream", "MultiStream", "Server", "Offline")
_ALL = frozenset(_SCENARIOS)

# Keys LoadGen 5.0 reads from a user.conf, the scenarios it reads each one for, and whether it
# parses the value as an integer (strtoull) rather than a double (SPEC.md §3.3; FromConfig).
# A key given for another scenario is never looked up, so it is rejected rather than ignored.
USER_CONF_KEYS: Mapping[str, tuple[frozenset[str], bool]] = {
    "min_duration": (_ALL, True),  # ms
    "max_duration": (_ALL, True),  # ms
    "min_query_count": (_ALL, True),
    "max_query_count": (_ALL, True),
    "performance_sample_count_override": (_ALL, True),
    "sample_concatenate_permutation": (_ALL, True),
    "use_token_latencies": (_ALL, True),
    "infer_token_latencies": (_ALL, True),
    "token_latency_scaling_factor": (_ALL, True),
    "print_timestamps": (_ALL, True),
    "target_qps": (frozenset({"Server", "Offline"}), False),
    "target_latency_percentile": (frozenset({"SingleStream", "MultiStream", "Server"}), False),
    "samples_per_query": (frozenset({"MultiStream"}), True),
    "coalesce_queries": (frozenset({"Server"}), True),
    "max_async_queries": (frozenset({"Server"}), True),
    "ttft_latency": (frozenset({"Server"}), True),  # ms
    "tpot_latency": (frozenset({"Server"}), True),  # ms
    # target_latency (ms): a double for SingleStream/MultiStream, an integer for Server.
    "target_latency": (frozenset({"SingleStream", "MultiStream", "Server"}), False),
}

# SPEC.md §3.3: seeds and accuracy_log_probability come only from the built-in mlperf.conf; test05
# is obsolete; the audit keys belong in audit.config (SPEC.md §4), not in a submission user.conf.
_SEED_KEYS = frozenset(
    {
        "qsl_rng_seed",
        "sample_index_rng_seed",
        "schedule_rng_seed",
        "accuracy_log_rng_seed",
        "test05_qsl_rng_seed",
        "test05_sample_index_rng_seed",
        "test05_schedule_rng_seed",
    }
)
_BUILTIN_ONLY = frozenset({"accuracy_log_probability", "test05"})
_AUDIT_KEYS = frozenset(
    {
        "accuracy_log_sampling_target",
        "performance_issue_unique",
        "performance_issue_same",
        "performance_issue_same_index",
    }
)

# LoadGen model keys (SPEC.md §0) have no dots: the dot separates model, scenario and key.
_MODEL = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*|\*")
# Scenario names LoadGen conf files use (Interactive appears in later rounds' mlperf.conf).
_CONF_SCENARIOS = (*_SCENARIOS, "Interactive", "*")
_KEY = re.compile(r"[a-z][a-z0-9_]*")
_DECIMAL_INT = re.compile(r"[+-]?(0|[1-9][0-9]*)")
_HEX_INT = re.compile(r"0[xX][0-9a-fA-F]+")


def _format_value(value: int | float, integer_key: bool, where: str) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    # numbers.Integral / Real also admit numpy scalars, which resolved configs may hold.
    if isinstance(value, numbers.Integral):
        number: int | float = int(value)
    elif isinstance(value, numbers.Real):
        number = float(value)
    else:
        raise ConfigError(
            f"{where}: value {value!r} is a {type(value).__name__}; LoadGen config values must be"
            " int or float numbers"
        )
    if not math.isfinite(number):
        raise ConfigError(f"{where}: value {value!r} is not a finite number; give a plain number")
    if number < 0:
        raise ConfigError(
            f"{where}: value {value!r} is negative; LoadGen reads counts, durations, rates and"
            " percentiles as non-negative numbers"
        )
    if integer_key:
        if isinstance(number, float):
            if not number.is_integer():
                raise ConfigError(
                    f"{where}: value {value!r} must be a whole number; LoadGen reads this key as an"
                    f" integer and would truncate it to {int(number)}"
                )
            number = int(number)
        return str(number)
    if isinstance(number, int):
        return str(number)
    text = repr(number)  # shortest string that reads back to the same double
    if "e" in text or "E" in text:
        text = format(Decimal(text), "f")  # exact, without an exponent
    return text


def render_user_conf(model_key: str, scenario: str, settings: Mapping[str, int | float]) -> str:
    """Render a user.conf: one ``model_key.Scenario.key = value`` line per setting (SPEC.md §3.4).

    `settings` uses LoadGen conf keys without the model/scenario prefix, e.g.
    ``{"target_qps": 1000.0, "min_duration": 600000}``. Seeds and `mode` are refused (seeds come
    only from the built-in mlperf.conf, SPEC.md §3.3; the mode is set in code), and so are unknown
    keys, keys LoadGen does not read for `scenario`, and values that are not finite non-negative
    numbers.
    """
    if not isinstance(model_key, str) or not _MODEL.fullmatch(model_key):
        raise ConfigError(
            f"user.conf model key {model_key!r} is not a LoadGen model name: expected e.g."
            " 'resnet50', 'gptj' or 'llama2-70b' (SPEC.md §0), or '*'"
        )
    if scenario not in _SCENARIOS:
        raise ConfigError(
            f"user.conf scenario {scenario!r} is unknown: expected one of {', '.join(_SCENARIOS)}"
            f"{closest(scenario, _SCENARIOS)}"
        )
    lines = [
        "# LoadGen user.conf written by mlperf_trt.",
        "# LoadGen applies its built-in mlperf.conf first, then this file; no seeds are set here.",
    ]
    for key in sorted(settings):
        where = f"user.conf setting {key!r} ({model_key}.{scenario})"
        if key == "mode":
            raise ConfigError(
                f"{where}: 'mode' is not written to user.conf; set TestSettings.mode in code"
                " (SPEC.md §3.4), e.g. with --mode accuracy"
            )
        if key in _SEED_KEYS or key.endswith("_seed"):
            raise ConfigError(
                f"{where}: RNG seeds come only from LoadGen's built-in mlperf.conf (SPEC.md §3.3);"
                " remove the key (pin the LoadGen release of the round instead)"
            )
        if key in _BUILTIN_ONLY:
            raise ConfigError(
                f"{where}: LoadGen reads this key only from its built-in mlperf.conf"
                " (SPEC.md §3.3); remove it"
            )
        if key in _AUDIT_KEYS:
            raise ConfigError(
                f"{where}: this is an audit (compliance test) key; it belongs in audit.config"
                " (SPEC.md §4), not in user.conf"
            )
        if key not in USER_CONF_KEYS:
            raise ConfigError(
                f"{where}: unknown LoadGen key{closest(key, USER_CONF_KEYS)}; LoadGen would"
                f" ignore it silently. Known keys: {', '.join(sorted(USER_CONF_KEYS))}"
            )
        scenarios, integer_key = USER_CONF_KEYS[key]
        if scenario not in scenarios:
            raise ConfigError(
                f"{where}: LoadGen reads {key!r} only for {', '.join(sorted(scenarios))}; for"
                f" {scenario} it would be ignored. Remove it"
            )
        if key == "target_latency" and scenario == "Server":
            integer_key = True  # Server.target_latency is read as integer milliseconds
        value = _format_value(settings[key], integer_key, where)
        lines.append(f"{model_key}.{scenario}.{key} = {value}")
    return "\n".join(lines) + "\n"


def _parse_value(token: str, lineno: int) -> float | int:
    if _DECIMAL_INT.fullmatch(token):
        return int(token, 10)
    if _HEX_INT.fullmatch(token):
        return int(token, 16)
    if re.fullmatch(r"[+-]?0[0-9]+", token):
        raise ConfigError(
            f"line {lineno}: value {token!r} has a leading zero, which LoadGen reads as octal for"
            " integer keys; write it without the leading zero"
        )
    try:
        number = float(token)
    except ValueError:
        raise ConfigError(
            f"line {lineno}: value {token!r} is not a number; LoadGen needs an integer or a"
            " decimal number"
        ) from None
    if not math.isfinite(number):
        raise ConfigError(f"line {lineno}: value {token!r} is not a finite number")
    return number


def parse_conf(text: str) -> dict[str, float | int]:
    """Parse LoadGen conf text into ``{"model.scenario.key": value}``.

    Lines are split into whitespace tokens the way LoadGen does. Blank lines and lines whose first
    token is ``#`` are skipped (as is a lone token starting with '#', which LoadGen also ignores).
    Every other line must be exactly ``model.scenario.key = value``; anything LoadGen would reject
    or silently misread raises ConfigError naming the line number. A later line for the same key
    wins, as in LoadGen.
    """
    result: dict[str, float | int] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        tokens = line.split()
        if not tokens or tokens[0] == "#":
            continue
        if tokens[0].startswith("#"):
            if len(tokens) == 1:
                continue  # LoadGen reads a lone '#----' token as a key without value: ignored
            raise ConfigError(
                f"line {lineno}: {line.strip()!r}: LoadGen needs a space after '#' in a comment"
                " ('# text'); without it FromConfig fails with -EINVAL"
            )
        if len(tokens) < 3 or tokens[1] != "=":
            hint = (
                " (LoadGen ignores 'key=value' without spaces: write 'key = value')"
                if "=" in tokens[0]
                else ""
            )
            raise ConfigError(
                f"line {lineno}: {line.strip()!r} is not 'model.scenario.key = value'{hint}"
            )
        if len(tokens) > 3:
            raise ConfigError(
                f"line {lineno}: {line.strip()!r} has text after the value; LoadGen reads every"
                " further token (a trailing '# comment' too) as another value. Put comments on"
                " their own line"
            )
        key = tokens[0]
        parts = key.split(".")
        if (
            len(parts) != 3
            or not _MODEL.fullmatch(parts[0])
            or parts[1] not in _CONF_SCENARIOS
            or not _KEY.fullmatch(parts[2])
        ):
            raise ConfigError(
                f"line {lineno}: key {key!r} is not 'model.scenario.key' (model a LoadGen model"
                f" name or '*', scenario one of {', '.join(_CONF_SCENARIOS)}); LoadGen matches"
                " keys exactly"
            )
        result[key] = _parse_value(tokens[2], lineno)
    return result
