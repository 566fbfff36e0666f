"""ImageNet data layer: reference-exact preprocessing, val_map, synthetic sets, the cache."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from mlperf_trt.data import ImageNet, PreparedSamples, data_root
from mlperf_trt.data import imagenet as inet
from mlperf_trt.data.cache import MANIFEST, write_cache
from mlperf_trt.errors import DataError


def reference_pre_process_vgg(path: Path) -> np.ndarray:
    """mlcommons/inference vision/classification_and_detection dataset.py pre_process_vgg, NCHW."""
    img = cv2.imread(str(path))
    img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    output_height, output_width = 224, 224
    # resize_with_aspectratio(img, 224, 224, inter_pol=cv2.INTER_AREA), scale=87.5
    height, width, _ = img.shape
    new_height = int(100.0 * output_height / 87.5)
    new_width = int(100.0 * output_width / 87.5)
    if height > width:
        w = new_width
        h = int(new_height * height / width)
    else:
        h = new_height
        w = int(new_width * width / height)
    img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
    # center_crop(img, 224, 224)
    height, width, _ = img.shape
    left = int((width - output_width) / 2)
    right = int((width + output_width) / 2)
    top = int((height - output_height) / 2)
    bottom = int((height + output_height) / 2)
    img = img[top:bottom, left:right]
    img = np.asarray(img, dtype="float32")
    means = np.array([123.68, 116.78, 103.94], dtype=np.float32)
    img -= means
    img = img.transpose([2, 0, 1])
    return img


def _photo_like(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Noise plus a smooth field: JPEG-compressible, with edges (RGB uint8)."""
    coarse = rng.uniform(0, 255, (3, 4, 3)).astype(np.float32)
    field = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR)
    noise = rng.normal(0, 30, (h, w, 3))
    return np.clip(field + noise, 0, 255).astype(np.uint8)


def _write(path: Path, rgb: np.ndarray, mode: str = "RGB") -> Path:
    image = Image.fromarray(rgb, mode="RGB")
    if mode != "RGB":
        image = image.convert(mode)
    image.save(path, format="JPEG", quality=90)
    return path


# (height, width): odd sizes, both orientations, extreme aspect ratios, exact 256 and tiny sides.
ODD_SIZES = [
    (224, 225),
    (225, 224),
    (224, 1000),
    (1000, 224),
    (333, 257),
    (257, 333),
    (3000, 17),
    (17, 3000),
    (8, 8),
    (256, 256),
    (375, 500),
    (512, 256),
    (231, 9),
]


@pytest.mark.parametrize(("height", "width"), ODD_SIZES)
def test_preprocess_is_bit_identical_to_reference(tmp_path: Path, height: int, width: int) -> None:
    rng = np.random.default_rng(height * 7919 + width)
    path = _write(tmp_path / "ILSVRC2012_val_00000001.JPEG", _photo_like(rng, height, width))
    ours = inet.preprocess(inet.decode(path))
    ref = reference_pre_process_vgg(path)
    assert ours.dtype == np.float32 and ours.shape == (3, 224, 224) and ours.flags.c_contiguous
    assert np.array_equal(ours, ref)


@pytest.mark.parametrize("mode", ["L", "CMYK"])
def test_preprocess_greyscale_and_cmyk_jpegs(tmp_path: Path, mode: str) -> None:
    rng = np.random.default_rng(11)
    path = _write(tmp_path / f"{mode}.JPEG", _photo_like(rng, 301, 433), mode)
    assert Image.open(path).mode == mode
    img = inet.decode(path)
    assert img.shape == (301, 433, 3) and img.dtype == np.uint8
    assert np.array_equal(inet.preprocess(img), reference_pre_process_vgg(path))
    if mode == "L":  # decoded as three equal channels
        assert np.array_equal(img[..., 0], img[..., 1]) and np.array_equal(img[..., 1], img[..., 2])


@pytest.mark.parametrize(("height", "width"), [(375, 500), (17, 3000), (9, 13), (1000, 224)])
def test_inter_area_resize_does_not_depend_on_channel_order(height: int, width: int) -> None:
    rng = np.random.default_rng(5)
    bgr = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    rgb = np.ascontiguousarray(bgr[..., ::-1])
    for h, w in [inet.resize_dims(height, width), (100, 37), (3 * height, 2 * width)]:
        a = cv2.resize(bgr, (w, h), interpolation=cv2.INTER_AREA)
        b = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
        assert np.array_equal(a[..., ::-1], b)


