"""mAP of RetinaNet over OpenImages (SPEC §2.2), as tools/accuracy-openimages.py scores it.

For each unique qsl_idx (first occurrence, SPEC §1.2) the payload is read as float32 records of 7
`[qsl_idx, ymin, xmin, ymax, xmax, score, label]`; a payload shorter than 7 floats is an image
with no detections (still evaluated: its boxes count as missed). Boxes are rescaled by the
original height/width of the JSON entry `images[qsl_idx]`, turned into COCO [x, y, w, h]
detections with category_id = int(label), and pycocotools' COCOeval (bbox) runs over the images
seen, in the order the script adds them to its set. The line is `mAP=XX.XXX%` (100 x
AP@[.5:.95]).

Two details the script leaves to its numpy: the products `ymin * height` are formed in float64 (as
numpy < 2 does; numpy 2 would round them to float32, a difference below 1e-7 relative), and a log
whose images all have no detections scores 0 (the script would crash in loadRes).
pycocotools' prints are captured into Report.details["pycocotools"].
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mlperf_trt.accuracy.base import Report
from mlperf_trt.accuracy.log import LogEntry, read_accuracy_log, unique_entries
from mlperf_trt.data.openimages import OpenImagesTruth
from mlperf_trt.errors import AccuracyError

__all__ = ["evaluate", "evaluate_entries", "evaluate_payloads"]

log = logging.getLogger(__name__)

FLOATS_PER_DETECTION = 7  # SPEC §1.2, §2.2


def evaluate(log_path: Path, truth: OpenImagesTruth, dtype: str = "float32") -> Report:
    """Score mlperf_log_accuracy.json against `truth` (data.openimages.OpenImages.ground_truth)."""
    if dtype != "float32":
        raise AccuracyError(
            f"--dtype {dtype!r}: the retinanet payload is float32 records (SPEC §2.2); the"
            " reference script reads nothing else"
        )
    return evaluate_entries(read_accuracy_log(Path(log_path)), truth, source=str(log_path))


def evaluate_payloads(payloads: Mapping[int, bytes], truth: OpenImagesTruth) -> Report:
    """Score in-memory payloads {qsl_idx: response bytes}, in that order (synthetic sets)."""
    return evaluate_entries(
        [LogEntry(int(i), bytes(data)) for i, data in payloads.items()], truth, source="payloads"
    )


def evaluate_entries(
    entries: Iterable[LogEntry], truth: OpenImagesTruth, *, source: str = "accuracy log"
) -> Report:
    images = truth.images
    detections: list[dict[str, Any]] = []
    image_ids: set[int] = set()  # as the script builds it: its iteration order is the imgIds order
    seen = no_results = mismatched = 0
    for entry in unique_entries(list(entries)):
        idx = entry.qsl_idx
        if not 0 <= idx < len(images):
            raise AccuracyError(
                f"{source}: qsl_idx {idx} is outside the data set's {len(images)} images; score"
                " the log against the annotations it was run on"
            )
        seen += 1
        image = images[idx]
        data = np.frombuffer(entry.data[: len(entry.data) - len(entry.data) % 4], np.float32)
        if len(data) < FLOATS_PER_DETECTION:
            image_ids.add(image.id)
            no_results += 1
            continue
        if len(data) % FLOATS_PER_DETECTION:
            raise AccuracyError(
                f"{source}: the payload of qsl_idx {idx} holds {len(data)} float32, not a multiple"
                f" of {FLOATS_PER_DETECTION} (SPEC §2.2: [qsl_idx, ymin, xmin, ymax, xmax, score,"
                " label] per detection)"
            )
        records = data.reshape(-1, FLOATS_PER_DETECTION).astype(np.float64)
        mismatched += int(np.count_nonzero(records[:, 0].astype(np.int64) != idx))
        ymin = records[:, 1] * image.height
        xmin = records[:, 2] * image.width
        ymax = records[:, 3] * image.height
        xmax = records[:, 4] * image.width
        for k in range(len(records)):
            detections.append(
                {
                    "image_id": image.id,
                    "category_id": int(records[k, 6]),
                    "bbox": [
                        float(xmin[k]),
                        float(ymin[k]),
                        float(xmax[k] - xmin[k]),
                        float(ymax[k] - ymin[k]),
                    ],
                    "score": float(records[k, 5]),
                }
            )
        image_ids.add(image.id)
    if seen == 0:
        raise AccuracyError(f"{source}: the log holds no entries; was it a performance run?")
    if mismatched:
        log.error("%s: %d detections name another image than their qsl_idx", source, mismatched)
    details: dict[str, object] = {
        "images": len(image_ids),
        "detections": len(detections),
        "no_results": no_results,
        "image_idx_mismatches": mismatched,
    }
    if not detections:
        details["pycocotools"] = "no detections in any image: mAP 0 (nothing was found)"
        return Report("mAP=0.000%", {"mAP": 0.0}, details)
    stats, printed = _coco_map(truth, detections, list(image_ids))
    details["pycocotools"] = printed
    details["stats"] = [float(s) for s in stats]
    value = 100.0 * float(stats[0])
    return Report(f"mAP={value:.3f}%", {"mAP": value}, details)


def _coco_map(
    truth: OpenImagesTruth, detections: list[dict[str, Any]], image_ids: list[int]
) -> tuple[np.ndarray, str]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        ground = COCO()
        dataset = dict(truth.dataset)
        # COCOeval writes an `ignore` key into the ground-truth dicts: give it copies.
        dataset["annotations"] = [dict(a) for a in truth.dataset["annotations"]]
        ground.dataset = dataset
        ground.createIndex()
        results = ground.loadRes(detections)
        evaluation = COCOeval(ground, results, iouType="bbox")
        evaluation.params.imgIds = image_ids
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return np.asarray(evaluation.stats, dtype=np.float64), buffer.getvalue()
