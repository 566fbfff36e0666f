"""RetinaNet's data, model, post-processing reference and mAP layers (SPEC §2.2).

Constants are typed in from SPEC §2.2 and torchvision's definitions, not imported; the
post-processing and the preprocessing are checked against plain implementations written here.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from mlperf_trt.accuracy import openimages as metric
from mlperf_trt.data.openimages import OpenImages, decode, preprocess, read_annotations
from mlperf_trt.errors import AccuracyError, DataError
from mlperf_trt.models import retinanet, retinanet_post

pytest.importorskip("pycocotools")

# SPEC §2.2 / torchvision RetinaNet constants, typed in.
CLASSES = 264
SIDE = 800
LEVELS = (100, 50, 25, 13, 7)


# -- raw layout helpers ---------------------------------------------------------------------------


def _write_set(root: Path, sizes: list[tuple[int, int]], names: list[str]) -> list[np.ndarray]:
    """JPEGs of flat colours (distinct per image) plus an annotations JSON in that order."""
    (root / "validation" / "data").mkdir(parents=True)
    (root / "annotations").mkdir()
    rgbs = []
    for i, ((h, w), name) in enumerate(zip(sizes, names, strict=True)):
        rgb = np.zeros((h, w, 3), np.uint8)
        rgb[..., 0], rgb[..., 1], rgb[..., 2] = 20 + 40 * i, 200 - 30 * i, 90
        rgb[h // 4 : h // 2, w // 3 : w // 2] = 255
        Image.fromarray(rgb).save(root / "validation" / "data" / name, quality=95)
        rgbs.append(rgb)
    images = [
        {"id": 10 + i, "file_name": n, "height": h, "width": w}
        for i, ((h, w), n) in enumerate(zip(sizes, names, strict=True))
    ]
    anns = [
        {
            "id": 1,
            "image_id": 10,
            "category_id": 3,
            "bbox": [5.0, 6.0, 20.0, 30.0],
            "area": 600.0,
            "iscrowd": 0,
        }
    ]
    cats = [{"id": c, "name": f"c{c}"} for c in range(CLASSES)]
    text = json.dumps({"images": images, "annotations": anns, "categories": cats})
    (root / "annotations" / "openimages-mlperf.json").write_text(text)
    return rgbs


def test_reader_index_is_json_order_and_prepare_follows_it(tmp_path: Path) -> None:
    names = ["zz.jpg", "aa.jpg", "mm.jpg"]  # folder order would be aa, mm, zz
    _write_set(tmp_path / "raw", [(60, 90), (120, 40), (33, 77)], names)
    truth = read_annotations(tmp_path / "raw")
    assert [r.file_name for r in truth.images] == names
    assert [(r.index, r.id, r.height, r.width) for r in truth.images][1] == (1, 11, 120, 40)
    prepared = OpenImages().prepare(tmp_path / "raw", tmp_path / "cache", show_progress=False)
    assert prepared.count == 3
    for i, name in enumerate(names):
        expected = preprocess(decode(tmp_path / "raw" / "validation" / "data" / name))
        np.testing.assert_array_equal(prepared.sample(i)[0], expected)


def test_missing_image_names_image_and_json(tmp_path: Path) -> None:
    _write_set(tmp_path, [(50, 50), (50, 50)], ["a.jpg", "b.jpg"])
    (tmp_path / "validation" / "data" / "b.jpg").unlink()
    with pytest.raises(DataError, match=r"openimages-mlperf\.json.*images\[1\].*b\.jpg"):
        OpenImages().prepare(tmp_path, tmp_path / "cache", show_progress=False)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["annotations"][0].update(image_id=99), "image_id 99 names no entry"),
        (lambda d: d["images"][0].update(height="tall"), "field 'height'"),
        (lambda d: d["annotations"][0].update(bbox=[1, 2, 3]), "bbox"),
        (lambda d: d["annotations"][0].update(category_id=999), "category_id 999"),
        (lambda d: d.pop("categories"), "missing field 'categories'"),
    ],
)
def test_bad_json_fields(tmp_path: Path, edit: object, message: str) -> None:
    _write_set(tmp_path, [(50, 50)], ["a.jpg"])
    path = tmp_path / "annotations" / "openimages-mlperf.json"
    data = json.loads(path.read_text())
    edit(data)  # type: ignore[operator]
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=message):
        read_annotations(tmp_path)


def test_greyscale_and_cmyk_decode_to_three_channels(tmp_path: Path) -> None:
    rgb = cv2.GaussianBlur(
        np.random.default_rng(1).uniform(0, 255, (48, 64, 3)).astype(np.uint8), (0, 0), 3
    )
    Image.fromarray(rgb).convert("L").save(tmp_path / "g.jpg", quality=95)
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "c.jpg", quality=95)
    grey, cmyk = decode(tmp_path / "g.jpg"), decode(tmp_path / "c.jpg")
    assert grey.shape == cmyk.shape == (48, 64, 3)
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()
    assert np.abs(cmyk[..., ::-1].astype(int) - rgb).mean() < 4  # BGR of the original colours
    assert preprocess(grey).shape == preprocess(cmyk).shape == (3, SIDE, SIDE)


def _bilinear(src: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """cv2.INTER_LINEAR's definition: half-pixel centres, 2-tap, edge clamped, float64."""

    def taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pos = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
        lo = np.floor(pos).astype(int)
        frac = pos - lo
        frac[lo < 0], lo[lo < 0] = 0.0, 0
        hi_edge = lo >= n_in - 1
        lo[hi_edge], frac[hi_edge] = n_in - 1, 0.0
        return lo, np.minimum(lo + 1, n_in - 1), frac

    y0, y1, fy = taps(src.shape[0], out_h)
    x0, x1, fx = taps(src.shape[1], out_w)
    s = src.astype(np.float64)
    rows = s[y0] * (1 - fy)[:, None, None] + s[y1] * fy[:, None, None]
    out: np.ndarray = rows[:, x0] * (1 - fx)[None, :, None] + rows[:, x1] * fx[None, :, None]
    return out


