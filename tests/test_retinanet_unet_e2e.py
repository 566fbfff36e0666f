"""RetinaNet and 3D-UNet end to end on the CPU with ONNX Runtime (SPEC §2.2, §2.3): synthetic
sets in the official layouts, the tiny built-in models, accuracy runs against their targets, the
payload layouts, and the scenarios that fit a CI budget (see test_scenarios_are_valid)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

TINY = ("--backend", "ort", "--model-size", "tiny", "--no-progress")
RETINANET = ("--model", "retinanet", *TINY, "--set", "synthetic_samples=12")
UNET = (*TINY, "--set", "synthetic_samples=8")


def _entries(folder: Path) -> list[dict[str, object]]:
    entries: list[dict[str, object]] = json.loads((folder / "mlperf_log_accuracy.json").read_text())
    return entries


@pytest.mark.slow
def test_retinanet_accuracy_passes_with_reference_payloads(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path, shared_data_root: Path
) -> None:
    """The logged payloads are what the reference post-processing (numpy, SPEC §2.2) makes of
    the raw heads of each image, and the run scores its target."""
    import onnxruntime as ort

    from mlperf_trt.data.openimages import OpenImages
    from mlperf_trt.models import retinanet
    from mlperf_trt.models.retinanet_post import payload_reference, postprocess_reference

    proc = cli("run", *RETINANET, "--scenario", "Offline", "--mode", "accuracy",
               "--duration", "smoke")  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Accuracy is : PASS" in proc.stdout
    folder = tmp_path / "results" / "testsys" / "retinanet" / "Offline" / "accuracy"
    assert (folder / "accuracy.txt").read_text().startswith("mAP=")
    raw = Path(json.loads((folder / "resolved_config.json").read_text())["inputs"]["data_dir"])
    prepared = OpenImages().prepare(raw, show_progress=False)
    model = next((shared_data_root / "models").glob("retinanet-tiny-*.onnx"))
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    anchors, levels = retinanet.anchors(), retinanet.LEVEL_SIZES
    for entry in _entries(folder)[:3]:
        index = int(entry["qsl_idx"])  # type: ignore[call-overload]
        cls, box = session.run(["cls_logits", "bbox_regression"], prepared.batch([index]))
        ((boxes, scores, labels),) = postprocess_reference(cls, box, anchors, levels)
        expected = payload_reference(index, boxes, scores, labels)
        got = np.frombuffer(bytes.fromhex(str(entry["data"])), dtype="<f4")
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["3d-unet-99", "3d-unet-99.9"])
def test_unet_accuracy_passes_with_full_volume_payloads(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path, model: str
) -> None:
    from mlperf_trt.data.kits19 import KiTS19

    proc = cli("run", "--model", model, *UNET, "--scenario", "Offline", "--mode", "accuracy",
               "--duration", "smoke")  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Accuracy is : PASS" in proc.stdout
    folder = tmp_path / "results" / "testsys" / model / "Offline" / "accuracy"
    assert (folder / "accuracy.txt").read_text().startswith("Accuracy: mean = ")
    raw = Path(json.loads((folder / "resolved_config.json").read_text())["inputs"]["data_dir"])
    volumes = KiTS19().prepare(raw, show_progress=False)
    entries = _entries(folder)
    assert {int(e["qsl_idx"]) for e in entries} == set(range(volumes.count))  # type: ignore[call-overload]
    for entry in entries:
        labels = bytes.fromhex(str(entry["data"]))
        d, h, w = volumes.shape(int(entry["qsl_idx"]))  # type: ignore[call-overload]
        assert len(labels) == d * h * w  # one uint8 label per voxel of the preprocessed volume
        assert set(np.frombuffer(labels, dtype=np.uint8).tolist()) <= {0, 1, 2}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "scenario"),
    [
        (RETINANET, "Offline"),
        (RETINANET, "SingleStream"),
        (("--model", "3d-unet-99", *UNET), "Offline"),
    ],
)
def test_scenarios_are_valid(cli, args: tuple[str, ...], scenario: str) -> None:  # type: ignore[no-untyped-def]
    """RetinaNet Offline and SingleStream, 3D-UNet Offline. The rest need more queries than a CI
    budget holds for LoadGen's early-stopping estimate at ~0.15-0.3 s a tiny RetinaNet image and
    ~1.3 s a 3D-UNet case on two cores (RetinaNet Server 600 queries, MultiStream 662 x 8 images;
    3D-UNet SingleStream 64): they are run by hand (README "Measurements" has the commands)."""
    extra: tuple[str, ...] = ()
    if "3d-unet-99" in args:
        # Equal issue (SPEC §2.3): the count is a multiple of the set's 8 cases.
        extra = ("--set", "min_query_count=8")
    proc = cli("run", *args, "--scenario", scenario, "--duration", "smoke", *extra)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Result is : VALID" in proc.stdout


@pytest.mark.slow
def test_official_interface_model_end_to_end(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`--model-path` with a model in the reference ONNX's interface (input `images` [1,3,800,800],
    outputs boxes/labels/scores with NMS inside; models.retinanet_nms) and `--data-dir` with a set
    in the official layout: the run scores PASS, and each logged payload is what the reference's
    post-processing (SPEC §2.2, written out below) makes of that model's outputs for the image."""
    import onnxruntime as ort

    from mlperf_trt.data.openimages import OpenImages
    from mlperf_trt.models import retinanet
    from mlperf_trt.models.retinanet_nms import write_official

    official = write_official(retinanet.build("tiny", 0), tmp_path / "resnext50_32x4d_fpn.onnx")
    data = tmp_path / "openimages"
    proc = cli("prepare", "--model", "retinanet", "--synthetic", "6", "--data-dir", str(data),
               "--model-size", "tiny", "--no-progress")  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = cli("run", "--model", "retinanet", "--backend", "ort", "--model-path", str(official),
               "--data-dir", str(data), "--scenario", "Offline", "--mode", "accuracy",
               "--duration", "smoke", "--no-progress")  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Accuracy is : PASS" in proc.stdout
    folder = tmp_path / "results" / "testsys" / "retinanet" / "Offline" / "accuracy"
    record = json.loads((folder / "resolved_config.json").read_text())
    engine = tmp_path / record["inputs"]["engine_dir"] / "model.onnx"
    session = ort.InferenceSession(str(engine), providers=["CPUExecutionProvider"])
    prepared = OpenImages().prepare(data, show_progress=False)
    entries = _entries(folder)
    assert {int(e["qsl_idx"]) for e in entries} == set(range(6))  # type: ignore[call-overload]
    detections = 0
    for entry in entries:
        index = int(entry["qsl_idx"])  # type: ignore[call-overload]
        boxes, labels, scores = session.run(["boxes", "labels", "scores"], prepared.batch([index]))
        rows = []
        for box, label, score in zip(boxes.tolist(), labels.tolist(), scores.tolist(), strict=True):
            if score < 0.05:  # the reference stops at the first score below the threshold
                break
            x1, y1, x2, y2 = box  # pixels of the 800x800 input -> [y1, x1, y2, x2] / 800
            rows.append([index, y1 / 800, x1 / 800, y2 / 800, x2 / 800, score, float(label)])
        expected = np.asarray(rows, dtype=np.float32).reshape(-1)
        got = np.frombuffer(bytes.fromhex(str(entry["data"])), dtype="<f4")
        assert got.shape == expected.shape, index
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
        detections += len(rows)
    assert detections > 0


