"""Compliance tests, accuracy-log truncation, the submission tree, its self-check and the report,
on the tiny resnet50 with ONNX Runtime and smoke durations (SPEC §4-§6).

One results folder is shared by the module: an Offline accuracy and performance run, a SingleStream
performance run with a trace, then TEST01 and TEST04 through `audit --all`.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlperf_trt.errors import SubmissionError

TINY = (
    "--model",
    "resnet50",
    "--backend",
    "ort",
    "--model-size",
    "tiny",
    "--no-progress",
    "--set",
    "synthetic_samples=48",
    "--duration",
    "smoke",
)
# Until the CLI registers the submission commands, they run through their standalone entry.
ENTRY = "import sys; from mlperf_trt.submission.commands import main; sys.exit(main())"
SYSTEM = {
    "system_name": "Test box",
    "host_memory_configuration": "2x16GB DDR5",
    "host_storage_capacity": "100 GB",
    "host_storage_type": "NVMe SSD",
    "host_networking": "Ethernet",
    "host_network_card_count": "1",
    "host_networking_topology": "N/A",
    "cooling": "air",
    "system_type": "datacenter",
}


class Env:
    def __init__(self, root: Path, data_root: Path) -> None:
        self.root, self.tmp = root, root / "tmpdir"
        self.tmp.mkdir()
        self.env = dict(os.environ)
        self.env.update(
            MLPERF_TRT_SYSTEM_ID="testsys",
            MLPERF_TRT_DATA_ROOT=str(data_root),
            TMPDIR=str(self.tmp),  # where audit.config files are made: watched by the tests
        )
        self.scenario = root / "results/testsys/resnet50/Offline"

    def cmd(self, *args: str) -> list[str]:
        if args[0] in ("audit", "submit", "report"):
            return [sys.executable, "-c", ENTRY, *args]
        return [sys.executable, "-m", "mlperf_trt", *args]

    def call(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.cmd(*args),
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def audit_configs(self) -> list[Path]:
        return sorted(self.tmp.rglob("audit.config"))


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, shared_data_root: Path) -> Env:
    e = Env(tmp_path_factory.mktemp("submission"), shared_data_root)
    for extra in (("--scenario", "Offline", "--mode", "accuracy"), ("--scenario", "Offline")):
        proc = e.call("run", *TINY, *extra)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = e.call("run", *TINY, "--scenario", "SingleStream", "--set", "enable_trace=true")
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    proc = e.call("audit", *TINY, "--scenario", "Offline", "--all")
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr  # 1: a verdict of FAIL
    assert "TEST01 is :" in proc.stdout and "TEST04 is :" in proc.stdout, proc.stdout
    return e


def _detail(path: Path) -> dict[str, object]:
    out = {}
    for line in path.read_text().splitlines():
        if line.startswith(":::MLLOG "):
            record = json.loads(line[len(":::MLLOG ") :])
            out[record["key"]] = record["value"]
    return out


def _first_floats(log: Path) -> list[tuple[int, float]]:
    return [
        (e["qsl_idx"], struct.unpack_from("<f", bytes.fromhex(e["data"]))[0])
        for e in json.loads(log.read_text())
    ]


def test_test01_and_test04_run_and_verify(env: Env) -> None:
    t01, t04 = env.scenario / "TEST01", env.scenario / "TEST04"
    # The runs really were compliance runs: LoadGen found the audit config and applied it.
    for test in (t01, t04):
        detail = _detail(test / "performance/run_1/mlperf_log_detail.txt")
        assert detail["effective_test_mode"] == "PerformanceOnly"
    assert _detail(t04 / "performance/run_1/mlperf_log_detail.txt")[
        "effective_performance_issue_same"
    ] in (True, 1, "true")
    # TEST01 accuracy: recompute the first-element comparison independently (SPEC §4.1).
    reference = dict(reversed(_first_floats(env.scenario / "accuracy/mlperf_log_accuracy.json")))
    sampled = _first_floats(t01 / "accuracy/mlperf_log_accuracy.json")
    assert sampled, "TEST01 logged no samples"
    mismatches = sum(1 for idx, v in sampled if idx in reference and reference[idx] != v)
    matches = sum(1 for idx, v in sampled if idx in reference and reference[idx] == v)
    text = (t01 / "verify_accuracy.txt").read_text()
    assert f"num_perf_log_entries = {len(sampled)}" in text
    assert f"num_perf_log_data_mismatch = {mismatches}" in text
    if mismatches == 0 and matches >= 1:
        assert "TEST PASS" in text
    else:
        assert "TEST FAIL" in text and (t01 / "accuracy/baseline_accuracy.txt").is_file()
    # Performance verdicts against the detail logs' own numbers (SPEC §4.1, §4.2).
    ref = float(_detail(env.scenario / "performance/run_1/mlperf_log_detail.txt")[
        "result_samples_per_second"
    ])  # fmt: skip
    for test, rule in ((t01, lambda r, t: 0.9 * r < t < 1.1 * r), (t04, lambda r, t: t < 1.1 * r)):
        score = float(_detail(test / "performance/run_1/mlperf_log_detail.txt")[
            "result_samples_per_second"
        ])  # fmt: skip
        verdict = (test / "verify_performance.txt").read_text()
        assert ("TEST PASS" in verdict) == rule(ref, score), verdict
    assert env.audit_configs() == []


def test_audit_config_is_removed_when_the_run_fails(env: Env) -> None:
    before = (env.scenario / "TEST04/verify_performance.txt").read_bytes()
    empty = env.root / "no-data"
    empty.mkdir(exist_ok=True)
    proc = env.call(
        "audit", *TINY, "--scenario", "Offline", "--test", "TEST04", "--data-dir", str(empty)
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "val_map.txt" in proc.stderr and "compliance run failed" in proc.stderr
    assert env.audit_configs() == []
    assert (env.scenario / "TEST04/verify_performance.txt").read_bytes() == before
    assert not [p for p in env.scenario.iterdir() if p.name.startswith(".")]


def test_audit_config_is_removed_on_ctrl_c(env: Env) -> None:
    before = (env.scenario / "TEST04/verify_performance.txt").read_bytes()
    proc = subprocess.Popen(
        # A 30 s run, so that the Ctrl-C below lands while LoadGen runs, not after a fast run
        # on a quiet machine has already replaced the TEST04 folder.
        env.cmd(
            "audit",
            *TINY,
            "--scenario",
            "Offline",
            "--test",
            "TEST04",
            "--set",
            "min_duration_ms=30000",
        ),  # fmt: skip
        cwd=env.root,
        env=env.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60

    def loadgen_running() -> bool:  # LoadGen writes its detail log as the test starts
        return any(env.scenario.glob(".*/**/mlperf_log_detail.txt"))

    while not loadgen_running() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert env.audit_configs(), "the audit's audit.config is not there while LoadGen runs"
    assert loadgen_running(), "the audit's LoadGen run never started"
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole process group
    assert proc.wait(timeout=60) != 0
    assert env.audit_configs() == []
    assert (env.scenario / "TEST04/verify_performance.txt").read_bytes() == before
    assert not [p for p in env.scenario.iterdir() if p.name.startswith(".")]


def test_audit_refuses_a_test_the_benchmark_does_not_have(env: Env) -> None:
    proc = env.call("audit", *TINY, "--scenario", "Offline", "--test", "TEST06")
    assert proc.returncode == 2 and "TEST06" in proc.stderr and "TEST01, TEST04" in proc.stderr
    assert env.audit_configs() == []


def test_truncation_writes_the_hash_of_the_original_bytes(tmp_path: Path) -> None:
    from mlperf_trt.submission.truncate import truncate_accuracy_dir

    entries = [{"seq_id": i, "qsl_idx": i, "data": f"{i:08X}"} for i in range(600)]
    original = ("[\n" + ",\n".join(json.dumps(e) for e in entries) + "\n]\n").encode()
    assert len(original) > 10 * 1024
    (tmp_path / "mlperf_log_accuracy.json").write_bytes(original)
    (tmp_path / "accuracy.txt").write_text("accuracy=76.500%, good=459, total=600\n")
    result = truncate_accuracy_dir(tmp_path)
    digest = hashlib.sha256(original).hexdigest()
    assert result.sha256 == digest and result.truncated
    assert (tmp_path / "accuracy.txt").read_text().splitlines() == [
        "accuracy=76.500%, good=459, total=600",
        f"hash={digest}",
    ]
    kept = (tmp_path / "mlperf_log_accuracy.json").read_bytes()
    assert kept == original[:4096] + b"\n\n...\n\n" + original[-4096:]
    again = truncate_accuracy_dir(tmp_path)  # already hashed and < 10 KB: left alone
    assert again.skipped and (tmp_path / "mlperf_log_accuracy.json").read_bytes() == kept
    small = tmp_path / "small"
    small.mkdir()
    (small / "mlperf_log_accuracy.json").write_bytes(original[:1000])
    truncate_accuracy_dir(small, compliance=True)  # creates accuracy.txt, keeps a < 4 KB log
    assert (small / "mlperf_log_accuracy.json").read_bytes() == original[:1000]
    expected = hashlib.sha256(original[:1000]).hexdigest()
    assert (small / "accuracy.txt").read_text() == f"hash={expected}\n"


def test_a_missing_system_field_is_named(env: Env, tmp_path: Path) -> None:
    from mlperf_trt.submission.tree import describe_system, find_results

    partial = {k: v for k, v in SYSTEM.items() if k not in ("cooling", "host_storage_type")}
    path = tmp_path / "system.json"
    path.write_text(json.dumps(partial))
    found, _ = find_results(env.root / "results")
    with pytest.raises(SubmissionError) as err:
        describe_system(submitter="ACME", division="closed", system_json=path, results=found)
    message = str(err.value)
    assert "host_storage_type" in message and "cooling" in message and "2 required" in message
    proc = env.call(
        "submit",
        "--submitter",
        "ACME",
        "--division",
        "closed",
        "--results-dir",
        "results",
        "--out",
        str(tmp_path / "out"),
        "--system-json",
        str(path),
    )
    assert proc.returncode == 2 and "cooling" in proc.stderr, proc.stderr
    assert not (tmp_path / "out").exists()


def test_staged_smoke_submission_has_exactly_the_expected_problems(
    env: Env, tmp_path: Path
) -> None:
    from mlperf_trt.submission.check import check_submission

    system = tmp_path / "system.json"
    system.write_text(json.dumps(SYSTEM))
    results = env.root / "results"
    before = {p: p.read_bytes() for p in results.rglob("*") if p.is_file()}
    out = tmp_path / "submission"
    proc = env.call(
        "submit",
        *("--submitter", "ACME", "--division", "closed", "--results-dir", "results"),
        *("--out", str(out), "--system-json", str(system)),
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert {p: p.read_bytes() for p in results.rglob("*") if p.is_file()} == before
    base = out / "closed/ACME"
    desc = json.loads((base / "systems/testsys.json").read_text())
    assert desc["cooling"] == "air" and desc["framework"].startswith("mlperf_trt")
    # The staged accuracy log is truncated, and its hash is that of the full log in results/.
    acc = base / "results/testsys/resnet/Offline/accuracy"
    full = (env.scenario / "accuracy/mlperf_log_accuracy.json").read_bytes()
    assert f"hash={hashlib.sha256(full).hexdigest()}" in (acc / "accuracy.txt").read_text()
    assert sorted(p.name for p in (base / "compliance/testsys/resnet/Offline").iterdir()) == [
        "TEST01",
        "TEST04",
    ]
    assert sorted(p.name for p in (base / "measurements/testsys/resnet/Offline").iterdir()) == [
        "README.md",
        "testsys_mlperf_trt-ort_Offline.json",
        "user.conf",
    ]

    problems = check_submission(out, results_dir=results)
    got = sorted((p.file, p.what.split(",")[0].split(" is ")[0]) for p in problems)
    r = "closed/ACME/results/testsys/resnet"
    c = "closed/ACME/compliance/testsys/resnet/Offline"
    detail = "performance/run_1/mlperf_log_detail.txt"
    expected = [
        # durations and counts of a smoke run (SPEC §6)
        (f"{r}/Offline/{detail}", "effective_min_duration_ms"),
        (f"{r}/Offline/{detail}", "effective_samples_per_query"),
        (f"{c}/TEST01/{detail}", "effective_min_duration_ms"),
        (f"{c}/TEST01/{detail}", "effective_samples_per_query"),
        (f"{c}/TEST04/{detail}", "effective_min_duration_ms"),
        (f"{c}/TEST04/{detail}", "effective_samples_per_query"),
        (f"{r}/Offline/accuracy/mlperf_log_detail.txt", "the accuracy run covered 48 samples"),
        # a datacenter system needs Server and has no SingleStream (SPEC §2.0)
        (f"{r}/Server", "required scenario Server of resnet"),
        (f"{r}/SingleStream", "SingleStream"),
    ]
    for run in ("Offline/performance/run_1", "Offline/accuracy", "SingleStream/performance/run_1"):
        where = str(results.resolve() / "testsys/resnet50" / run)
        expected += [
            (where, "synthetic data"),
            (where, "the built-in model"),
            (where, "--duration smoke"),
        ]
    for test in ("TEST01", "TEST04"):  # a noisy 2-core VM may fail the +-10% comparison
        if "TEST PASS" not in (env.scenario / test / "verify_performance.txt").read_text():
            expected.append((f"{c}/{test}/verify_performance.txt", "does not say 'TEST PASS'"))
    assert got == sorted(expected), "\n".join(f"{p.file}: {p.what}" for p in problems)


def test_report_has_a_row_per_run_and_a_png(env: Env, tmp_path: Path) -> None:
    png = tmp_path / "latency.png"
    proc = env.call("report", "--results-dir", "results", "--out", str(png))
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines() if line.startswith("testsys ")]
    assert sorted((r[2], r[3]) for r in rows) == [
        ("Offline", "TEST01"),
        ("Offline", "TEST04"),
        ("Offline", "accuracy"),
        ("Offline", "performance"),
        ("SingleStream", "performance"),
    ]
    offline = next(r for r in rows if r[2:4] == ["Offline", "performance"])
    ref = _detail(env.scenario / "performance/run_1/mlperf_log_detail.txt")
    assert float(offline[5]) == pytest.approx(float(ref["result_samples_per_second"]), rel=1e-5)
    accuracy = next(r for r in rows if r[3] == "accuracy")
    assert "acc" in accuracy and "PASS" in accuracy
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    image = matplotlib.image.imread(png)
    assert image.shape[0] > 100 and image.shape[1] > 100
    assert "samples from the trace" in proc.stdout or "latency plot:" in proc.stdout


def test_test06_checks_tokens(tmp_path: Path) -> None:
    from mlperf_trt.submission.compliance import verify_test06

    def entry(tokens: list[int], count: int, first: list[int]) -> dict[str, object]:
        data = struct.pack(f"<{len(tokens)}i", *tokens).hex().upper()
        return {
            "seq_id": 0,
            "qsl_idx": 0,
            "data": data,
            "token_data": struct.pack(f"<{len(first)}i", *first).hex().upper(),
            "token_count": count,
        }

    log = tmp_path / "log.json"
    log.write_text(json.dumps([entry([5, 7, 2], 3, [5]), entry([9, 4], 2, [9])]))
    ok = verify_test06(log, "Server")
    assert ok.passed and "First token check pass: True" in ok.text
    log.write_text(json.dumps([entry([5, 7, 2, 2], 4, [5])]))
    assert "EOS check pass: False" in verify_test06(log, "Offline").text
    log.write_text(json.dumps([entry([5, 7], 3, [6])]))
    bad = verify_test06(log, "Server")
    assert not bad.passed
    assert "First token check pass: False" in bad.text and "length check pass: False" in bad.text
    assert "First token check pass: Skipped" in verify_test06(log, "Offline").text