def test_preprocess_matches_independent_bilinear() -> None:
    rng = np.random.default_rng(2)
    for h, w in [(333, 517), (800, 800), (1024, 640), (64, 700)]:
        bgr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        expected = _bilinear(bgr[..., ::-1], SIDE, SIDE).transpose(2, 0, 1) / 255.0
        got = preprocess(bgr)
        assert got.dtype == np.float32 and got.shape == (3, SIDE, SIDE)
        np.testing.assert_allclose(got, expected, atol=2e-5)


def test_anchors_by_hand() -> None:
    assert retinanet.feature_sizes() == LEVELS
    assert tuple(9 * s * s for s in LEVELS) == retinanet.LEVEL_SIZES
    assert retinanet.TOTAL_ANCHORS == 120_087
    a = retinanet.anchors()
    assert a.shape == (120_087, 4) and a.dtype == np.float32
    p7 = a[-9 * 49 :]  # sizes 512, 645, 812; stride 800 // 7 = 114; ratio-major, scale-minor
    cell = p7.reshape(7, 7, 9, 4)
    # ratio 0.5: w = 512 * sqrt(2) = 724.08 -> half 362, h -> half 181; ratio 1: 256; ratio 2.
    np.testing.assert_array_equal(cell[0, 0, 0], [-362, -181, 362, 181])
    np.testing.assert_array_equal(cell[0, 0, 4], [-322, -322, 322, 322])  # 645 / 2 = 322.5 -> 322
    np.testing.assert_array_equal(cell[0, 0, 8], [-287, -574, 287, 574])  # 812 / sqrt 2 / 2
    np.testing.assert_array_equal(cell[1, 2, 3], [228 - 256, 114 - 256, 228 + 256, 114 + 256])
    # P3: stride 8, first anchor 32 x ratio 0.5 -> w 45.25 (half 22.6 -> 23), h 22.6 (half 11)
    np.testing.assert_array_equal(a[0], [-23, -11, 23, 11])
    np.testing.assert_array_equal(a[9 * 101], [8 - 23, 8 - 11, 8 + 23, 8 + 11])