@pytest.mark.parametrize(
    ("size", "resized", "offsets"),
    [
        ((375, 500), (256, 341), (16, 58)),
        ((500, 375), (341, 256), (58, 16)),
        ((224, 225), (256, 257), (16, 16)),
        ((1000, 224), (1142, 256), (459, 16)),
        ((333, 257), (331, 256), (53, 16)),
        ((17, 3000), (256, 45176), (16, 22476)),
        ((256, 256), (256, 256), (16, 16)),
        ((8, 8), (256, 256), (16, 16)),
    ],
)
def test_resize_dims_and_crop_offsets(
    size: tuple[int, int], resized: tuple[int, int], offsets: tuple[int, int]
) -> None:
    assert inet.resize_dims(*size) == resized
    assert inet.crop_offsets(*resized) == offsets


@pytest.mark.parametrize("scale", [1.0, 0.9731, 2.5])
def test_preprocess_int8_is_quantised_reference(tmp_path: Path, scale: float) -> None:
    path = _write(tmp_path / "x.JPEG", _photo_like(np.random.default_rng(2), 287, 411))
    ref = reference_pre_process_vgg(path)
    expected = np.clip(np.rint(ref / scale), -128, 127).astype(np.int8)
    ours = inet.preprocess_int8(inet.decode(path), scale)
    assert ours.dtype == np.int8 and np.array_equal(ours, expected)


def test_preprocess_rejects_non_bgr_images() -> None:
    with pytest.raises(DataError, match="uint8 HxWx3"):
        inet.preprocess(np.zeros((300, 300), np.uint8))
    with pytest.raises(DataError, match="uint8 HxWx3"):
        inet.preprocess(np.zeros((300, 300, 3), np.float32))


def test_decode_names_an_unreadable_file(tmp_path: Path) -> None:
    bad = tmp_path / "ILSVRC2012_val_00000007.JPEG"
    bad.write_bytes(b"this is not a JPEG at all" * 10)
    with pytest.raises(DataError, match="ILSVRC2012_val_00000007.JPEG"):
        inet.decode(bad)


# -- val_map.txt --------------------------------------------------------------------------------


def _raw_set(folder: Path, labels: list[int]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(labels))
    lines = []
    for i, label in enumerate(labels):
        name = f"ILSVRC2012_val_{i + 1:08d}.JPEG"
        _write(folder / name, _photo_like(rng, 120 + 7 * i, 90 + 11 * i))
        lines.append(f"{name} {label}\n")
    (folder / "val_map.txt").write_text("".join(lines))
    return folder


def test_read_val_map_reads_order_and_labels(tmp_path: Path) -> None:
    raw = _raw_set(tmp_path / "raw", [65, 970, 0, 999])
    entries = inet.read_val_map(raw)
    assert [(e.index, e.file, e.label) for e in entries] == [
        (0, "ILSVRC2012_val_00000001.JPEG", 65),
        (1, "ILSVRC2012_val_00000002.JPEG", 970),
        (2, "ILSVRC2012_val_00000003.JPEG", 0),
        (3, "ILSVRC2012_val_00000004.JPEG", 999),
    ]
    assert ImageNet().labels(raw).tolist() == [65, 970, 0, 999]
    assert ImageNet().labels(raw).dtype == np.int64


def test_read_val_map_errors_name_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no val_map\.txt in .*JPEG files plus val_map\.txt"):
        inet.read_val_map(tmp_path)
    raw = _raw_set(tmp_path / "raw", [1, 2, 3])
    vm = raw / "val_map.txt"
    good = vm.read_text().splitlines()

    vm.write_text("\n".join([good[0], "ILSVRC2012_val_00000002.JPEG 2 extra", good[2]]) + "\n")
    with pytest.raises(DataError, match=r"val_map\.txt:2: expected `<file> <label>`"):
        inet.read_val_map(raw)
    vm.write_text("\n".join([good[0], good[1], "ILSVRC2012_val_00000003.JPEG 1000"]) + "\n")
    with pytest.raises(DataError, match=r"val_map\.txt:3: label 1000 is outside 0\.\.999"):
        inet.read_val_map(raw)
    vm.write_text("\n".join([good[0], "ILSVRC2012_val_00000002.JPEG -1", good[2]]) + "\n")
    with pytest.raises(DataError, match=r"val_map\.txt:2: label -1"):
        inet.read_val_map(raw)
    vm.write_text("\n".join(["ILSVRC2012_val_00000001.JPEG cat", good[1]]) + "\n")
    with pytest.raises(DataError, match=r"val_map\.txt:1: label 'cat' is not an integer"):
        inet.read_val_map(raw)
    vm.write_text("\n".join([good[0], good[1], good[2], "ILSVRC2012_val_00000009.JPEG 4"]))
    with pytest.raises(DataError, match=r"val_map\.txt:4: .*ILSVRC2012_val_00000009\.JPEG does"):
        inet.read_val_map(raw)


