"""DLRMv2 end to end on the CPU with ONNX Runtime (SPEC §2.8): a synthetic day 23 in the official
layout, the tiny dense network behind the C++ embedding stage, INT8 (-99) and FP32 (-99.9)
accuracy runs, the per-pair payload, and the datacenter scenarios."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

TINY = ("--backend", "ort", "--model-size", "tiny", "--no-progress")
SAMPLES = ("--set", "synthetic_samples=48")


@pytest.mark.slow
@pytest.mark.parametrize(("model", "precision"), [("dlrm-v2-99", "int8"), ("dlrm-v2-99.9", "fp32")])
def test_accuracy_run_passes_and_logs_every_pair(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path, model: str, precision: str
) -> None:
    from mlperf_trt.data.criteo import Criteo

    proc = cli("run", "--model", model, *TINY, *SAMPLES, "--scenario", "Offline",
               "--mode", "accuracy", "--duration", "smoke")  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"engine      : ort {precision}" in proc.stdout
    assert "Accuracy is : PASS" in proc.stdout
    folder = tmp_path / "results" / "testsys" / model / "Offline" / "accuracy"
    assert (folder / "accuracy.txt").read_text().startswith("AUC=")
    raw = Path(json.loads((folder / "resolved_config.json").read_text())["inputs"]["data_dir"])
    truth = Criteo().ground_truth(raw)
    entries = json.loads((folder / "mlperf_log_accuracy.json").read_text())
    assert len({e["qsl_idx"] for e in entries}) == len(truth.offsets) - 1
    for entry in entries:
        index = int(entry["qsl_idx"])
        start, end = int(truth.offsets[index]), int(truth.offsets[index + 1])
        pairs = np.frombuffer(bytes.fromhex(entry["data"]), dtype="<f4").reshape(-1, 2)
        assert len(pairs) == end - start  # one (probability, label) per pair of the block
        np.testing.assert_array_equal(pairs[:, 1], truth.labels[start:end])
        assert ((pairs[:, 0] >= 0) & (pairs[:, 0] <= 1)).all()  # probabilities


@pytest.mark.slow
@pytest.mark.parametrize("scenario", ["Offline", "Server"])
def test_datacenter_scenarios_are_valid(cli, scenario: str) -> None:  # type: ignore[no-untyped-def]
    extra: tuple[str, ...] = ()
    if scenario == "Server":
        # On these 2-vCPU VMs LoadGen's Server issue thread spins on one core, and the tiny
        # dense network runs a 700-pair sample in 30-40 ms on the other (measured: executor p50
        # 6.6 ms alone, 17 ms beside LoadGen), so the 60 ms p99 of SPEC §2.8 is decided by the
        # VM. As for resnet50, the test checks the harness's Server path with a looser bound
        # (which makes the run unsubmittable, and the summary says so).
        extra = ("--set", "server_target_qps=15", "--set", "server_target_latency_ns=400000000")
    proc = cli("run", "--model", "dlrm-v2-99", *TINY, *SAMPLES, "--scenario", scenario,
               "--duration", "smoke", *extra)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Result is : VALID" in proc.stdout


def test_prepare_writes_the_official_layout(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import zipfile

    data = tmp_path / "criteo"
    proc = cli("prepare", "--model", "dlrm-v2", "--synthetic", "8", "--data-dir", str(data),
               "--model-size", "tiny", "--no-progress")  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    dense = np.load(data / "day_23_dense.npy", mmap_mode="r")
    labels = np.load(data / "day_23_labels.npy", mmap_mode="r")
    assert dense.dtype == np.float32 and dense.shape[1] == 13 and len(labels) == len(dense)
    with zipfile.ZipFile(data / "day_23_sparse_multi_hot.npz") as z:
        assert sorted(z.namelist(), key=lambda n: int(n.split(".")[0])) == [
            f"{k}.npy" for k in range(26)
        ]
        assert all(i.compress_type == zipfile.ZIP_STORED for i in z.infolist())
