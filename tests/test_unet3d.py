"""3D-UNet (KiTS19): preprocessing, sliding-window reference, DICE, synthetic set, tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel
import numpy as np
import pytest

from mlperf_trt.accuracy import kits19 as metric
from mlperf_trt.benchmarks import get_benchmark
from mlperf_trt.data import kits19
from mlperf_trt.errors import AccuracyError, DataError
from mlperf_trt.models import build_model, check_model
from mlperf_trt.models.sliding_window import (
    gaussian_importance,
    sliding_window_reference,
    window_origins,
)

# -- preprocessing (SPEC §2.3) -----------------------------------------------------------------


def test_zoom_factors_and_resampled_shapes() -> None:
    assert kits19.zoom_factors((3.2, 0.6, 2.4)) == pytest.approx((2.0, 0.5, 2.0))
    image = np.arange(4 * 8 * 4, dtype=np.float32).reshape(4, 8, 4)
    label = (np.arange(4 * 8 * 4) % 3).astype(np.uint8).reshape(4, 8, 4)
    out_image, out_label = kits19.resample(image, label, (3.2, 0.6, 2.4))
    assert out_image.shape == out_label.shape == (8, 4, 8)
    assert out_image.dtype == np.float32 and out_label.dtype == np.uint8
    # grid_mode=False maps corner voxels onto corner voxels: the corners are kept exactly.
    assert out_image[0, 0, 0] == image[0, 0, 0] and out_image[-1, -1, -1] == image[-1, -1, -1]
    assert set(np.unique(out_label)) <= {0, 1, 2}  # order 0: no new label values
    same_image, same_label = kits19.resample(image, label, kits19.TARGET_SPACING)
    assert same_image is image and same_label is label


def test_intensity_normalisation() -> None:
    hu = np.array([-1000.0, -79.0, 101.0, 304.0, 2000.0], np.float32)
    expected = (np.array([-79.0, -79.0, 101.0, 304.0, 304.0]) - 101.0) / 76.9
    out = kits19.normalize_intensity(hu)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_axis_under_128_is_edge_padded() -> None:
    rng = np.random.default_rng(1)
    image = rng.standard_normal((60, 128, 128)).astype(np.float32)
    label = rng.integers(0, 3, (60, 128, 128)).astype(np.uint8)
    padded, padded_label = kits19.pad_to_min_shape(image, label)
    assert padded.shape == (128, 128, 128)
    np.testing.assert_array_equal(padded[34:94], image)  # (128 - 60) // 2 = 34 before
    np.testing.assert_array_equal(padded[:34], np.broadcast_to(image[0], (34, 128, 128)))
    np.testing.assert_array_equal(padded[94:], np.broadcast_to(image[-1], (34, 128, 128)))
    np.testing.assert_array_equal(padded_label[0], label[0])  # the label is edge-padded too


@pytest.mark.parametrize(
    ("dim", "final", "before", "cropped"),
    [
        (130, 128, 1, True),  # 130 % 64 = 2 < 32: crop 1 + 1
        (159, 128, 15, True),  # 31 < 32: crop 15 + 16
        (160, 192, 16, False),  # 32: pad 16 + 16 with -2.2
        (170, 192, 11, False),  # 42: pad 11 + 11
        (256, 256, 0, True),
    ],
)
def test_crop_or_pad_rule(dim: int, final: int, before: int, cropped: bool) -> None:
    image = np.arange(dim, dtype=np.float32).reshape(dim, 1, 1) * np.ones((1, 128, 128), np.float32)
    label = np.ones((dim, 128, 128), np.uint8)
    out, out_label = kits19.adjust_shape(image, label)
    assert out.shape == out_label.shape == (final, 128, 128)
    line = out[:, 0, 0]
    if cropped:
        np.testing.assert_array_equal(line, np.arange(before, before + final, dtype=np.float32))
        assert out_label.min() == 1
    else:
        np.testing.assert_array_equal(line[:before], np.float32(-2.2))
        np.testing.assert_array_equal(line[before : before + dim], np.arange(dim))
        np.testing.assert_array_equal(line[before + dim :], np.float32(-2.2))
        assert out_label[:before].max() == 0 and out_label[before + dim :].max() == 0
        assert out_label[before : before + dim].min() == 1


def _write_nifti(path: Path, array: np.ndarray, spacing: tuple[float, ...] | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = nibabel.Nifti1Image(array, None if spacing is None else np.diag([*spacing, 1.0]))
    if spacing is None:
        image.header["pixdim"][1:4] = 0.0
    nibabel.save(image, str(path))


def test_nifti_without_spacing_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "case_00000" / "imaging.nii.gz"
    _write_nifti(path, np.zeros((4, 4, 4), np.int16), None)
    with pytest.raises(DataError, match=r"imaging\.nii\.gz has no usable voxel spacing"):
        kits19.read_nifti(path)
    _write_nifti(path, np.zeros((4, 4, 4), np.int16), (2.5, 0.8, 0.8))
    _, spacing = kits19.read_nifti(path)
    assert spacing == pytest.approx((2.5, 0.8, 0.8))


def test_missing_case_files_and_case_00400(tmp_path: Path) -> None:
    (tmp_path / kits19.CASE_LIST).write_text(json.dumps(["case_00000"]))
    with pytest.raises(DataError, match="case_00000.*missing"):
        kits19.read_case_list(tmp_path)
    for name in ("imaging.nii.gz", "segmentation.nii.gz"):
        _write_nifti(tmp_path / "case_00185" / name, np.zeros((2, 2, 2), np.uint8), (1, 1, 1))
    imaging, _ = kits19.case_files(tmp_path, "case_00400")
    assert imaging == tmp_path / "case_00185" / "imaging.nii.gz"
    assert len(kits19.INFERENCE_CASES) == 43 and kits19.INFERENCE_CASES[-1] == "case_00400"


# -- sliding window (SPEC §2.3) ----------------------------------------------------------------


def test_gaussian_importance_matches_formula() -> None:
    weights = gaussian_importance()
    n = np.arange(128) - 63.5
    g = np.exp(-0.5 * (n / 16.0) ** 2)
    # cube root of g_i g_j g_k is the product of the cube roots of the 1-D gaussians
    expected = np.einsum("i,j,k->ijk", np.cbrt(g), np.cbrt(g), np.cbrt(g))
    expected /= expected.max()
    assert weights.dtype == np.float32 and weights.shape == (128, 128, 128)
    np.testing.assert_allclose(weights, expected, rtol=2e-6, atol=1e-9)
    assert weights.max() == 1.0


def test_window_origins() -> None:
    assert window_origins((128, 192, 256)) == [(0, y, x) for y in (0, 64) for x in (0, 64, 128)]
    assert len(window_origins((256, 256, 256))) == 27
    with pytest.raises(DataError, match="shorter than"):
        window_origins((127, 128, 128))


def test_sliding_window_against_per_voxel_brute_force() -> None:
    rng = np.random.default_rng(3)
    volume = rng.standard_normal((1, 192, 128, 192)).astype(np.float32)
    coeff = np.array([0.3, -0.7, 1.1], np.float32).reshape(1, 3, 1, 1, 1)

    def fake_model(windows: np.ndarray) -> np.ndarray:  # depends on the whole window
        mean = windows.mean(axis=(1, 2, 3, 4), keepdims=True)
        out: np.ndarray = (windows * coeff + mean * np.float32(5.0)).astype(np.float32)
        return out

    labels = sliding_window_reference(volume, fake_model, batch=3)
    assert labels.dtype == np.uint8 and labels.shape == (192, 128, 192)
    origins = [(z, y, x) for z in (0, 64) for y in (0,) for x in (0, 64)]
    logits = {
        o: fake_model(volume[None, :, o[0] :, o[1] :, o[2] :][..., :128, :128, :128])[0]
        for o in origins
    }
    n = np.arange(128) - 63.5
    g = np.cbrt(np.exp(-0.5 * (n / 16.0) ** 2))
    g /= g.max()
    checked = 0
    for v in rng.integers(0, [192, 128, 192], size=(400, 3)):
        num = np.zeros(3)
        den = 0.0
        for o in origins:
            rel = v - np.array(o)
            if np.all((rel >= 0) & (rel < 128)):
                w = g[rel[0]] * g[rel[1]] * g[rel[2]]
                num += w * logits[o][:, rel[0], rel[1], rel[2]].astype(np.float64)
                den += w
        scores = num / den
        top = np.sort(scores)
        if top[-1] - top[-2] > 1e-4:  # not a float32 near-tie
            assert labels[tuple(v)] == int(np.argmax(scores)), v
            checked += 1
    assert checked > 350


def test_sliding_window_rejects_bad_shapes() -> None:
    with pytest.raises(DataError, match="multiple of 64"):
        sliding_window_reference(np.zeros((1, 128, 128, 130), np.float32), lambda w: w)
    with pytest.raises(DataError, match="run_batch returned"):
        sliding_window_reference(np.zeros((1, 128, 128, 128), np.float32), lambda w: w)


# -- DICE (SPEC §2.3) --------------------------------------------------------------------------


def _log(path: Path, payloads: list[tuple[int, bytes]]) -> Path:
    entries = [
        {"seq_id": i, "qsl_idx": q, "data": d.hex().upper()} for i, (q, d) in enumerate(payloads)
    ]
    path.write_text(json.dumps(entries))
    return path


def test_dice_on_hand_made_log(tmp_path: Path) -> None:
    truth_a = np.zeros((4, 4, 4), np.uint8)
    truth_a[:2] = 1  # 32 kidney voxels, no tumour
    truth_b = np.zeros((4, 4, 4), np.uint8)
    truth_b[0, :2] = 1  # 8 kidney voxels
    truth_b[3, 0, :2] = 2  # 2 tumour voxels
    pred_b = np.zeros((4, 4, 4), np.uint8)
    pred_b[0, 0] = 1  # 4 of the 8 kidney voxels
    pred_b[1, 0] = 1  # + 4 false kidney voxels
    pred_b[3, 0, 0] = 2  # 1 of the 2 tumour voxels
    truth = metric.LabelVolumes(("case_a", "case_b"), (truth_a, truth_b))
    log = _log(tmp_path / "log.json", [(1, pred_b.tobytes()), (0, truth_a.tobytes())])
    report = metric.evaluate(log, truth)
    kidney_b = (2 * 4 + 1e-6) / (8 + 8 + 1e-6)
    tumour_b = (2 * 1 + 1e-6) / (1 + 2 + 1e-6)
    # case a: kidney perfect, tumour absent in both -> (0 + 1e-6) / (0 + 1e-6) = 1
    kidney, tumour = (1.0 + kidney_b) / 2, (1.0 + tumour_b) / 2
    mean = (1.0 + (kidney_b + tumour_b) / 2) / 2
    assert report.values == {"DICE": pytest.approx(mean, abs=1e-12)}
    assert (
        report.line == f"Accuracy: mean = {mean:.5f}, kidney = {kidney:.4f}, tumor = {tumour:.4f}"
    )
    assert report.line == "Accuracy: mean = 0.79167, kidney = 0.7500, tumor = 0.8333"


def test_dice_log_errors(tmp_path: Path) -> None:
    truth = metric.LabelVolumes(("a", "b"), (np.zeros((2, 2, 2), np.uint8),) * 2)
    ok = np.zeros(8, np.uint8).tobytes()
    with pytest.raises(AccuracyError, match="exactly one prediction per case"):
        metric.evaluate(_log(tmp_path / "l1.json", [(0, ok)]), truth)
    with pytest.raises(AccuracyError, match="appears twice"):
        metric.evaluate(_log(tmp_path / "l2.json", [(0, ok), (0, ok)]), truth)
    with pytest.raises(AccuracyError, match="expected 8"):
        metric.evaluate(_log(tmp_path / "l3.json", [(0, ok), (1, ok[:4])]), truth)


def test_nan_counts_as_zero() -> None:
    mean, kidney, tumour = metric.summarize([1.0, float("nan")], [0.5, 0.5])
    assert (mean, kidney, tumour) == pytest.approx((0.375, 0.5, 0.5))


# -- model and synthetic set -------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_session() -> object:
    import onnxruntime as ort

    model = build_model("3d-unet", "tiny", seed=0)
    check_model(model, get_benchmark("3d-unet").model_card, "built-in 3d-unet tiny")
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def test_tiny_model_shapes(tiny_session: object) -> None:
    import onnxruntime as ort

    assert isinstance(tiny_session, ort.InferenceSession)
    (inp,) = tiny_session.get_inputs()
    assert inp.name == "input" and inp.shape == ["N", 1, 128, 128, 128]
    x = np.random.default_rng(0).standard_normal((2, 1, 128, 128, 128)).astype(np.float32)
    (out,) = tiny_session.run(["output"], {"input": x})
    assert out.shape == (2, 3, 128, 128, 128) and out.dtype == np.float32
    (single,) = tiny_session.run(["output"], {"input": x[1:]})
    np.testing.assert_allclose(out[1], single[0], atol=1e-4)  # instance norm is per sample


def test_synthesize_prepare_round_trip(tiny_session: object, tmp_path: Path) -> None:
    import onnxruntime as ort

    assert isinstance(tiny_session, ort.InferenceSession)

    def model_fn(volume: np.ndarray) -> np.ndarray:
        return sliding_window_reference(
            volume, lambda w: np.asarray(tiny_session.run(["output"], {"input": w})[0])
        )

    raw = tmp_path / "raw"
    dataset = kits19.KiTS19()
    result = dataset.synthesize(raw, 3, 0, model_fn, show_progress=False)
    assert kits19.read_case_list(raw) == ["case_00000", "case_00001", "case_00002"]
    spacings = [
        kits19.read_nifti(raw / c / "imaging.nii.gz")[1] for c in kits19.read_case_list(raw)
    ]
    assert spacings[0] == pytest.approx(kits19.TARGET_SPACING)
    assert spacings[1][0] > 2.4 and spacings[2][0] < 1.05  # thick and thin slices
    assert nibabel.load(str(raw / "case_00000" / "imaging.nii.gz")).shape[0] < 128  # padded
    for case in result["per_case"]:
        assert case["kidney_voxels"] > 1000 and case["tumor_voxels"] > 500

    prepared = dataset.prepare(raw, tmp_path / "cache", show_progress=False)
    assert prepared.count == 3
    entries = []
    for i in range(prepared.count):
        d, h, w = prepared.shape(i)
        assert min(d, h, w) >= 128 and d % 64 == h % 64 == w % 64 == 0
        image = prepared.image(i)
        assert image.dtype == np.float32 and image.shape == (1, d, h, w)
        assert prepared.label(i).dtype == np.uint8 and prepared.label(i).shape == (d, h, w)
        entries.append((i, model_fn(np.array(image)).tobytes()))
    report = metric.evaluate(_log(tmp_path / "log.json", entries), prepared)
    assert report.values["DICE"] == pytest.approx(result["fp32_dice"], abs=1e-12)
    assert report.values["DICE"] > 0.9
    manifest = tmp_path / "cache" / "manifest.json"
    before = manifest.stat().st_mtime_ns
    again = dataset.prepare(raw, tmp_path / "cache", show_progress=False)  # reused, not rewritten
    assert manifest.stat().st_mtime_ns == before and again.manifest == prepared.manifest