# -- synthetic sets -----------------------------------------------------------------------------


def _label_by_mean(batch: np.ndarray) -> np.ndarray:
    """A deterministic 'model': the label is a function of the preprocessed pixels."""
    assert batch.dtype == np.float32 and batch.ndim == 4 and batch.shape[1:] == (3, 224, 224)
    assert 1 <= batch.shape[0] <= 32
    return (np.abs(batch).mean(axis=(1, 2, 3)) * 97).astype(np.int64) % 1000


@pytest.fixture(scope="module")
def synthetic_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    raw = tmp_path_factory.mktemp("synth") / "imagenet"
    ImageNet().synthesize(raw, 40, seed=3, label_fn=_label_by_mean, show_progress=False)
    return raw


def test_synthesize_writes_the_official_layout(synthetic_raw: Path) -> None:
    entries = inet.read_val_map(synthetic_raw)
    assert [e.file for e in entries] == [f"ILSVRC2012_val_{i:08d}.JPEG" for i in range(1, 41)]
    modes, sizes = set(), set()
    for e in entries:
        with Image.open(synthetic_raw / e.file) as im:
            assert im.format == "JPEG"
            modes.add(im.mode)
            sizes.add(im.size)
            assert min(im.size) >= 64 and max(im.size) <= 700
            assert 0.35 <= im.size[0] / im.size[1] <= 2.6
        img = inet.decode(synthetic_raw / e.file)
        assert img.ndim == 3 and img.shape[2] == 3
        # the labels are label_fn's, computed on the reference preprocessing
        expected = _label_by_mean(reference_pre_process_vgg(synthetic_raw / e.file)[None])
        assert e.label == int(expected[0])
    assert modes == {"RGB", "L", "CMYK"}
    assert len(sizes) > 30
    assert "predictions of `_label_by_mean`" in (synthetic_raw / "README.txt").read_text()


def test_synthesize_is_deterministic_and_seeded(tmp_path: Path, synthetic_raw: Path) -> None:
    again, other = tmp_path / "again", tmp_path / "other"
    ImageNet().synthesize(again, 12, seed=3, show_progress=False)
    ImageNet().synthesize(other, 12, seed=4, show_progress=False)
    for i in range(1, 13):
        name = f"ILSVRC2012_val_{i:08d}.JPEG"
        assert (again / name).read_bytes() == (synthetic_raw / name).read_bytes()
        assert (other / name).read_bytes() != (again / name).read_bytes()
    labels = [e.label for e in inet.read_val_map(again)]
    assert len(set(labels)) > 1  # seeded random labels
    assert "measure nothing" in (again / "README.txt").read_text()
    # a smaller set over a larger one leaves no stale images; a real-looking folder is refused
    ImageNet().synthesize(again, 5, seed=3, show_progress=False)
    assert len(list(again.glob("*.JPEG"))) == 5 and len(inet.read_val_map(again)) == 5
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "val_map.txt").write_text("a.JPEG 1\n")
    with pytest.raises(DataError, match="not empty"):
        ImageNet().synthesize(foreign, 3, show_progress=False)


def test_synthesize_rejects_bad_labels(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"0\.\.999"):
        ImageNet().synthesize(
            tmp_path / "r", 3, label_fn=lambda b: np.full(len(b), 1000), show_progress=False
        )
    assert not (tmp_path / "r" / "val_map.txt").exists()


# -- the prepared cache ---------------------------------------------------------------------------


