"""OpenImages MLPerf validation subset (RetinaNet): reader, preprocessing, cache, synthetic sets.

Raw layout (SPEC §1.1, §2.2), as the MLPerf download script leaves it:

    <dir>/annotations/openimages-mlperf.json   COCO format: images, annotations, categories
    <dir>/validation/data/<file_name>          the JPEG of each entry of `images`

Sample index = position in the JSON's `images` list (the reference loader walks that list; the
accuracy script indexes it with qsl_idx), never the folder listing. Category ids are the model's
labels 0..263 (SPEC §2.2: no inverse map).

Preprocessing is the reference's `pre_process_openimages_retinanet` (SPEC §2.2): cv2.imread
(IMREAD_COLOR: greyscale and CMYK JPEGs come out as 3-channel BGR), float32, BGR->RGB, direct
resize to 800x800 with cv2.INTER_LINEAR (on the float32 image, as the reference does), /255,
CHW. The original height and width the metric rescales by are those of the JSON (the accuracy
script reads them there), not stored in the cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from mlperf_trt.data.cache import (
    PreparedSamples,
    cv2_single_threaded,
    files_fingerprint,
    open_versioned,
    prepare_hint,
    prepared_dir,
    reusable_cache,
    seeded_subset,
    write_cache,
)
from mlperf_trt.data.imagenet import decode  # cv2.imread as both references do (SPEC §2.1, §2.2)
from mlperf_trt.data.synthetic_images import write_images
from mlperf_trt.data.synthetic_target import begin_synthetic
from mlperf_trt.errors import DataError
from mlperf_trt.progress import Progress
from mlperf_trt.results.layout import atomic_write_text

__all__ = [
    "ANNOTATIONS",
    "CALIBRATION_LIST",
    "IMAGES_DIR",
    "IMAGE_SIZE",
    "ImageRecord",
    "OpenImages",
    "OpenImagesTruth",
    "decode",
    "preprocess",
    "read_annotations",
]

log = logging.getLogger(__name__)

ANNOTATIONS = Path("annotations") / "openimages-mlperf.json"  # SPEC §2.2
IMAGES_DIR = Path("validation") / "data"
IMAGE_SIZE = 800  # SPEC §2.2: direct resize to 800x800
NUM_CLASSES = 264  # SPEC §2.2: category ids 0..263
INPUT_NAME = "images"  # SPEC §2.2: the model's input
PREPROCESS_VERSION = "openimages-retinanet-v1"
# mlcommons/inference calibration/openimages/openimages_cal_images_list.txt: 500 file names. They
# name OpenImages *train* images (the calibration download script fetches them from the train
# split), so they are in no validation JSON; a folder whose JSON lists them can calibrate on them.
CALIBRATION_LIST = "openimages_cal_images_list.txt"
CALIBRATION_SIZE = 500  # SPEC §2.2
README = "README.txt"
_README_MARK = "Synthetic OpenImages-MLPerf-format set written by mlperf_trt"
_MODEL_CHUNK = 4  # images per model_fn call while synthesising (7.7 MB each)
# Synthetic ground truth: the FP32 model's detections at or above this score.
GT_SCORE = 0.5


@dataclass(frozen=True)
class ImageRecord:
    index: int  # sample index = position in the JSON's `images`
    id: int
    file_name: str
    height: int
    width: int


@dataclass(frozen=True, eq=False)
class OpenImagesTruth:
    """What the mAP metric needs: the parsed annotation file (COCO dict) and its images."""

    annotations_path: Path
    dataset: Mapping[str, Any]  # the JSON as parsed: images, annotations, categories
    images: tuple[ImageRecord, ...]


def _prepare_hint(raw_dir: Path | str) -> str:
    return prepare_hint("retinanet", raw_dir)


def _field(obj: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise DataError(f"{where}: missing field {key!r}")
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise DataError(f"{where}: field {key!r} is {value!r}, expected {names}")
    return value


def read_annotations(raw_dir: Path, *, check_files: bool = True) -> OpenImagesTruth:
    """Parse and check raw_dir/annotations/openimages-mlperf.json (and that each image exists)."""
    raw_dir = Path(raw_dir)
    path = raw_dir / ANNOTATIONS
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(
            f"no {ANNOTATIONS} in {raw_dir}: expected the OpenImages-MLPerf layout (annotations/"
            f"openimages-mlperf.json and the images under {IMAGES_DIR}/), or synthesize a set"
            " with `python -m mlperf_trt prepare --model retinanet --synthetic N`"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"cannot read {path} as JSON: {err}") from err
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a COCO JSON object with images, annotations, categories")
    images_raw = _field(data, "images", list, str(path))
    annotations = _field(data, "annotations", list, str(path))
    categories = _field(data, "categories", list, str(path))
    category_ids = {
        _field(c, "id", int, f"{path}: categories[{n}]") for n, c in enumerate(categories)
    }
    images: list[ImageRecord] = []
    ids: dict[int, int] = {}
    for n, img in enumerate(images_raw):
        where = f"{path}: images[{n}]"
        record = ImageRecord(
            n,
            _field(img, "id", int, where),
            _field(img, "file_name", str, where),
            _field(img, "height", int, where),
            _field(img, "width", int, where),
        )
        if record.height <= 0 or record.width <= 0:
            raise DataError(
                f"{where}: size {record.height}x{record.width}, expected positive sides"
            )
        if record.id in ids:
            raise DataError(
                f"{where}: image id {record.id} is also images[{ids[record.id]}]: ids must be"
                " unique (the metric maps detections to images by id)"
            )
        ids[record.id] = n
        images.append(record)
    if not images:
        raise DataError(f"{path} lists no images")
    for n, ann in enumerate(annotations):
        where = f"{path}: annotations[{n}]"
        image_id = _field(ann, "image_id", int, where)
        if image_id not in ids:
            raise DataError(f"{where}: image_id {image_id} names no entry of `images`")
        category = _field(ann, "category_id", int, where)
        if category not in category_ids:
            raise DataError(f"{where}: category_id {category} is not in `categories`")
        bbox = _field(ann, "bbox", list, where)
        if len(bbox) != 4 or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in bbox
        ):
            raise DataError(f"{where}: bbox {bbox!r}, expected [x, y, width, height] numbers")
        if bbox[2] < 0 or bbox[3] < 0:
            raise DataError(f"{where}: bbox {bbox!r} has a negative width or height")
    if check_files:
        folder = raw_dir / IMAGES_DIR
        missing = [r for r in images if not (folder / r.file_name).is_file()]
        if missing:
            first = missing[0]
            raise DataError(
                f"{path}: images[{first.index}] (id {first.id}) names {first.file_name}, but"
                f" {folder / first.file_name} does not exist"
                + (f" ({len(missing)} listed images are missing)" if len(missing) > 1 else "")
                + f"; put the JPEG files under {folder}"
            )
    return OpenImagesTruth(path, data, tuple(images))


def preprocess(img_bgr: np.ndarray) -> np.ndarray:
    """float32 [3,800,800]: the reference pre_process_openimages_retinanet (SPEC §2.2)."""
    if not isinstance(img_bgr, np.ndarray) or img_bgr.ndim != 3 or img_bgr.shape[2] != 3:
        what = f"{img_bgr.shape}" if isinstance(img_bgr, np.ndarray) else type(img_bgr).__name__
        raise DataError(f"expected an HxWx3 BGR image as decode() returns, got {what}")
    rgb = cv2.cvtColor(img_bgr.astype(np.float32), cv2.COLOR_BGR2RGB)
    resized = np.asarray(
        cv2.resize(rgb, (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_LINEAR), np.float32
    )
    resized /= np.float32(255.0)  # in place on float32, as the reference's `img /= 255.`
    out: np.ndarray = np.ascontiguousarray(resized.transpose(2, 0, 1))
    return out


def _files_fingerprint(folder: Path, images: Sequence[ImageRecord]) -> str:
    return files_fingerprint(folder, (r.file_name for r in images))


class OpenImages:
    """The OpenImages-MLPerf validation set (the `Dataset` seam of DESIGN.md §3)."""

    name = "openimages-mlperf-val"
    input_name = INPUT_NAME
    sample_shape = (3, IMAGE_SIZE, IMAGE_SIZE)

    def ground_truth(self, raw_dir: Path) -> OpenImagesTruth:
        """The annotations the metric scores against (image files are not checked)."""
        return read_annotations(Path(raw_dir), check_files=False)

    def default_cache_dir(self, raw_dir: Path) -> Path:
        return prepared_dir("openimages", raw_dir)

    def open(self, out_dir: Path) -> PreparedSamples:
        """The prepared cache in out_dir; a DataError saying what to run when missing or stale."""
        return open_versioned(out_dir, self.name, PREPROCESS_VERSION, "retinanet")

    def prepare(
        self,
        raw_dir: Path,
        out_dir: Path | None = None,
        *,
        threads: int | None = None,
        show_progress: bool = True,
    ) -> PreparedSamples:
        """Preprocess every image of raw_dir into a cache (reused when already complete).

        The cache holds 7.68 MB per image (float32 3x800x800): 190 GB for the official 24,781.
        """
        raw_dir = Path(raw_dir)
        truth = read_annotations(raw_dir)
        folder = raw_dir / IMAGES_DIR
        source = str(raw_dir.resolve())
        source_hash = hashlib.sha256((raw_dir / ANNOTATIONS).read_bytes()).hexdigest()
        files_hash = _files_fingerprint(folder, truth.images)
        out_dir = Path(out_dir) if out_dir is not None else self.default_cache_dir(raw_dir)
        tensors = ((self.input_name, "float32", self.sample_shape),)
        reused = reusable_cache(
            out_dir,
            dataset=self.name,
            version=PREPROCESS_VERSION,
            source=source,
            source_hash=source_hash,
            source_files_hash=files_hash,
            count=len(truth.images),
            tensors=tensors,
        )
        if reused is not None:
            return reused

        def fill(i: int) -> list[np.ndarray]:
            return [preprocess(decode(folder / truth.images[i].file_name))]

        with cv2_single_threaded():
            return write_cache(
                out_dir,
                dataset=self.name,
                version=PREPROCESS_VERSION,
                source=source,
                source_hash=source_hash,
                source_files_hash=files_hash,
                tensors=tensors,
                count=len(truth.images),
                fill=fill,
                threads=threads,
                show_progress=show_progress,
            )

    def calibration_indices(
        self,
        count: int,
        size: int = CALIBRATION_SIZE,
        seed: int = 0,
        *,
        raw_dir: Path | None = None,
    ) -> list[int]:
        """Sorted sample indices to calibrate INT8 on.

        With raw_dir holding CALIBRATION_LIST whose names the JSON lists, those images' indices
        (DataError when it names images the JSON lacks: the official list names train images,
        see CALIBRATION_LIST); otherwise a seeded subset of `size` of range(count).
        """
        if raw_dir is not None and (Path(raw_dir) / CALIBRATION_LIST).is_file():
            return self._listed(Path(raw_dir))
        return seeded_subset(count, size, seed)

    def _listed(self, raw_dir: Path) -> list[int]:
        list_path = raw_dir / CALIBRATION_LIST
        by_name = {
            r.file_name: r.index for r in read_annotations(raw_dir, check_files=False).images
        }
        indices: set[int] = set()
        for lineno, line in enumerate(list_path.read_text(encoding="utf-8").splitlines(), 1):
            name = line.strip()
            if not name:
                continue
            if name not in by_name:
                raise DataError(
                    f"{list_path}:{lineno}: {name} is not in {raw_dir / ANNOTATIONS}. The official"
                    " list names OpenImages train images (not in the validation set): add them"
                    " and their entries to this folder's layout, or delete the list to calibrate"
                    " on a seeded subset of the validation images"
                )
            indices.add(by_name[name])
        return sorted(indices)

    # -- synthetic set ----------------------------------------------------------------------------

    def synthesize(
        self,
        raw_dir: Path,
        count: int,
        seed: int,
        model_fn: Callable[[np.ndarray], Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]]],
        show_progress: bool = True,
    ) -> dict[str, float]:
        """Write `count` synthetic JPEGs and openimages-mlperf.json (official layout) in raw_dir.

        model_fn gets preprocessed float32 [n,3,800,800] batches and returns, per image,
        post-processed (boxes x1,y1,x2,y2 in 800x800 pixels, scores, labels 0..263): the FP32
        model's detections. Those scoring >= GT_SCORE, mapped to each image's original size,
        are the ground truth. Returns {"fp32_map", "gt_boxes", "images_without_gt"}: the mAP
        (percent) of all the model's detections against the file. It is near 100 by construction,
        not exactly: a box thinner than a pixel at the original size is left out of the truth but
        stays a detection, a false positive that costs precision when it outscores true boxes of
        its class; so does a detection below GT_SCORE that ties with one above it (detections of
        classes without any truth are not scored: COCO skips such classes). The JSON is written
        last: without it the folder is not a data set.
        """
        from mlperf_trt.accuracy.openimages import evaluate_payloads
        from mlperf_trt.models.retinanet_post import payload_reference

        raw_dir = Path(raw_dir)
        begin_synthetic(
            raw_dir, mark=_README_MARK, list_file=ANNOTATIONS, count=count, seed=seed, unit="images"
        )
        folder = raw_dir / IMAGES_DIR
        names = [f"{seed:08x}{i:08x}.jpg" for i in range(count)]  # 16 hex digits, as OpenImages
        wanted = set(names)
        if folder.is_dir():
            for stale in folder.glob("*.jpg"):
                if stale.name not in wanted:
                    stale.unlink()
        write_images(folder, names, seed, show_progress=show_progress, label="synthesize images")
        images: list[dict[str, Any]] = [
            {
                "id": i + 1,
                "file_name": n,
                "height": 0,
                "width": 0,
                "license": None,
                "coco_url": None,
            }
            for i, n in enumerate(names)
        ]
        detections = self._detect(folder, names, images, model_fn, show_progress)
        annotations: list[dict[str, Any]] = []
        for image, (boxes, scores, labels) in zip(images, detections, strict=True):
            sx, sy = image["width"] / IMAGE_SIZE, image["height"] / IMAGE_SIZE
            for box, score, label in zip(
                boxes.tolist(), scores.tolist(), labels.tolist(), strict=True
            ):
                x1, y1, w, h = (
                    box[0] * sx,
                    box[1] * sy,
                    (box[2] - box[0]) * sx,
                    (box[3] - box[1]) * sy,
                )
                if score < GT_SCORE or w < 1.0 or h < 1.0:
                    continue
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": image["id"],
                        "category_id": int(label),
                        "bbox": [x1, y1, w, h],
                        "area": w * h,
                        "iscrowd": 0,
                    }
                )
        dataset = {
            "info": {"dataset": "openimages_mlperf", "version": "synthetic", "seed": seed},
            "licenses": [],
            "categories": [
                {"id": c, "name": f"class_{c:03d}", "supercategory": None}
                for c in range(NUM_CLASSES)
            ],
            "images": images,
            "annotations": annotations,
        }
        records = tuple(
            ImageRecord(i, im["id"], im["file_name"], im["height"], im["width"])
            for i, im in enumerate(images)
        )
        truth = OpenImagesTruth(raw_dir / ANNOTATIONS, dataset, records)
        payloads = {i: payload_reference(i, *det).tobytes() for i, det in enumerate(detections)}
        fp32_map = evaluate_payloads(payloads, truth).values["mAP"]
        with_gt = {a["image_id"] for a in annotations}
        atomic_write_text(
            raw_dir / README,
            f"{_README_MARK}.\n\nImages: {count} JPEGs under {IMAGES_DIR}/, seed {seed}, drawn by"
            " mlperf_trt.data.synthetic_images (colour fields, shapes, texture; 10% greyscale,"
            " 5% CMYK). They are not photographs.\n\n"
            f"Boxes ({ANNOTATIONS}, COCO format, sample index = order of `images`): the"
            f" detections of `{getattr(model_fn, '__qualname__', type(model_fn).__name__)}` with"
            f" score >= {GT_SCORE}, mapped to each image's size: {len(annotations)} boxes. Its"
            f" own mAP on this set: {fp32_map:.3f}%.\n",
        )
        atomic_write_text(raw_dir / ANNOTATIONS, json.dumps(dataset))
        return {
            "fp32_map": float(fp32_map),
            "gt_boxes": float(len(annotations)),
            "images_without_gt": float(count - len(with_gt)),
        }

    def _detect(
        self,
        folder: Path,
        names: list[str],
        images: list[dict[str, Any]],
        model_fn: Callable[[np.ndarray], Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]]],
        show_progress: bool,
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        progress = (
            Progress("detect with model", total=len(names), unit="images")
            if show_progress
            else None
        )
        out: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

        def load(i: int) -> np.ndarray:
            img = decode(folder / names[i])
            images[i]["height"], images[i]["width"] = int(img.shape[0]), int(img.shape[1])
            return preprocess(img)

        with cv2_single_threaded(), ThreadPoolExecutor(os.cpu_count() or 1) as pool:
            for start in range(0, len(names), _MODEL_CHUNK):
                chunk = range(start, min(start + _MODEL_CHUNK, len(names)))
                batch = np.stack(list(pool.map(load, chunk)))
                result = list(model_fn(batch))
                if len(result) != len(chunk):
                    raise DataError(
                        f"model_fn returned {len(result)} detection sets for {len(chunk)} images:"
                        " expected one (boxes, scores, labels) per image"
                    )
                for boxes, scores, labels in result:
                    b = np.asarray(boxes, np.float32).reshape(-1, 4)
                    s = np.asarray(scores, np.float32).reshape(-1)
                    lab = np.asarray(labels).reshape(-1).astype(np.int64)
                    if not len(b) == len(s) == len(lab):
                        raise DataError(
                            f"model_fn returned {len(b)} boxes, {len(s)} scores and {len(lab)}"
                            " labels for one image: expected one of each per detection"
                        )
                    if len(lab) and (lab.min() < 0 or lab.max() >= NUM_CLASSES):
                        raise DataError(
                            f"model_fn returned labels {lab.min()}..{lab.max()}: expected"
                            f" 0..{NUM_CLASSES - 1} (the category ids, SPEC §2.2)"
                        )
                    out.append((b, s, lab))
                if progress is not None:
                    progress.update(len(out))
        if progress is not None:
            progress.update(len(out), force=True)
            progress.close()
        return out