# -- post-processing reference against a brute force ----------------------------------------------


def _brute_force(logits: np.ndarray, deltas: np.ndarray, anchors: np.ndarray, sizes: list[int]):
    f32 = np.float32
    cands = []  # (score, position, box, label)
    start = 0
    for size in sizes:
        level = []
        for a in range(start, start + size):
            for c in range(logits.shape[1]):
                s = f32(1.0 / (1.0 + math.exp(-float(logits[a, c]))))
                if s > f32(0.05):
                    level.append((s, (a - start) * logits.shape[1] + c, a, c))
        level.sort(key=lambda t: (-t[0], t[1]))
        for s, _, a, c in level[:1000]:
            x1, y1, x2, y2 = (f32(v) for v in anchors[a])
            dx, dy, dw, dh = (f32(v) for v in deltas[a])
            w, h = x2 - x1, y2 - y1
            cx, cy = x1 + f32(0.5) * w, y1 + f32(0.5) * h
            clip = f32(math.log(1000 / 16))
            pw = f32(math.exp(float(min(dw, clip)))) * w
            ph = f32(math.exp(float(min(dh, clip)))) * h
            px, py = dx * w + cx, dy * h + cy
            box = [px - f32(0.5) * pw, py - f32(0.5) * ph, px + f32(0.5) * pw, py + f32(0.5) * ph]
            box = [min(max(v, f32(0)), f32(SIDE)) for v in box]
            cands.append((s, len(cands), box, c))
        start += size
    order = sorted(cands, key=lambda t: (-t[0], t[1]))
    kept: list[tuple] = []
    for cand in order:
        s, _, b, c = cand
        suppressed = False
        for k in kept:
            if k[3] != c:
                continue
            kb = k[2]
            inter = max(f32(0), min(b[2], kb[2]) - max(b[0], kb[0])) * max(
                f32(0), min(b[3], kb[3]) - max(b[1], kb[1])
            )
            area_k = (kb[2] - kb[0]) * (kb[3] - kb[1])
            area_b = (b[2] - b[0]) * (b[3] - b[1])
            with np.errstate(invalid="ignore", divide="ignore"):
                iou = inter / ((area_k + area_b) - inter)
            if iou > 0.5:
                suppressed = True
                break
        if not suppressed:
            kept.append(cand)
    kept = kept[:300]
    return (
        np.array([k[2] for k in kept], np.float32).reshape(-1, 4),
        np.array([k[0] for k in kept], np.float32),
        np.array([k[3] for k in kept], np.int64),
    )


@pytest.mark.parametrize("seed", [0, 1])
def test_postprocess_reference_against_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    sides = [8, 3]  # level 0: 576 anchors x 264 classes, more than 1000 candidates
    sizes = [9 * s * s for s in sides]
    anchors = retinanet.anchors()[: sizes[0]]
    anchors = np.concatenate([anchors, retinanet.anchors()[-sizes[1] :]])
    n = sum(sizes)
    logits = rng.normal(-4.0, 1.2, (2, n, CLASSES)).astype(np.float32)
    logits[:, :, 7] += 3.0  # one busy class: NMS suppresses within it
    deltas = rng.normal(0.0, 0.3, (2, n, 4)).astype(np.float32)
    deltas[0, 5, 2] = 9.0  # beyond the dw clamp
    got = retinanet_post.postprocess_reference(logits, deltas, anchors, sizes)
    for i in range(2):
        boxes, scores, labels = _brute_force(logits[i], deltas[i], anchors, sizes)
        assert len(scores) == 300  # the cap is exercised
        np.testing.assert_array_equal(got[i][0], boxes)
        np.testing.assert_array_equal(got[i][1], scores)
        np.testing.assert_array_equal(got[i][2], labels)


