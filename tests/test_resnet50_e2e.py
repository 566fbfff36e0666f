"""ResNet50 end to end on the CPU with ONNX Runtime: synthetic data in the official layout, the
tiny built-in model, FP32 and INT8 engines, every scenario, accuracy, and bad input."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest

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
)
RESULT = Path("results/testsys/resnet50")


def _reference_top1(data_dir: Path, model_path: Path) -> dict[int, int]:
    """What the MLPerf reference does per image (SPEC §2.1): cv2 decode, RGB, INTER_AREA resize
    of the shorter side to 256, centre crop 224, minus the means, NCHW, ArgMax - 1."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    out = {}
    lines = (data_dir / "val_map.txt").read_text().split("\n")
    for index, line in enumerate(x for x in lines if x.strip()):
        img = cv2.cvtColor(cv2.imread(str(data_dir / line.split()[0])), cv2.COLOR_BGR2RGB)
        h, w, _ = img.shape
        if h > w:
            nw, nh = 256, int(256 * h / w)
        else:
            nh, nw = 256, int(256 * w / h)
        img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)
        top, left = int((nh - 224) / 2), int((nw - 224) / 2)
        img = np.asarray(img[top : top + 224, left : left + 224], dtype="float32")
        img -= np.array([123.68, 116.78, 103.94], dtype=np.float32)
        batch = img.transpose([2, 0, 1])[None]
        (argmax,) = session.run(["ArgMax:0"], {"input_tensor:0": batch})
        out[index] = int(argmax[0]) - 1
    return out


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_accuracy_run_keeps_the_fp32_top1(cli, tmp_path: Path, precision: str) -> None:  # type: ignore[no-untyped-def]
    proc = cli(
        "run",
        *TINY,
        "--scenario",
        "Offline",
        "--mode",
        "accuracy",
        "--precision",
        precision,
        "--duration",
        "smoke",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = (tmp_path / RESULT / "Offline/accuracy/accuracy.txt").read_text()
    first = text.splitlines()[0]
    assert first.startswith("accuracy=") and first.endswith("total=48")
    top1 = float(first.split("=")[1].split("%")[0])
    resolved = json.loads((tmp_path / RESULT / "Offline/accuracy/resolved_config.json").read_text())
    reference = resolved["inputs"]["fp32_reference"]
    if precision == "fp32":
        assert top1 == pytest.approx(reference)  # the labels are this model's own predictions
    else:
        assert top1 >= 0.99 * reference
    assert "Accuracy is : PASS" in proc.stdout
    assert "ground truth is the FP32 model's own output" in proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize("scenario", ["SingleStream", "MultiStream", "Server", "Offline"])
def test_every_scenario_is_valid_with_ort(cli, scenario: str) -> None:  # type: ignore[no-untyped-def]
    extra: tuple[str, ...] = ()
    if scenario == "Server":
        # On these 2-vCPU machines a bare onnxruntime loop stalls 10-60 ms a few times per
        # thousand runs, so resnet50's 15 ms p99 over a 600-query smoke run is a coin toss decided
        # by the VM. The test checks the harness's Server path, so it loosens the bound (which
        # makes the run unsubmittable, and the summary says so).
        extra = ("--set", "server_target_latency_ns=200000000")
    proc = cli("run", *TINY, "--scenario", scenario, "--duration", "smoke", *extra)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Result is : VALID" in proc.stdout
    assert "engine      : ort int8" in proc.stdout  # resnet50's default precision on ORT


@pytest.mark.slow
def test_official_layout_and_user_model_match_the_reference(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path, shared_data_root: Path
) -> None:
    data = tmp_path / "imagenet"
    proc = cli(
        "prepare",
        "--model",
        "resnet50",
        "--synthetic",
        "24",
        "--data-dir",
        str(data),
        "--model-size",
        "tiny",
        "--no-progress",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The built model file stands in for the official one, given by path.
    root = next((shared_data_root / "models").glob("resnet50-tiny-*.onnx"))
    proc = cli(
        "run",
        "--model",
        "resnet50",
        "--backend",
        "ort",
        "--scenario",
        "Offline",
        "--mode",
        "accuracy",
        "--precision",
        "fp32",
        "--data-dir",
        str(data),
        "--model-path",
        str(root),
        "--duration",
        "smoke",
        "--no-progress",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    log = json.loads((tmp_path / RESULT / "Offline/accuracy/mlperf_log_accuracy.json").read_text())
    ours = {e["qsl_idx"]: int(struct.unpack("<f", bytes.fromhex(e["data"]))[0]) for e in log}
    assert ours == _reference_top1(data, root)


def test_bad_inputs_are_clear_errors(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = cli(
        "run", *TINY, "--scenario", "Offline", "--data-dir", str(empty), "--duration", "smoke"
    )
    assert proc.returncode == 2 and "val_map.txt" in proc.stderr, proc.stderr
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.JPEG").write_bytes(b"not a jpeg")
    (broken / "val_map.txt").write_text("a.JPEG 1\n")
    proc = cli(
        "run", *TINY, "--scenario", "Offline", "--data-dir", str(broken), "--duration", "smoke"
    )
    assert proc.returncode == 2 and "a.JPEG" in proc.stderr, proc.stderr
    from mlperf_trt.models import build_model

    model = build_model("resnet50", size="tiny")
    model.graph.input[0].name = "input"
    for node in model.graph.node:
        node.input[:] = ["input" if i == "input_tensor:0" else i for i in node.input]
    wrong = tmp_path / "wrong.onnx"
    onnx.save(model, str(wrong))
    proc = cli(
        "run", *TINY, "--scenario", "Offline", "--model-path", str(wrong), "--duration", "smoke"
    )
    assert proc.returncode == 2 and "input_tensor:0" in proc.stderr, proc.stderr
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").rglob("*.txt"))


@pytest.mark.slow
def test_build_and_calibrate_are_cached_steps(cli) -> None:  # type: ignore[no-untyped-def]
    args = (*TINY, "--batch-size", "4")
    first = cli("build", *args)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "(built)" in first.stdout and '"precision": "int8"' in first.stdout
    second = cli("calibrate", *args)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "(cache hit)" in second.stdout  # the same recipe: nothing is rebuilt
    assert "calibration : " in second.stdout and "(entropy, " in second.stdout
    engine = first.stdout.split("engine      : ")[1].split(" (")[0]
    assert engine == second.stdout.split("engine      : ")[1].split(" (")[0]
    fp32 = cli("build", *args, "--precision", "fp32")
    assert fp32.returncode == 0 and "ort-fp32-b4-" in fp32.stdout
    bad = cli("calibrate", *args, "--precision", "fp32")
    assert bad.returncode == 2 and "INT8" in bad.stderr


def test_build_takes_several_batch_sizes_and_explains_a_missing_tensorrt(cli) -> None:  # type: ignore[no-untyped-def]
    proc = cli("build", *TINY, "--batch-size", "1", "4")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    recipe = json.loads(proc.stdout.split("recipe      : ")[1].splitlines()[0])
    assert recipe["batch_sizes"] == [1, 4] and "ort-int8-b4-" in proc.stdout
    import importlib.util

    if importlib.util.find_spec("tensorrt") is None:
        trt = cli("build", "--model", "bert-99.9", "--backend", "trt", "--no-progress")
        assert trt.returncode == 2
        assert "tensorrt" in trt.stderr and "pip install 'mlperf-trt[trt]'" in trt.stderr


def test_two_worker_groups_share_the_work(cli) -> None:  # type: ignore[no-untyped-def]
    """Multi-group dispatch on the CPU (DESIGN §4.1): two groups of one ORT executor each; every
    sample is answered once (LoadGen's VALID and the sample count) and both groups ran batches."""
    groups = ("--set", "worker_groups=2", "--set", "workers=1", "--set", "batch_size=4")
    proc = cli("run", *TINY, "--scenario", "Offline", "--duration", "smoke", *groups)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Result is : VALID" in proc.stdout
    line = proc.stdout.split("Harness     : ")[1].splitlines()[0]
    per_group = [int(x) for x in line.split("batches per group: ")[1].rstrip(")").split(", ")]
    assert len(per_group) == 2 and min(per_group) > 0
    samples, batches = line.split(" samples in ")
    assert sum(per_group) == int(batches.split(" batches")[0].replace(",", ""))