def test_prepare_writes_samples_equal_to_preprocess(tmp_path: Path, synthetic_raw: Path) -> None:
    out = tmp_path / "cache"
    samples = ImageNet().prepare(synthetic_raw, out, threads=3, show_progress=False)
    assert isinstance(samples, PreparedSamples) and samples.count == 40 == len(samples)
    m = samples.manifest
    assert (m.dataset, m.version, m.source) == (
        "imagenet2012-val",
        "imagenet-vgg-v1",
        str(synthetic_raw.resolve()),
    )
    assert m.source_hash == hashlib.sha256((synthetic_raw / "val_map.txt").read_bytes()).hexdigest()
    assert m.tensors == (("input_tensor:0", "float32", (3, 224, 224)),)
    stored = np.load(out / m.files["input_tensor:0"])
    assert stored.shape == (40, 3, 224, 224) and stored.dtype == np.float32
    for e in inet.read_val_map(synthetic_raw):
        expected = inet.preprocess(inet.decode(synthetic_raw / e.file))
        (got,) = samples.sample(e.index)
        assert got.flags.c_contiguous and np.array_equal(got, expected)
        assert m.sample_sha256["input_tensor:0"][e.index] == hashlib.sha256(expected).hexdigest()
    batch = samples.batch([5, 0, 39])["input_tensor:0"]
    assert np.array_equal(batch, stored[[5, 0, 39]])
    samples.verify()
    reopened = ImageNet().open(out)
    assert reopened.manifest == m
    with pytest.raises(DataError, match="out of range"):
        samples.sample(40)