def test_payload_reference_layout() -> None:
    boxes = np.array([[10, 20, 30, 60], [0, 0, 800, 400], [1, 2, 3, 4]], np.float32)
    scores = np.array([0.2, 0.9, 0.04], np.float32)
    labels = np.array([5, 263, 1])
    out = retinanet_post.payload_reference(17, boxes, scores, labels).reshape(-1, 7)
    expected = np.array(
        [[17, 0, 0, 0.5, 1.0, 0.9, 263], [17, 20 / 800, 10 / 800, 60 / 800, 30 / 800, 0.2, 5]],
        np.float32,
    )
    np.testing.assert_array_equal(out, expected)
    # float32 x / 800 gives the bits of the reference's float64 division rounded to float32.
    x = np.random.default_rng(3).uniform(0, 800, 200_000).astype(np.float32)
    np.testing.assert_array_equal(
        x / np.float32(800), (x.astype(np.float64) / 800).astype(np.float32)
    )
    assert retinanet_post.payload_reference(0, boxes[2:], scores[2:], labels[2:]).size == 0


# -- mAP -----------------------------------------------------------------------------------------


def _log(path: Path, payloads: list[tuple[int, np.ndarray]]) -> Path:
    entries = [
        {"seq_id": n, "qsl_idx": i, "data": np.asarray(p, np.float32).tobytes().hex().upper()}
        for n, (i, p) in enumerate(payloads)
    ]
    path.write_text(json.dumps(entries))
    return path


def _truth_dir(tmp_path: Path) -> Path:
    raw = tmp_path / "raw"
    (raw / "annotations").mkdir(parents=True)
    images = [
        {"id": 1, "file_name": "a.jpg", "height": 200, "width": 400},
        {"id": 2, "file_name": "b.jpg", "height": 300, "width": 300},
    ]
    anns = [
        {
            "id": 1,
            "image_id": 1,
            "category_id": 3,
            "bbox": [10.0, 20.0, 100.0, 50.0],
            "area": 5000.0,
            "iscrowd": 0,
        },
        {
            "id": 2,
            "image_id": 2,
            "category_id": 7,
            "bbox": [30.0, 60.0, 90.0, 120.0],
            "area": 10800.0,
            "iscrowd": 0,
        },
    ]
    cats = [{"id": c, "name": f"c{c}"} for c in range(CLASSES)]
    data = {"images": images, "annotations": anns, "categories": cats}
    (raw / "annotations" / "openimages-mlperf.json").write_text(json.dumps(data))
    return raw


def _record(
    idx: int,
    x: float,
    y: float,
    w: float,
    h: float,
    size: tuple[int, int],
    score: float,
    label: int,
) -> list[float]:
    height, width = size
    return [idx, y / height, x / width, (y + h) / height, (x + w) / width, score, label]


