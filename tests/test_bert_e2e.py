"""BERT end to end on the CPU with ONNX Runtime (SPEC §2.4): a synthetic SQuAD set in the official
layout, the tiny built-in model, INT8 (bert-99) and FP32 (bert-99.9) accuracy runs, the payload
layout the official accuracy script reads, and the scenarios of the round."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

TINY = ("--backend", "ort", "--model-size", "tiny", "--no-progress")
SAMPLES = ("--set", "synthetic_samples=96")


def _accuracy_entries(folder: Path) -> list[dict[str, object]]:
    entries: list[dict[str, object]] = json.loads((folder / "mlperf_log_accuracy.json").read_text())
    return entries


@pytest.mark.slow
@pytest.mark.parametrize(("model", "precision"), [("bert-99", "int8"), ("bert-99.9", "fp32")])
def test_accuracy_run_passes_its_target(cli, tmp_path: Path, model: str, precision: str) -> None:  # type: ignore[no-untyped-def]
    proc = cli("run", "--model", model, *TINY, *SAMPLES, "--scenario", "Offline",
               "--mode", "accuracy", "--duration", "smoke")  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"engine      : ort {precision}" in proc.stdout  # the variant's default precision
    assert "Accuracy is : PASS" in proc.stdout
    folder = tmp_path / "results" / "testsys" / model / "Offline" / "accuracy"
    line = (folder / "accuracy.txt").read_text().splitlines()[0]
    scores = json.loads(line)  # the line evaluate-v1.1.py prints, which the checker parses
    assert set(scores) == {"exact_match", "f1"}
    ratio = 0.99 if model == "bert-99" else 0.999
    assert scores["f1"] >= ratio * 100.0  # synthetic gold answers are the FP32 model's spans


@pytest.mark.slow
def test_payload_is_the_official_layout_in_the_official_order(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path, shared_data_root: Path
) -> None:
    """Each logged payload is float32 [384][2] (start, end) of the feature its qsl_idx names, in
    the prepared (official) feature order: the FP32 model run on that feature at full length
    gives the same logits wherever the sample has tokens (SPEC §1.2, §2.4)."""
    import onnxruntime as ort

    from mlperf_trt.data.squad import Squad

    proc = cli("run", "--model", "bert-99.9", *TINY, *SAMPLES, "--scenario", "Offline",
               "--mode", "accuracy", "--duration", "smoke")  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    folder = tmp_path / "results" / "testsys" / "bert-99.9" / "Offline" / "accuracy"
    inputs = json.loads((folder / "resolved_config.json").read_text())["inputs"]
    prepared = Squad().prepare(Path(inputs["data_dir"]), show_progress=False)
    model = next((shared_data_root / "models").glob("bert-tiny-*.onnx"))
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    entries = _accuracy_entries(folder)
    assert len({e["qsl_idx"] for e in entries}) == prepared.count
    for entry in entries[:40]:
        index = int(entry["qsl_idx"])  # type: ignore[call-overload]
        payload = np.frombuffer(bytes.fromhex(str(entry["data"])), dtype="<f4")
        assert payload.size == 384 * 2
        payload = payload.reshape(384, 2)
        feeds = prepared.batch([index])
        start, end = session.run(["output_start_logits", "output_end_logits"], feeds)
        length = int(feeds["input_mask"].sum())
        np.testing.assert_allclose(payload[:length, 0], start[0, :length], atol=1e-4)
        np.testing.assert_allclose(payload[:length, 1], end[0, :length], atol=1e-4)
        # Positions past the length bucket were not run: the reference's -10000 padding.
        ran = (
            int(np.argmax(payload[:, 0] == -10000.0)) if (payload[:, 0] == -10000.0).any() else 384
        )
        assert ran >= length and (payload[ran:] == -10000.0).all()


@pytest.mark.slow
@pytest.mark.parametrize("scenario", ["Offline", "Server", "SingleStream"])
def test_scenarios_are_valid(cli, scenario: str) -> None:  # type: ignore[no-untyped-def]
    proc = cli("run", "--model", "bert-99", *TINY, *SAMPLES, "--scenario", scenario,
               "--duration", "smoke")  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Result is : VALID" in proc.stdout


def test_prepare_writes_the_official_layout(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "squad"
    proc = cli("prepare", "--model", "bert", "--synthetic", "12", "--data-dir", str(data),
               "--model-size", "tiny", "--no-progress")  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    dev = json.loads((data / "dev-v1.1.json").read_text())
    assert dev["version"] == "1.1"
    qas = [q for a in dev["data"] for p in a["paragraphs"] for q in p["qas"]]
    assert len(qas) == 12 and all(q["answers"] and q["id"] for q in qas)
    for article in dev["data"]:
        for para in article["paragraphs"]:
            for q in para["qas"]:
                answer = q["answers"][0]
                start = answer["answer_start"]
                assert para["context"][start : start + len(answer["text"])] == answer["text"]
    vocab = (data / "vocab.txt").read_text().splitlines()
    assert vocab[0] == "[PAD]" and vocab[100:104] == ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def test_length_buckets_setting_is_checked(cli) -> None:  # type: ignore[no-untyped-def]
    proc = cli("run", "--model", "bert-99", *TINY, *SAMPLES, "--scenario", "Offline",
               "--duration", "smoke", "--set", "length_buckets=256,128,384")  # fmt: skip
    assert proc.returncode == 2
    assert "length_buckets" in proc.stderr and "ascend" in proc.stderr
