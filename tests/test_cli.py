"""The CLI end to end with the real LoadGen and the null backend, and its bad-input handling."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlperf_trt.benchmarks import ROUNDS

RESULT = Path("results/testsys")


def _no_results(cwd: Path) -> None:
    found = (
        [p for p in (cwd / "results").rglob("*") if p.is_file()]
        if (cwd / "results").exists()
        else []
    )
    assert not found, f"a failed run left files behind: {found}"


@pytest.mark.parametrize("scenario", ["SingleStream", "MultiStream", "Server", "Offline"])
def test_smoke_run_is_valid_in_every_scenario(cli, tmp_path: Path, scenario: str) -> None:  # type: ignore[no-untyped-def]
    proc = cli(
        "run",
        "--model",
        "resnet50",
        "--scenario",
        scenario,
        "--backend",
        "null",
        "--duration",
        "smoke",
        "--no-progress",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Result is : VALID" in proc.stdout
    assert "Submittable : no" in proc.stdout and "--duration smoke" in proc.stdout
    run_dir = tmp_path / RESULT / "resnet50" / scenario / "performance" / "run_1"
    summary = (run_dir / "mlperf_log_summary.txt").read_text()
    assert "Result is : VALID" in summary and f"Scenario : {scenario}" in summary
    detail = (run_dir / "mlperf_log_detail.txt").read_text()
    assert '"is_error": true' not in detail
    conf = (run_dir / "user.conf").read_text()
    assert f"resnet50.{scenario}.min_duration = 1000" in conf
    resolved = json.loads((run_dir / "resolved_config.json").read_text())
    assert (
        resolved["scenario"] == scenario
        and resolved["settings"]["min_duration_ms"]["value"] == 1000
    )
    # v5.0 seeds come from the pinned LoadGen build (SPEC §3.3)
    assert '"effective_qsl_rng_seed", "value": 6023615788873153749' in detail
    assert not list(run_dir.parent.glob(".*partial*"))


def test_token_benchmark_server_sends_first_tokens(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proc = cli(
        "run",
        "--model",
        "llama2-70b-99",
        "--scenario",
        "Server",
        "--backend",
        "null",
        "--duration",
        "smoke",
        "--no-progress",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Result is : VALID" in proc.stdout and "tokens/s" in proc.stdout
    detail = tmp_path / RESULT / "llama2-70b-99/Server/performance/run_1/mlperf_log_detail.txt"
    text = detail.read_text()
    assert '"is_error": true' not in text  # FirstTokenComplete came before completion, n_tokens > 1
    assert "result_first_token_99.00_percentile_latency_ns" in text


def test_submission_mode_runs_accuracy_then_performance(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proc = cli(
        "run",
        "--model",
        "resnet50",
        "--scenario",
        "Offline",
        "--mode",
        "submission",
        "--backend",
        "null",
        "--duration",
        "smoke",
        "--no-progress",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    base = tmp_path / RESULT / "resnet50/Offline"
    log = json.loads((base / "accuracy/mlperf_log_accuracy.json").read_text())
    # accuracy mode issues every sample of the data set once (SPEC §3.5; ImageNet: 50,000)
    assert sorted(e["qsl_idx"] for e in log) == list(range(50_000))
    assert all(e["data"] == "00000000" for e in log)  # one float32 per sample, SPEC §1.2
    assert "Result is : VALID" in (base / "performance/run_1/mlperf_log_summary.txt").read_text()
    for part in ("accuracy", "performance/run_1"):  # each test in its own process: no conf error
        assert '"is_error": true' not in (base / part / "mlperf_log_detail.txt").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "resnet51", "--scenario", "Offline"], "did you mean 'resnet50'"),
        (["--model", "resnet50", "--scenario", "Ofline"], "did you mean 'Offline'"),
        (["--model", "resnet50", "--scenario", "Offline", "--set", "batch_size"], "malformed"),
        (
            ["--model", "resnet50", "--scenario", "Offline", "--set", "batchsize=2"],
            "did you mean 'batch_size'",
        ),
        (
            ["--model", "resnet50", "--scenario", "Offline", "--data-dir", "no/such/dir"],
            "--data-dir no/such/dir: no such directory",
        ),
        (
            ["--model", "resnet50", "--scenario", "Offline", "--backend", "nul"],
            "did you mean 'null'",
        ),
        (["--model", "resnet50", "--scenario", "Offline", "--round", "v3.1"], "v4.1"),
    ],
)
def test_bad_input_is_a_clear_error_and_leaves_nothing(
    cli,
    tmp_path: Path,
    args: list[str],  # type: ignore[no-untyped-def]
    message: str,
) -> None:
    proc = cli("run", "--backend", "null", "--duration", "smoke", *args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    _no_results(tmp_path)


def test_stray_audit_config_is_refused(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "audit.config").write_text("*.*.mode = 2\n")
    proc = cli(
        "run",
        "--model",
        "resnet50",
        "--scenario",
        "Offline",
        "--backend",
        "null",
        "--duration",
        "smoke",
    )
    assert proc.returncode == 2 and "compliance test" in proc.stderr
    _no_results(tmp_path)


@pytest.mark.parametrize("round_", ROUNDS)
def test_list_prints_the_round_table(cli, round_: str) -> None:  # type: ignore[no-untyped-def]
    proc = cli("list", "--round", round_)
    assert proc.returncode == 0
    assert "resnet50" in proc.stdout and "stable-diffusion-xl" in proc.stdout
    if round_ == "v4.1":
        for figure in (
            "76.46",
            "37.55",
            "90.874",
            "42.9865",
            "44.4312",
            "45.4911",
            "80.31",
            "23.01085758",
            "23.95007626",
        ):
            assert figure in proc.stdout


def test_info_reports_build_and_backends(cli) -> None:  # type: ignore[no-untyped-def]
    proc = cli("info")
    assert proc.returncode == 0, proc.stderr
    assert "system id   : testsys" in proc.stdout
    assert '"cuda_built"' in proc.stdout
    assert "backend null: usable" in proc.stdout
