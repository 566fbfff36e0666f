"""mlperf_trt.results: result folders, user.conf, and LoadGen logs from real LoadGen runs.

LoadGen keeps process-wide state (FromConfig counts conf files per process, and an error logged
between tests lands in the next test's log, SPEC.md §3.4), so every LoadGen call here runs in a
child process: the logs this file reads can never be touched by another test file's LoadGen use.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from mlperf_trt.errors import ConfigError, ResultsError
from mlperf_trt.results import (
    AtomicResultDir,
    RunSummary,
    atomic_write_json,
    atomic_write_text,
    format_summary,
    parse_conf,
    read_detail_log,
    render_user_conf,
    result_dir,
    submittable_problems,
    summarize,
)

# SPEC.md §3.3: the seeds built into LoadGen 5.0.x, and those of v5.1 (a "wrong round").
V50_SEEDS = (6023615788873153749, 15036839855038426416, 9933818062894767841)
V51_SEEDS = (1780908523862526354, 14771362308971278857, 18209322760996052031)

needs_loadgen = pytest.mark.skipif(
    importlib.util.find_spec("mlperf_loadgen") is None,
    reason="mlperf_loadgen is not installed (pip install mlcommons-loadgen==5.0.21)",
)

# A tiny SUT and QSL driven by real LoadGen: each run gets a FastSUT that answers with a 4-byte
# payload (at once, after a sleep, or from a timer), a 16-sample QSL and short durations.
_LOADGEN_RUNNER = textwrap.dedent(
    """
    import array, json, sys, threading, time
    from pathlib import Path
    import mlperf_loadgen as lg

    payload = array.array("B", b"\\x01\\x02\\x03\\x04")
    ptr = payload.buffer_info()[0]

    def run(spec, out):
        out.mkdir(parents=True)
        scenario = spec["scenario"]
        n_tokens = spec.get("n_tokens", 0)
        delay, sleep = spec.get("complete_after_s", 0.0), spec.get("sleep_s", 0.0)
        timers = []

        def complete(ids):
            lg.QuerySamplesComplete([lg.QuerySampleResponse(i, ptr, 4, n_tokens) for i in ids])

        def issue(ids, indices):
            if n_tokens and scenario != "Offline":
                lg.FirstTokenComplete([lg.QuerySampleResponse(i, ptr, 4) for i in ids])
            if delay:
                timer = threading.Timer(delay, complete, args=(list(ids),))
                timers.append(timer)
                timer.start()
                return
            if sleep:
                time.sleep(sleep)
            complete(ids)

        sut = lg.ConstructFastSUT(issue, lambda: None)
        qsl = lg.ConstructQSL(16, 16, lambda s: None, lambda s: None)
        settings = lg.TestSettings()
        settings.scenario = getattr(lg.TestScenario, scenario)
        # conf_type 0: only the built-in mlperf.conf (round seeds, per-model settings); it never
        # counts as a second conf file.
        settings.FromConfig("", spec["model"], scenario, 0)
        for _ in range(spec.get("user_conf_calls", 0)):
            settings.FromConfig(spec["user_conf"], spec["model"], scenario)
        accuracy = spec.get("accuracy")
        settings.mode = lg.TestMode.AccuracyOnly if accuracy else lg.TestMode.PerformanceOnly
        for key, value in spec["settings"].items():
            setattr(settings, key, value)
        log_output = lg.LogOutputSettings()
        log_output.outdir = str(out)
        log_settings = lg.LogSettings()
        log_settings.log_output = log_output
        log_settings.enable_trace = False
        audit = str(out / "absent-audit.config")  # never pick up a stray audit.config
        lg.StartTestWithLogSettings(sut, qsl, settings, log_settings, audit)
        for timer in timers:
            timer.join()
        lg.DestroyQSL(qsl)
        lg.DestroyFastSUT(sut)

    root = Path(sys.argv[1])
    for spec in json.loads(sys.argv[2]):
        run(spec, root / spec["name"])
    """
)

_SHORT = {"min_duration_ms": 200}
RUNS: list[dict[str, Any]] = [
    {
        "name": "offline",
        "model": "resnet50",
        "scenario": "Offline",
        "complete_after_s": 0.25,  # Offline min duration is the query's latency (SPEC.md §3.6)
        "settings": {**_SHORT, "min_query_count": 100, "offline_expected_qps": 1000.0},
    },
    {
        "name": "singlestream",
        "model": "resnet50",
        "scenario": "SingleStream",
        "sleep_s": 0.0001,  # slower than the expected latency, so LoadGen never runs out of queries
        "settings": {**_SHORT, "min_query_count": 100, "single_stream_expected_latency_ns": 10_000},
    },
    {
        "name": "server",
        "model": "resnet50",
        "scenario": "Server",
        "settings": {**_SHORT, "min_query_count": 1000, "server_target_qps": 5000.0},
    },
    {
        "name": "multistream",
        "model": "resnet50",
        "scenario": "MultiStream",
        # early stopping at p99 needs >= 662 queries (SPEC.md §2.0); ask for 700
        "settings": {**_SHORT, "min_query_count": 700, "multi_stream_expected_latency_ns": 10_000},
    },
    {
        "name": "server_slow",  # INVALID: 2 ms per query against a 1 ms bound
        "model": "resnet50",
        "scenario": "Server",
        "sleep_s": 0.002,
        "settings": {
            **_SHORT,
            "min_query_count": 100,
            "server_target_qps": 1000.0,
            "server_target_latency_ns": 1_000_000,
        },
    },
    {
        "name": "offline_short",  # INVALID: an instant SUT cannot meet the Offline min duration
        "model": "resnet50",
        "scenario": "Offline",
        "settings": {**_SHORT, "min_query_count": 100, "offline_expected_qps": 1000.0},
    },
    {
        "name": "accuracy",
        "model": "resnet50",
        "scenario": "Offline",
        "accuracy": True,
        "settings": {**_SHORT, "min_query_count": 100, "offline_expected_qps": 1000.0},
    },
    {
        "name": "tokens_offline",
        "model": "llama2-70b",
        "scenario": "Offline",
        "n_tokens": 2,
        "complete_after_s": 0.25,
        "settings": {**_SHORT, "min_query_count": 100, "offline_expected_qps": 1000.0},
    },
    {
        "name": "tokens_server",
        "model": "llama2-70b",
        "scenario": "Server",
        "n_tokens": 2,
        "settings": {**_SHORT, "min_query_count": 1000, "server_target_qps": 5000.0},
    },
    {
        # Last: reading user.conf twice logs "Multiple conf files are used" (SPEC.md §3.4).
        "name": "two_confs",
        "model": "resnet50",
        "scenario": "Server",
        "user_conf_calls": 2,
        "settings": {**_SHORT, "min_query_count": 1000, "server_target_qps": 5000.0},
    },
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if importlib.util.find_spec("mlperf_loadgen") is None:
        pytest.skip("mlperf_loadgen is not installed (pip install mlcommons-loadgen==5.0.21)")
    root = tmp_path_factory.mktemp("loadgen_runs")
    conf = root / "user.conf"
    conf.write_text(render_user_conf("resnet50", "Server", {"target_qps": 5000.0}))
    specs = [dict(spec, user_conf=str(conf)) for spec in RUNS]
    done = subprocess.run(
        [sys.executable, "-c", _LOADGEN_RUNNER, str(root), json.dumps(specs)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=root,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return root


def _summary_txt(run: Path) -> str:
    return (run / "mlperf_log_summary.txt").read_text()


def _summary_number(text: str, label: str) -> float:
    match = re.search(rf"^{re.escape(label)}\s*:\s*(\S+)\s*$", text, re.MULTILINE)
    assert match, f"{label!r} not in summary"
    return float(match.group(1))


# ---------------------------------------------------------------------------------------------
# layout


def test_result_dir_layout(tmp_path: Path) -> None:
    perf = result_dir(tmp_path, "1xH200", "resnet", "Offline", "performance")
    assert perf == tmp_path / "1xH200" / "resnet" / "Offline" / "performance" / "run_1"
    acc = result_dir(tmp_path, "cpu-x-2t", "bert-99.9", "Server", "accuracy")
    assert acc == tmp_path / "cpu-x-2t" / "bert-99.9" / "Server" / "accuracy"
    with pytest.raises(ConfigError, match="Offline"):
        result_dir(tmp_path, "1xH200", "resnet", "offline", "performance")
    with pytest.raises(ConfigError, match="system id"):
        result_dir(tmp_path, "../etc", "resnet", "Offline", "performance")
    with pytest.raises(ConfigError, match="performance"):
        result_dir(tmp_path, "1xH200", "resnet", "Offline", "perf")


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_atomic_result_dir_success(tmp_path: Path) -> None:
    final = tmp_path / "Offline" / "accuracy"
    with AtomicResultDir(final) as tmp:
        assert tmp.parent == final.parent and tmp.name.startswith(".accuracy.partial-")
        (tmp / "mlperf_log_detail.txt").write_text("detail\n")
        (tmp / "sub").mkdir()
        (tmp / "sub" / "x.json").write_text("{}")
        assert not final.exists()  # nothing visible until the run is complete
    assert (final / "mlperf_log_detail.txt").read_text() == "detail\n"
    assert (final / "sub" / "x.json").exists()
    assert _listing(final.parent) == ["accuracy"]


def test_atomic_result_dir_failure_leaves_nothing(tmp_path: Path) -> None:
    final = tmp_path / "run_1"
    with pytest.raises(RuntimeError, match="worker died"), AtomicResultDir(final) as tmp:
        (tmp / "mlperf_log_summary.txt").write_text("half")
        raise RuntimeError("worker died")
    assert _listing(tmp_path) == []


def test_atomic_result_dir_replaces_and_keeps_old_on_failure(tmp_path: Path) -> None:
    final = tmp_path / "run_1"
    final.mkdir()
    (final / "old.txt").write_text("old")
    with pytest.raises(ValueError), AtomicResultDir(final) as tmp:
        (tmp / "new.txt").write_text("new")
        raise ValueError("checks failed")
    assert _listing(final) == ["old.txt"]  # a failed run never touches the previous result
    with AtomicResultDir(final) as tmp:
        (tmp / "new.txt").write_text("new")
    assert _listing(final) == ["new.txt"]
    assert _listing(tmp_path) == ["run_1"]  # no .partial and no trash left behind


def test_atomic_result_dir_explicit_use(tmp_path: Path) -> None:
    keep = AtomicResultDir(tmp_path / "a")
    (keep.temp / "f").write_text("1")
    assert keep.commit() == tmp_path / "a"
    assert (tmp_path / "a" / "f").read_text() == "1"
    with pytest.raises(ResultsError, match="already committed"):
        keep.commit()
    drop = AtomicResultDir(tmp_path / "b")
    (drop.temp / "f").write_text("1")
    drop.discard()
    assert _listing(tmp_path) == ["a"]


def test_killed_process_leaves_only_a_hidden_partial(tmp_path: Path) -> None:
    final = tmp_path / "run_1"
    code = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from mlperf_trt.results import AtomicResultDir\n"
        "with AtomicResultDir(Path(sys.argv[1])) as tmp:\n"
        "    (tmp / 'mlperf_log_detail.txt').write_text('partial')\n"
        "    os._exit(3)\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    done = subprocess.run([sys.executable, "-c", code, str(final)], env=env, timeout=60)
    assert done.returncode == 3
    names = _listing(tmp_path)
    assert len(names) == 1 and names[0].startswith(".run_1.partial-")
    assert not final.exists()


def test_atomic_write_text_and_json(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "user.conf"
    atomic_write_text(target, "a = 1\n")
    atomic_write_text(target, "a = 2\n")
    assert target.read_text() == "a = 2\n"
    config = tmp_path / "resolved_config.json"
    atomic_write_json(config, {"b": 1, "a": [1.5, "x"]})
    assert config.read_text() == '{\n  "a": [\n    1.5,\n    "x"\n  ],\n  "b": 1\n}\n'
    with pytest.raises(ResultsError, match="JSON"):
        atomic_write_json(config, {"bad": float("nan")})
    with pytest.raises(ResultsError, match="JSON"):
        atomic_write_json(tmp_path / "obj.json", {"bad": object()})
    assert json.loads(config.read_text()) == {"a": [1.5, "x"], "b": 1}  # old content intact
    assert _listing(tmp_path) == ["deep", "resolved_config.json"]  # no temp files left
    assert _listing(tmp_path / "deep") == ["user.conf"]


# ---------------------------------------------------------------------------------------------
# user.conf


def test_user_conf_round_trip() -> None:
    settings = {
        "target_qps": 1234.5,
        "min_duration": 600000,
        "min_query_count": 30000.0,  # whole float for an integer key: written as an int
        "performance_sample_count_override": 2048,
    }
    text = render_user_conf("resnet50", "Offline", settings)
    assert text.startswith("# ") and "mlperf_trt" in text.splitlines()[0]
    assert "resnet50.Offline.target_qps = 1234.5\n" in text
    assert "resnet50.Offline.min_query_count = 30000\n" in text
    parsed = parse_conf(text)
    assert parsed == {f"resnet50.Offline.{k}": v for k, v in settings.items()}
    assert isinstance(parsed["resnet50.Offline.min_query_count"], int)
    assert isinstance(parsed["resnet50.Offline.target_qps"], float)
    tiny = render_user_conf("bert", "SingleStream", {"target_latency": 1e-05})
    assert "bert.SingleStream.target_latency = 0.00001\n" in tiny  # no exponent
    assert parse_conf(tiny) == {"bert.SingleStream.target_latency": 1e-05}
    server = render_user_conf("gptj", "Server", {"target_qps": 1 / 3, "target_latency": 20000.0})
    assert parse_conf(server)["gptj.Server.target_qps"] == 1 / 3  # full double precision
    assert "gptj.Server.target_latency = 20000\n" in server  # Server reads it as integer ms


@pytest.mark.parametrize(
    ("scenario", "settings", "match"),
    [
        ("Offline", {"qsl_rng_seed": 1}, "mlperf.conf"),
        ("Offline", {"schedule_rng_seed": 1}, "seeds"),
        ("Server", {"mode": 2}, "mode"),
        ("Offline", {"target_qsp": 10.0}, "target_qps"),  # typo: suggestion
        ("Offline", {"samples_per_query": 8}, "MultiStream"),  # not read for Offline
        ("Offline", {"target_qps": float("inf")}, "finite"),
        ("Offline", {"target_qps": float("nan")}, "finite"),
        ("Offline", {"min_duration": -1}, "negative"),
        ("Offline", {"min_duration": 1234.9}, "whole number"),
        ("Server", {"target_latency": 0.5}, "whole number"),
        ("Offline", {"target_qps": "100"}, "int or float"),
        ("Offline", {"performance_issue_same": 1}, "audit.config"),
        ("offline", {"target_qps": 1.0}, "Offline"),
    ],
)
def test_user_conf_rejects(scenario: str, settings: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        render_user_conf("resnet50", scenario, settings)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("resnet50.Offline.target_qps=5", "without spaces"),
        ("#comment words", "space after '#'"),
        ("resnet50.Offline.target_qps = 5 # note", "after the value"),
        ("resnet50.Offline.min_duration = 010", "octal"),
        ("resnet50.Offline.target_qps = fast", "not a number"),
        ("resnet50.target_qps = 5", "model.scenario.key"),
        ("resnet50.offline.target_qps = 5", "model.scenario.key"),
    ],
)
def test_parse_conf_rejects_what_loadgen_misreads(line: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as caught:
        parse_conf(f"# header\n\n{line}\n")
    assert "line 3" in str(caught.value)


def test_parse_conf_reads_loadgen_style_files() -> None:
    text = (
        "# The format of this config file is 'key = value'.\n"
        "#------------\n"
        "*.*.qsl_rng_seed = 6023615788873153749\n"
        "*.Server.target_latency = 10\n"
        "\tresnet50.Server.target_latency   =   15  \n"
        "gptj.*.token_latency_scaling_factor = 69\n"
        "*.Server.target_latency = 12\n"  # a later line wins, as in LoadGen
    )
    assert parse_conf(text) == {
        "*.*.qsl_rng_seed": 6023615788873153749,
        "*.Server.target_latency": 12,
        "resnet50.Server.target_latency": 15,
        "gptj.*.token_latency_scaling_factor": 69,
    }


_FROM_CONFIG = textwrap.dedent(
    """
    import json, sys
    import mlperf_loadgen as lg
    offline = lg.TestSettings()
    rc = offline.FromConfig(sys.argv[1], "resnet50", "Offline")
    server = lg.TestSettings()
    rc_server = server.FromConfig(sys.argv[2], "resnet50", "Server")
    ignored = lg.TestSettings()
    rc_ignored = ignored.FromConfig(sys.argv[3], "resnet50", "Offline")
    print(json.dumps({
        "rc": rc, "rc_server": rc_server, "rc_ignored": rc_ignored,
        "offline_expected_qps": offline.offline_expected_qps,
        "min_duration_ms": offline.min_duration_ms,
        "min_query_count": offline.min_query_count,
        "performance_sample_count_override": offline.performance_sample_count_override,
        "seeds": [offline.qsl_rng_seed, offline.sample_index_rng_seed, offline.schedule_rng_seed],
        "server_target_qps": server.server_target_qps,
        "server_target_latency_ns": server.server_target_latency_ns,
        "ignored_qps": ignored.offline_expected_qps,
    }))
    """
)


@needs_loadgen
def test_loadgen_accepts_rendered_user_conf(tmp_path: Path) -> None:
    offline = tmp_path / "offline.conf"
    offline.write_text(
        render_user_conf(
            "resnet50",
            "Offline",
            {
                "target_qps": 1234.5,
                "min_duration": 660000,
                "min_query_count": 30000,
                "performance_sample_count_override": 2048,
            },
        )
    )
    server = tmp_path / "server.conf"
    server.write_text(render_user_conf("resnet50", "Server", {"target_qps": 0.25}))
    # What parse_conf refuses: LoadGen silently ignores 'key=value' without spaces.
    ignored = tmp_path / "ignored.conf"
    ignored.write_text("resnet50.Offline.target_qps=5\n")
    done = subprocess.run(
        [sys.executable, "-c", _FROM_CONFIG, str(offline), str(server), str(ignored)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert got["rc"] == got["rc_server"] == got["rc_ignored"] == 0
    assert got["offline_expected_qps"] == 1234.5
    assert got["min_duration_ms"] == 660000
    assert got["min_query_count"] == 30000
    assert got["performance_sample_count_override"] == 2048
    assert tuple(got["seeds"]) == V50_SEEDS  # the built-in mlperf.conf was applied first
    assert got["server_target_qps"] == 0.25
    assert got["ignored_qps"] == 1.0  # LoadGen's default: the line had no effect
    with pytest.raises(ConfigError):
        parse_conf(ignored.read_text())


# ---------------------------------------------------------------------------------------------
# LoadGen logs


@pytest.mark.parametrize(
    ("name", "scenario", "metric_name", "summary_label"),
    [
        ("offline", "Offline", "Samples/s", "Samples per second"),
        ("server", "Server", "Completed samples/s", "Completed samples per second"),
        (
            "singlestream",
            "SingleStream",
            "p90 latency (ms, early-stopping estimate)",
            "Early stopping 90.0th percentile estimate",
        ),
        (
            "multistream",
            "MultiStream",
            "p99 latency per query (ms, early-stopping estimate)",
            "Early stopping 99.0th percentile estimate",
        ),
        ("tokens_offline", "Offline", "Tokens/s", "Tokens per second"),
        ("tokens_server", "Server", "Completed tokens/s", "Completed tokens per second"),
    ],
)
def test_summarize_valid_runs(
    runs: Path, name: str, scenario: str, metric_name: str, summary_label: str
) -> None:
    run = runs / name
    text = _summary_txt(run)
    assert "Result is : VALID" in text
    summary = summarize(run)
    assert summary.scenario == scenario
    assert summary.mode == "PerformanceOnly"
    assert summary.valid and summary.invalid_reasons == () and summary.errors == ()
    assert summary.metric_name == metric_name
    expected = re.search(rf"\* {re.escape(summary_label)}: (\d+)", text) or re.search(
        rf"^{re.escape(summary_label)}\s*:\s*(\S+)\s*$", text, re.MULTILINE
    )
    assert expected, f"{summary_label!r} not in {run / 'mlperf_log_summary.txt'}"
    reported = float(expected.group(1))
    if "latency" in metric_name:
        assert summary.metric_value == pytest.approx(reported / 1e6, rel=1e-9)  # ns -> ms
    else:
        assert summary.metric_value == pytest.approx(reported, rel=1e-5)  # printed to 6 digits
    assert summary.loadgen_version.startswith("5.0.")
    assert summary.effective["scenario"] == scenario
    assert summary.effective["min_duration_ms"] == 200
    assert list(summary.latency_percentiles_ns) == [
        "50.00",
        "90.00",
        "95.00",
        "97.00",
        "99.00",
        "99.90",
    ]
    assert summary.latency_percentiles_ns["90.00"] == _summary_number(
        text, "90.00 percentile latency (ns)"
    )
    assert summary.min_latency_ns == _summary_number(text, "Min latency (ns)")
    assert summary.max_latency_ns is not None
    assert summary.min_latency_ns <= summary.latency_percentiles_ns["50.00"]
    assert summary.latency_percentiles_ns["99.90"] <= summary.max_latency_ns
    if scenario == "Offline":
        assert summary.samples_per_second == pytest.approx(
            _summary_number(text, "Samples per second"), rel=1e-5
        )
    elif scenario == "Server":
        assert summary.samples_per_second == pytest.approx(
            _summary_number(text, "Completed samples per second"), rel=1e-5
        )
    else:
        assert summary.samples_per_second is None
    screen = format_summary(summary)
    assert "Result is : VALID" in screen and metric_name in screen and scenario in screen


def test_summarize_invalid_server(runs: Path) -> None:
    text = _summary_txt(runs / "server_slow")
    assert "Result is : INVALID" in text
    assert "Performance constraints satisfied : NO" in text
    summary = summarize(runs / "server_slow")
    assert not summary.valid
    assert "latency constraint not met" in summary.invalid_reasons
    assert "min duration not met" not in summary.invalid_reasons
    assert ("early stopping not met" in summary.invalid_reasons) == (
        "Early stopping satisfied: NO" in text
    )
    assert summary.effective["target_latency_ns"] == 1_000_000
    assert summary.latency_percentiles_ns["99.00"] > 1_000_000
    screen = format_summary(summary)
    assert "Result is : INVALID" in screen and "latency constraint not met" in screen


def test_summarize_invalid_offline_min_duration(runs: Path) -> None:
    assert "Min duration satisfied : NO" in _summary_txt(runs / "offline_short")
    summary = summarize(runs / "offline_short")
    assert not summary.valid
    assert summary.invalid_reasons[0] == "min duration not met"
    assert "min queries not met" not in summary.invalid_reasons


def test_summarize_accuracy_run(runs: Path) -> None:
    summary = summarize(runs / "accuracy")
    assert summary.mode == "AccuracyOnly"
    assert summary.valid and summary.metric_name == "" and summary.errors == ()
    assert "accuracy run" in format_summary(summary)
    problems = submittable_problems(
        summary,
        round_seeds=V50_SEEDS,
        required_psc=1024,
        offline_min_samples=1,
        server_latency_ns=None,
        equal_issue=False,
    )
    assert any("AccuracyOnly" in p for p in problems)


def test_loadgen_errors_are_reported(runs: Path) -> None:
    summary = summarize(runs / "two_confs")
    # LoadGen still prints VALID: the error only shows in the detail log (SPEC.md §3.6).
    assert "Result is : VALID" in _summary_txt(runs / "two_confs")
    assert summary.valid
    assert len(summary.errors) == 1 and summary.errors[0].startswith("error_invalid_config:")
    assert "Multiple conf files" in summary.invalid_reasons[-1]
    problems = submittable_problems(
        summary,
        round_seeds=V50_SEEDS,
        required_psc=1024,
        offline_min_samples=1,
        server_latency_ns=15_000_000,
        equal_issue=False,
    )
    assert any("Multiple conf files" in p for p in problems)
    assert "LoadGen logged errors" in format_summary(summary)


def _check(summary: RunSummary, **overrides: object) -> list[str]:
    args: dict[str, object] = {
        "round_seeds": V50_SEEDS,
        "required_psc": 1024,  # resnet50 (SPEC.md §2.0), set by the built-in mlperf.conf
        "offline_min_samples": 24576,
        "server_latency_ns": 15_000_000,
        "equal_issue": False,
    }
    args.update(overrides)
    return submittable_problems(summary, **args)  # type: ignore[arg-type]


def test_submittable_problems_flags_smoke_runs_only_for_what_is_wrong(runs: Path) -> None:
    server = summarize(runs / "server")
    problems = _check(server)
    assert len(problems) == 1
    assert "effective_min_duration_ms is 200" in problems[0] and "600000" in problems[0]

    offline = summarize(runs / "offline")
    problems = _check(offline)
    assert len(problems) == 2
    assert any("samples_per_query is 220" in p and "24576" in p for p in problems)
    assert _check(offline, offline_min_samples=220) == problems[:1]


def test_submittable_problems_flags_wrong_seeds_and_settings(runs: Path) -> None:
    server = summarize(runs / "server")
    problems = _check(server, round_seeds=V51_SEEDS)
    seed_problems = [p for p in problems if "rng_seed" in p]
    assert len(seed_problems) == 3
    assert f"effective_qsl_rng_seed is {V50_SEEDS[0]}" in seed_problems[0]
    assert str(V51_SEEDS[0]) in seed_problems[0]
    assert any("performance_sample_count is 1024" in p for p in _check(server, required_psc=2048))
    assert any(
        "target_latency_ns is 15000000" in p for p in _check(server, server_latency_ns=10**7)
    )
    assert any("sample_concatenate_permutation" in p for p in _check(server, equal_issue=True))
    slow = summarize(runs / "server_slow")
    assert any("INVALID" in p and "latency constraint" in p for p in _check(slow))


def test_summarize_handles_string_and_boolean_values(runs: Path, tmp_path: Path) -> None:
    """Values may be JSON numbers, numeric strings or booleans: the summary must not change."""
    lines = []
    for line in (runs / "server" / "mlperf_log_detail.txt").read_text().splitlines():
        if line.startswith(":::MLLOG "):
            record = json.loads(line[len(":::MLLOG ") :])
            value = record["value"]
            if isinstance(value, bool):
                record["value"] = "true" if value else "false"
            elif isinstance(value, (int, float)):
                record["value"] = str(value)
            line = ":::MLLOG " + json.dumps(record)
        lines.append(line)
    (tmp_path / "mlperf_log_detail.txt").write_text("\n".join(lines) + "\n")
    original, rewritten = summarize(runs / "server"), summarize(tmp_path)
    assert rewritten.valid and rewritten.metric_value == original.metric_value
    assert rewritten.latency_percentiles_ns == original.latency_percentiles_ns
    assert _check(rewritten) == _check(original)


def test_read_detail_log(runs: Path, tmp_path: Path) -> None:
    log = read_detail_log(runs / "server" / "mlperf_log_detail.txt")
    assert log.get("result_validity") == "VALID"
    assert log.get("effective_qsl_rng_seed") == V50_SEEDS[0]
    assert log.get("no_such_key", "absent") == "absent"
    assert log.errors == ()
    with pytest.raises(ResultsError, match="does not exist"):
        read_detail_log(tmp_path / "mlperf_log_detail.txt")
    with pytest.raises(ResultsError, match="no ':::MLLOG' entries"):
        atomic_write_text(tmp_path / "empty.txt", "hello\n")
        read_detail_log(tmp_path / "empty.txt")
    cut = (runs / "server" / "mlperf_log_detail.txt").read_text()[:-40]  # a killed run
    atomic_write_text(tmp_path / "cut" / "mlperf_log_detail.txt", cut)
    with pytest.raises(ResultsError, match=r"line \d+"):
        summarize(tmp_path / "cut")
    with pytest.raises(ResultsError, match="result_validity"):
        head = "\n".join(cut.splitlines()[:60]) + "\n"  # settings logged, no results
        atomic_write_text(tmp_path / "unfinished" / "mlperf_log_detail.txt", head)
        summarize(tmp_path / "unfinished")
