"""The typed settings registry: precedence, parsing, errors, and the user.conf it produces."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlperf_trt.config import FIELDS, Context, parse_set, resolve_config
from mlperf_trt.errors import ConfigError

CTX = Context(workload="resnet50", scenario="Server", backend="null", cpu_threads=2, gpus=0)


def test_defaults_derive_from_context() -> None:
    cfg = resolve_config(CTX)
    assert cfg["batch_size"] == 64 and cfg["worker_groups"] == 1
    ss = resolve_config(Context("resnet50", "SingleStream", "null", 2, 0))
    ms = resolve_config(Context("resnet50", "MultiStream", "null", 2, 0, samples_per_query=8))
    assert ss["batch_size"] == 1 and ms["batch_size"] == 8
    gpu = resolve_config(Context("resnet50", "Offline", "null", 16, 4))
    assert gpu["worker_groups"] == 4


def test_precedence_default_preset_file_set(tmp_path: Path) -> None:
    conf = tmp_path / "run.toml"
    conf.write_text(
        "server_target_qps = 500\nmin_duration_ms = 2000\n[Server]\nbatch_size = 16\n"
        "[Offline]\nbatch_size = 999\n"
    )
    cfg = resolve_config(
        CTX, duration="smoke", config_files=[conf], overrides=["min_duration_ms=3000"]
    )
    assert cfg["server_target_qps"] == 500.0 and cfg.sources["server_target_qps"].startswith("file")
    assert cfg["min_duration_ms"] == 3000 and cfg.sources["min_duration_ms"] == "--set"
    assert cfg["min_query_count"] == 600 and cfg.sources["min_query_count"] == "duration smoke"
    assert cfg["batch_size"] == 16  # the [Server] table applies, [Offline] does not
    assert cfg.to_json()["settings"]["batch_size"]["source"].startswith("file")


def test_user_conf_settings_use_loadgen_keys_and_units() -> None:
    cfg = resolve_config(
        Context("resnet50", "SingleStream", "null", 2, 0),
        duration="smoke",
        overrides=["single_stream_expected_latency_ns=2500000"],
    )
    conf = cfg.user_conf_settings()
    assert conf == {"target_latency": 2.5, "min_duration": 1000, "min_query_count": 64}
    full = resolve_config(Context("resnet50", "Offline", "null", 2, 0), duration="full")
    assert set(full.user_conf_settings()) == {"target_qps"}  # full keeps mlperf.conf's limits


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("server_target_qsp=10", "did you mean 'server_target_qps'"),
        ("batchsize=4", "did you mean 'batch_size'"),
        ("batch_size", "malformed"),
        ("batch_size=", "malformed"),
        ("batch_size=four", "not a valid int"),
        ("batch_size=2.5", "not a valid int"),
        ("batch_size=0", "below its minimum"),
        ("enable_trace=maybe", "not a valid bool"),
        ("server_target_qps=nan", "not a valid float"),
    ],
)
def test_bad_set_items_name_the_key(item: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_config(CTX, overrides=[item])


def test_values_parse_by_type() -> None:
    cfg = resolve_config(
        CTX, overrides=["enable_trace=yes", "min_query_count=1e3", "server_target_qps=40_000"]
    )
    assert cfg["enable_trace"] is True and cfg["min_query_count"] == 1000
    assert cfg["server_target_qps"] == 40000.0
    assert parse_set([" batch_size = 4 "]) == [("batch_size", "4")]


def test_config_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        resolve_config(CTX, config_files=[tmp_path / "missing.toml"])
    bad = tmp_path / "bad.toml"
    bad.write_text("batch_size = [\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        resolve_config(CTX, config_files=[bad])
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("[Serverr]\nbatch_size = 2\n")
    with pytest.raises(ConfigError, match="did you mean 'Server'"):
        resolve_config(CTX, config_files=[unknown])


def test_every_loadgen_field_is_named_like_loadgen() -> None:
    import mlperf_loadgen as lg

    settings = dir(lg.TestSettings())
    for f in FIELDS:
        if f.conf_key:
            assert f.name in settings, f"{f.name} is written to user.conf but is not a LoadGen name"