def test_verify_catches_a_corrupted_byte(tmp_path: Path, synthetic_raw: Path) -> None:
    out = tmp_path / "cache"
    samples = ImageNet().prepare(synthetic_raw, out, threads=2, show_progress=False)
    file = out / samples.manifest.files["input_tensor:0"]
    offset = samples.array("input_tensor:0").offset + 17 * 3 * 224 * 224 * 4 + 12345
    del samples
    with open(file, "r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0x01]))
    damaged = ImageNet().open(out)  # opening does not hash; verify does
    damaged.verify(indices=[0, 16, 18, 39])
    with pytest.raises(DataError, match=rf"sample 17 of tensor 'input_tensor:0' in .*{file.name}"):
        damaged.verify()


def test_second_prepare_reuses_the_cache(
    tmp_path: Path, synthetic_raw: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "cache"
    first = ImageNet().prepare(synthetic_raw, out, show_progress=False)
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}

    def no_preprocessing(img: np.ndarray) -> np.ndarray:
        raise AssertionError("a complete cache must be reused, not recomputed")

    monkeypatch.setattr(inet, "preprocess", no_preprocessing)
    second = ImageNet().prepare(synthetic_raw, out, show_progress=False)
    assert second.manifest == first.manifest
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamps
    monkeypatch.undo()

    # a changed val_map.txt (another source) is not reused
    raw2 = tmp_path / "raw2"
    shutil.copytree(synthetic_raw, raw2)
    vm = raw2 / "val_map.txt"
    vm.write_text(_relabel(vm.read_text()))
    third = ImageNet().prepare(raw2, out, show_progress=False)
    assert third.manifest.source_hash != first.manifest.source_hash
    assert np.array_equal(third.batch([3])["input_tensor:0"], first.batch([3])["input_tensor:0"])


def _relabel(text: str) -> str:
    lines = text.splitlines()
    name, label = lines[0].split()
    lines[0] = f"{name} {(int(label) + 1) % 1000}"
    return "\n".join(lines) + "\n"


def test_failing_prepare_leaves_no_manifest(tmp_path: Path, synthetic_raw: Path) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(synthetic_raw, raw)
    out = tmp_path / "cache"
    ImageNet().prepare(raw, out, show_progress=False)
    assert (out / MANIFEST).is_file()
    (raw / "ILSVRC2012_val_00000023.JPEG").write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(DataError, match="ILSVRC2012_val_00000023.JPEG"):
        ImageNet().prepare(raw, out, threads=2, show_progress=False)
    assert not (out / MANIFEST).exists()
    assert not [p for p in out.iterdir() if p.name.endswith(".partial")]
    with pytest.raises(DataError, match="python -m mlperf_trt prepare --model resnet50"):
        ImageNet().open(out)


def test_open_errors_say_what_to_run(tmp_path: Path, synthetic_raw: Path) -> None:
    with pytest.raises(DataError, match=r"does not exist.*prepare --model resnet50 --data-dir"):
        ImageNet().open(tmp_path / "nothing")
    out = tmp_path / "cache"
    ImageNet().prepare(synthetic_raw, out, show_progress=False)
    manifest = json.loads((out / MANIFEST).read_text())
    manifest["version"] = "imagenet-vgg-v0"
    (out / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(DataError, match=rf"version 'imagenet-vgg-v0'.*--data-dir {synthetic_raw}"):
        ImageNet().open(out)


def test_default_cache_dir_is_under_the_data_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLPERF_TRT_DATA_ROOT", str(tmp_path / "root"))
    assert data_root() == tmp_path / "root"
    raw = tmp_path / "raw"
    key = hashlib.sha256(str(raw.resolve()).encode()).hexdigest()[:12]
    assert ImageNet().default_cache_dir(raw) == tmp_path / "root" / "prepared" / "imagenet" / key
    monkeypatch.delenv("MLPERF_TRT_DATA_ROOT")
    monkeypatch.chdir(tmp_path)
    assert data_root() == tmp_path / "data"


def test_write_cache_checks_what_fill_returns(tmp_path: Path) -> None:
    def fill(i: int) -> list[np.ndarray]:
        return [np.full((2, 3), i, np.int32), np.zeros(4, np.float32 if i != 2 else np.float64)]

    with pytest.raises(DataError, match="sample 2: tensor 'b' is float64"):
        write_cache(
            tmp_path / "c",
            dataset="toy",
            version="v1",
            source="s",
            source_hash="h",
            tensors=[("a", "int32", (2, 3)), ("b", "float32", (4,))],
            count=5,
            fill=fill,
            threads=1,
            show_progress=False,
        )
    assert not (tmp_path / "c" / MANIFEST).exists()
    ok = write_cache(
        tmp_path / "c",
        dataset="toy",
        version="v1",
        source="s",
        source_hash="h",
        tensors=[("a", "int32", (2, 3)), ("b:0", "float32", (4,))],
        count=5,
        fill=lambda i: [np.full((2, 3), i, np.int32), np.arange(4, dtype=np.float32) * i],
        threads=3,
        show_progress=False,
    )
    assert ok.manifest.files == {"a": "a.npy", "b:0": "b_0.npy"}
    assert [s.tolist() for s in ok.sample(4)] == [[[4] * 3] * 2, [0.0, 4.0, 8.0, 12.0]]
    ok.verify()


def test_write_cache_refuses_when_the_disk_is_too_small(
    tmp_path: Path, synthetic_raw: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "cache"
    ImageNet().prepare(synthetic_raw, out, show_progress=False)
    raw2 = tmp_path / "raw2"
    shutil.copytree(synthetic_raw, raw2)
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=1000))
    # the old cache's own 40 samples count as free: a same-size rebuild fits...
    assert ImageNet().prepare(raw2, out, show_progress=False).count == 40
    # ...a bigger one does not, and the refusal leaves the complete cache untouched
    with pytest.raises(DataError, match=r"not enough disk space .* need 0\.\d+ GB"):
        write_cache(
            out,
            dataset="imagenet2012-val",
            version="imagenet-vgg-v1",
            source="s",
            source_hash="h",
            tensors=[("input_tensor:0", "float32", (3, 224, 224))],
            count=41,
            fill=lambda i: [np.zeros((3, 224, 224), np.float32)],
            show_progress=False,
        )
    ImageNet().open(out).verify(indices=[0, 39])


def test_calibration_indices(tmp_path: Path, synthetic_raw: Path) -> None:
    ds = ImageNet()
    cal = ds.calibration_indices(50_000)
    assert len(cal) == 500 == len(set(cal)) and cal == sorted(cal)
    assert 0 <= cal[0] < cal[-1] < 50_000
    assert cal == ds.calibration_indices(50_000) != ds.calibration_indices(50_000, seed=1)
    assert ds.calibration_indices(40) == list(range(40))
    assert len(ds.calibration_indices(40, size=10)) == 10
    raw = tmp_path / "raw"
    shutil.copytree(synthetic_raw, raw)
    (raw / "cal_image_list_option_1.txt").write_text(
        "ILSVRC2012_val_00000031.JPEG\nILSVRC2012_val_00000002.JPEG\n"
    )
    assert ds.calibration_indices(40, raw_dir=raw) == [1, 30]
    (raw / "cal_image_list_option_1.txt").write_text("ILSVRC2012_val_00027145.JPEG\n")
    with pytest.raises(DataError, match=r"cal_image_list_option_1\.txt:1: .*00027145"):
        ds.calibration_indices(40, raw_dir=raw)


def test_progress_lines_when_not_a_terminal(
    tmp_path: Path, synthetic_raw: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ImageNet().prepare(synthetic_raw, tmp_path / "c", threads=2, show_progress=True)
    err = capsys.readouterr().err
    assert "prepare imagenet2012-val" in err and "40/40 samples" in err
    assert os.listdir(tmp_path / "c")