def test_official_model_interface_runs_with_batch_one(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """An official-interface RetinaNet (input `images`, outputs boxes/labels/scores with NMS
    inside, batch 1) is accepted by --model-path and post-processed by the detections path."""
    import onnx
    from onnx import TensorProto, helper

    from mlperf_trt.harness.pipelines import pipeline_for
    from mlperf_trt.harness.pipelines.retinanet import NMS_OUTPUTS

    graph = helper.make_graph(
        [],
        "official-like",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 800, 800])],
        [
            helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["K", 4]),
            helper.make_tensor_value_info("labels", TensorProto.INT64, ["K"]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["K"]),
        ],
    )
    model = helper.make_model(graph)
    pipeline = pipeline_for("retinanet")
    assert pipeline.for_model is not None
    chosen = pipeline.for_model(model)
    assert chosen.output_names == NMS_OUTPUTS
    assert chosen.batching is not None and chosen.batching(None, {}).max_batch == 1
    boxes = np.array([[80.0, 160.0, 240.0, 400.0], [0.0, 0.0, 8.0, 8.0]], dtype=np.float32)
    payload = chosen.postprocessor().process(
        [5], [boxes, np.array([3, 7]), np.array([0.9, 0.01], dtype=np.float32)]
    )[0]
    got = np.frombuffer(payload, dtype=np.float32)
    # SPEC §2.2: [qsl_idx, y1, x1, y2, x2 (/800), score, label]; stop below 0.05.
    np.testing.assert_allclose(got, [5, 0.2, 0.1, 0.5, 0.3, 0.9, 3], rtol=1e-6)
    del onnx