def _pycocotools_map(raw: Path, dets: list[dict], image_ids: list[int], tmp: Path) -> float:
    """The reference script's own route: COCO from the file, loadRes from a JSON file."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    (tmp / "dets.json").write_text(json.dumps(dets))
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(raw / "annotations" / "openimages-mlperf.json"))
        ev = COCOeval(gt, gt.loadRes(str(tmp / "dets.json")), iouType="bbox")
        ev.params.imgIds = image_ids
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return 100.0 * float(ev.stats[0])


def test_map_perfect_and_shifted(tmp_path: Path) -> None:
    raw = _truth_dir(tmp_path)
    truth = OpenImages().ground_truth(raw)
    perfect = [
        (0, np.array(_record(0, 10, 20, 100, 50, (200, 400), 0.9, 3))),
        (1, np.array(_record(1, 30, 60, 90, 120, (300, 300), 0.8, 7))),
        (0, np.zeros(0)),  # a duplicate qsl_idx: ignored
    ]
    report = metric.evaluate(_log(tmp_path / "p.json", perfect), truth)
    assert report.line == "mAP=100.000%" and report.values["mAP"] == pytest.approx(100.0)
    # Image 0's box shifted right by 20 of its 100 px: IoU 80*50 / (120*50) = 0.667, a match at
    # IoU thresholds .50-.65 (4 of 10); image 1 stays perfect: AP per class averages 40 and 100.
    shifted = [
        (0, np.array(_record(0, 30, 20, 100, 50, (200, 400), 0.9, 3))),
        (1, np.array(_record(1, 30, 60, 90, 120, (300, 300), 0.8, 7))),
    ]
    report = metric.evaluate(_log(tmp_path / "s.json", shifted), truth)
    dets = [
        {"image_id": 1, "category_id": 3, "bbox": [30.0, 20.0, 100.0, 50.0], "score": 0.9},
        {"image_id": 2, "category_id": 7, "bbox": [30.0, 60.0, 90.0, 120.0], "score": 0.8},
    ]
    direct = _pycocotools_map(raw, dets, [1, 2], tmp_path)
    assert direct == pytest.approx(70.0, abs=1e-6)
    assert report.values["mAP"] == pytest.approx(direct, abs=1e-4)
    assert report.line == f"mAP={direct:.3f}%"
    # An empty payload: image 1 is seen with no detections, its box is missed (class 7 AP 0).
    empty = [(0, np.array(_record(0, 10, 20, 100, 50, (200, 400), 0.9, 3))), (1, np.zeros(0))]
    report = metric.evaluate(_log(tmp_path / "e.json", empty), truth)
    assert report.values["mAP"] == pytest.approx(50.0, abs=1e-4)
    assert report.details["no_results"] == 1


def test_map_bad_logs(tmp_path: Path) -> None:
    truth = OpenImages().ground_truth(_truth_dir(tmp_path))
    with pytest.raises(AccuracyError, match="qsl_idx 5"):
        metric.evaluate(_log(tmp_path / "a.json", [(5, np.zeros(7))]), truth)
    with pytest.raises(AccuracyError, match="multiple of 7"):
        metric.evaluate(_log(tmp_path / "b.json", [(0, np.zeros(9))]), truth)


# -- synthetic set round trip ---------------------------------------------------------------------


def test_synthesize_then_prepare(tmp_path: Path) -> None:
    calls = []

    def fake_model(batch: np.ndarray):
        assert batch.dtype == np.float32 and batch.shape[1:] == (3, SIDE, SIDE)
        calls.append(len(batch))
        out = []
        for img in batch:
            level = float(img.mean())  # depends on the image: a real function of its input
            boxes = np.array(
                [[100, 200, 500, 600], [10, 10, 300, 90], [0, 0, 0.5, 800]], np.float32
            )
            scores = np.array([0.95, 0.6 + 0.1 * level, 0.99], np.float32)
            labels = np.array([12, 200, 12])
            out.append((boxes, scores, labels))
        return out

    raw = tmp_path / "syn"
    made = OpenImages().synthesize(raw, 6, seed=4, model_fn=fake_model, show_progress=False)
    assert sum(calls) == 6
    truth = read_annotations(raw)
    assert len(truth.images) == 6 and len(truth.dataset["categories"]) == CLASSES
    # The degenerate (< 1 px wide at the original size) box is not ground truth; the others are,
    # scaled to each image's size (read here from the JPEG itself).
    assert made["gt_boxes"] == 12.0
    first = truth.images[0]
    h, w = cv2.imread(str(raw / "validation" / "data" / first.file_name)).shape[:2]
    assert (first.height, first.width) == (h, w)
    box = next(
        a
        for a in truth.dataset["annotations"]
        if a["image_id"] == first.id and a["category_id"] == 12
    )
    np.testing.assert_allclose(
        box["bbox"], [100 * w / 800, 200 * h / 800, 400 * w / 800, 400 * h / 800], rtol=1e-6
    )
    # The degenerate detection (score 0.99, class 12, no truth) ranks above class 12's true
    # boxes in every image: 6 false positives, then 6 hits, so class 12's precision is 6/12
    # at every recall (AP 0.5) while class 200 is perfect: mAP 75, not 100.
    assert made["fp32_map"] == pytest.approx(75.0, abs=1e-6)
    prepared = OpenImages().prepare(raw, tmp_path / "cache", show_progress=False)
    assert prepared.count == 6
    np.testing.assert_array_equal(
        prepared.sample(5)[0],
        preprocess(decode(raw / "validation" / "data" / truth.images[5].file_name)),
    )
    real = tmp_path / "real"
    _write_set(real, [(40, 40)], ["r.jpg"])  # a data set not written by synthesize
    with pytest.raises(DataError, match="not empty"):
        OpenImages().synthesize(real, 1, 0, fake_model, show_progress=False)


def test_calibration_indices(tmp_path: Path) -> None:
    _write_set(tmp_path, [(40, 40)] * 3, ["x.jpg", "y.jpg", "z.jpg"])
    ds = OpenImages()
    assert ds.calibration_indices(10, size=20) == list(range(10))
    sub = ds.calibration_indices(1000, size=50, seed=1, raw_dir=tmp_path)
    assert len(sub) == 50 and sub == sorted(set(sub))
    (tmp_path / "openimages_cal_images_list.txt").write_text("z.jpg\nx.jpg\n")
    assert ds.calibration_indices(3, raw_dir=tmp_path) == [0, 2]
    (tmp_path / "openimages_cal_images_list.txt").write_text("dd51a1780bcb3d28.jpg\n")
    with pytest.raises(DataError, match="train images"):
        ds.calibration_indices(3, raw_dir=tmp_path)


# -- the model ------------------------------------------------------------------------------------


def test_full_model_shape_table() -> None:
    table = retinanet.layer_table("full")
    by_name = {c.name: c for c in table}
    backbone = [c for c in table if c.name.startswith("backbone/")]
    # torchvision's resnext50_32x4d: 25,028,904 parameters, less the 1000-class fc (2,049,000)
    # and the 34,112 batch-norm channels' weight and bias: the conv weights of the backbone.
    assert sum(int(np.prod(c.weight_shape)) for c in backbone) == 25_028_904 - 2_049_000 - 68_224
    assert by_name["backbone/layer1/0/conv2"].weight_shape == (128, 4, 3, 3)  # 32 groups of 4
    assert by_name["backbone/layer4/2/conv3"].weight_shape == (2048, 1024, 1, 1)
    assert by_name["fpn/inner2"].weight_shape == (256, 2048, 1, 1)
    assert by_name["fpn/p6"].weight_shape == (256, 256, 3, 3) and by_name["fpn/p6"].stride == 2
    assert by_name["head/cls/logits"].weight_shape == (9 * CLASSES, 256, 3, 3)
    assert by_name["head/reg/deltas"].weight_shape == (36, 256, 3, 3)
    assert sum(c.name.startswith("head/cls/conv") for c in table) == 4
    assert (
        sum(c.name.startswith("backbone/layer3/") and c.name.endswith("conv1") for c in table) == 6
    )


def test_tiny_model_outputs_and_card() -> None:
    ort = pytest.importorskip("onnxruntime")
    from mlperf_trt.models import build_model, check_model

    model = build_model("retinanet", "tiny", seed=0)
    check_model(model, retinanet.RAW_CARD, "built-in retinanet tiny")
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = retinanet._init_images(1)
    cls, reg = session.run(["cls_logits", "bbox_regression"], {"images": x})
    assert cls.shape == (1, 120_087, CLASSES) and reg.shape == (1, 120_087, 4)
    # Idle classes sit at RetinaNet's prior logit -log(99): score 0.01, never a candidate.
    prior = -math.log(99)
    idle = np.isclose(cls[0], prior, atol=1e-5).all(axis=0)
    assert idle.sum() == CLASSES - retinanet.ACTIVE_CLASSES
    boxes, scores, labels = retinanet_post.postprocess_reference(
        cls, reg, retinanet.anchors(), retinanet.LEVEL_SIZES
    )[0]
    assert (scores > 0.5).sum() >= 5  # confident detections on a synthetic image
    assert set(labels.tolist()) <= set(np.flatnonzero(~idle).tolist())
