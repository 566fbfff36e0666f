"""ImageNet-2012 validation set (ResNet50-v1.5): reader, preprocessing, cache, synthetic sets.

Raw layout (SPEC.md §1.1): a folder of JPEG files plus `val_map.txt` with one `<file> <label>` line
per image; sample index = line number - 1, labels 0..999.

Preprocessing (SPEC.md §2.1) gives the same bytes as the MLPerf reference `pre_process_vgg`:
cv2.imread (BGR), aspect-preserving resize of the shorter side to 256 with cv2.INTER_AREA, centre
crop 224x224, float32 minus the RGB means, CHW. The reference converts BGR->RGB before resizing; we
resize the BGR image (INTER_AREA works per channel, so the order does not change a value; a test
checks it) and do crop + channel swap + mean + transpose in one C++ kernel call.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from mlperf_trt import _C
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
from mlperf_trt.data.synthetic_images import write_images
from mlperf_trt.data.synthetic_target import begin_synthetic
from mlperf_trt.errors import DataError
from mlperf_trt.progress import Progress
from mlperf_trt.results.layout import atomic_write_text

__all__ = [
    "CALIBRATION_LISTS",
    "IMAGE_SIZE",
    "MEAN",
    "NUM_CLASSES",
    "PREPROCESS_VERSION",
    "VAL_MAP",
    "ImageEntry",
    "ImageNet",
    "crop_offsets",
    "decode",
    "preprocess",
    "preprocess_int8",
    "read_val_map",
    "resize_dims",
]

log = logging.getLogger(__name__)

VAL_MAP = "val_map.txt"
IMAGE_SIZE = 224  # SPEC §2.1: centre crop 224x224
# SPEC §2.1: shorter side 256, computed as the reference does
RESIZE_SHORT = int(100.0 * IMAGE_SIZE / 87.5)
MEAN = (123.68, 116.78, 103.94)  # SPEC §2.1: RGB means, no std scaling
NUM_CLASSES = 1000  # SPEC §1.1: labels 0..999
# Bump when the bytes preprocess() produces change: caches of another version are rebuilt.
PREPROCESS_VERSION = "imagenet-vgg-v1"
# The official MLPerf calibration lists (mlcommons/inference calibration/ImageNet): 500 file names
# of the validation set. Copy one into the raw folder to calibrate on it; option 1 is preferred.
CALIBRATION_LISTS = ("cal_image_list_option_1.txt", "cal_image_list_option_2.txt")
CALIBRATION_SIZE = 500
README = "README.txt"
_README_MARK = "Synthetic ImageNet-2012-validation-format set written by mlperf_trt"
_DIVISOR = (1.0, 1.0, 1.0)
_LABEL_CHUNK = 32
# crop_normalize / crop_normalize_int8 (csrc/kernels) are not in _C.pyi yet: typed here by hand.
_KERNELS: Any = _C.kernels


@dataclass(frozen=True)
class ImageEntry:
    index: int
    file: str
    label: int


def _prepare_hint(raw_dir: Path | str) -> str:
    return prepare_hint("resnet50", raw_dir)


def read_val_map(data_dir: Path) -> list[ImageEntry]:
    """The `<file> <label>` lines of data_dir/val_map.txt in order; every file must exist."""
    data_dir = Path(data_dir)
    path = data_dir / VAL_MAP
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(
            f"no {VAL_MAP} in {data_dir}: expected the ImageNet validation layout: JPEG files plus"
            f" {VAL_MAP} with `<file> <label>` lines (or synthesize a set with"
            " `python -m mlperf_trt prepare --model resnet50`)"
        ) from None
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read {path}: {err}") from err
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    entries: list[ImageEntry] = []
    for lineno, line in enumerate(lines, start=1):
        fields = line.split()
        if len(fields) != 2:
            raise DataError(
                f"{path}:{lineno}: expected `<file> <label>` (two fields separated by a space),"
                f" got {line!r}"
            )
        name, label_text = fields
        try:
            label = int(label_text)
        except ValueError:
            raise DataError(
                f"{path}:{lineno}: label {label_text!r} is not an integer: expected a class"
                f" index 0..{NUM_CLASSES - 1}"
            ) from None
        if not 0 <= label < NUM_CLASSES:
            raise DataError(
                f"{path}:{lineno}: label {label} is outside 0..{NUM_CLASSES - 1} (ImageNet has"
                f" {NUM_CLASSES} classes; a 1001-class model's background offset belongs in the"
                " post-processing, not in val_map.txt)"
            )
        entries.append(ImageEntry(lineno - 1, name, label))
    if not entries:
        raise DataError(f"{path} lists no images: expected `<file> <label>` lines")
    missing = [e for e in entries if not (data_dir / e.file).is_file()]
    if missing:
        first = missing[0]
        raise DataError(
            f"{path}:{first.index + 1}: the listed image {data_dir / first.file} does not exist"
            + (f" ({len(missing)} listed images are missing)" if len(missing) > 1 else "")
            + f"; put the JPEG files next to {VAL_MAP}"
        )
    return entries


def decode(path: Path) -> np.ndarray:
    """cv2.imread, as the reference: uint8 HxWx3 BGR (greyscale and CMYK JPEGs come out as BGR)."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DataError(
            f"cannot decode {path} as an image (missing, unreadable or not a JPEG/PNG); replace"
            " it with the original file from the data set"
        )
    return img


def resize_dims(height: int, width: int) -> tuple[int, int]:
    """(h, w) after the reference's aspect-preserving resize of the shorter side to 256."""
    if height <= 0 or width <= 0:
        raise DataError(f"image size {height}x{width} is empty: expected positive sides")
    # SPEC §2.1, spelled as the reference's resize_with_aspectratio (float division, int()).
    if height > width:
        return int(RESIZE_SHORT * height / width), RESIZE_SHORT
    return RESIZE_SHORT, int(RESIZE_SHORT * width / height)


def crop_offsets(height: int, width: int) -> tuple[int, int]:
    """(top, left) of the reference's 224x224 centre crop of a height x width image."""
    return int((height - IMAGE_SIZE) / 2), int((width - IMAGE_SIZE) / 2)


def _resized(img_bgr: np.ndarray) -> tuple[np.ndarray, int, int]:
    if (
        not isinstance(img_bgr, np.ndarray)
        or img_bgr.dtype != np.uint8
        or img_bgr.ndim != 3
        or (img_bgr.shape[2] != 3)
    ):
        what = (
            f"{img_bgr.dtype} {img_bgr.shape}" if isinstance(img_bgr, np.ndarray) else type(img_bgr)
        )
        raise DataError(f"expected a uint8 HxWx3 BGR image as decode() returns, got {what}")
    height, width = img_bgr.shape[:2]
    new_h, new_w = resize_dims(height, width)
    resized = cv2.resize(img_bgr, (new_w, new_h), interpolation=cv2.INTER_AREA)
    top, left = crop_offsets(new_h, new_w)
    return np.ascontiguousarray(resized), top, left


def preprocess(img_bgr: np.ndarray) -> np.ndarray:
    """float32 [3,224,224], RGB minus MEAN: the reference pre_process_vgg, bit for bit."""
    resized, top, left = _resized(img_bgr)
    out: np.ndarray = _KERNELS.crop_normalize(
        resized, top, left, IMAGE_SIZE, IMAGE_SIZE, MEAN, _DIVISOR, True
    )
    return out


def preprocess_int8(img_bgr: np.ndarray, scale: float) -> np.ndarray:
    """int8 [3,224,224] = clip(rint(preprocess(img) / scale), -128, 127), for INT8 engine inputs."""
    resized, top, left = _resized(img_bgr)
    out: np.ndarray = _KERNELS.crop_normalize_int8(
        resized, top, left, IMAGE_SIZE, IMAGE_SIZE, MEAN, _DIVISOR, True, scale
    )
    return out


def _files_fingerprint(raw_dir: Path, entries: list[ImageEntry]) -> str:
    return files_fingerprint(raw_dir, (e.file for e in entries))


class ImageNet:
    """The ImageNet-2012 validation set (the `Dataset` seam of DESIGN.md §3)."""

    name = "imagenet2012-val"
    input_name = "input_tensor:0"  # SPEC §2.1: the ONNX model's input
    sample_shape = (3, IMAGE_SIZE, IMAGE_SIZE)

    # -- raw data ---------------------------------------------------------------------------------

    def labels(self, raw_dir: Path) -> np.ndarray:
        """int64 labels by sample index, from val_map.txt."""
        return np.array([e.label for e in read_val_map(raw_dir)], dtype=np.int64)

    def ground_truth(self, out_dir: Path) -> np.ndarray:
        """The labels of the raw folder a cache was prepared from (for the accuracy metric)."""
        return self.labels(Path(self.open(out_dir).manifest.source))

    # -- prepared cache ---------------------------------------------------------------------------

    def default_cache_dir(self, raw_dir: Path) -> Path:
        return prepared_dir("imagenet", raw_dir)

    def open(self, out_dir: Path) -> PreparedSamples:
        """The prepared cache in out_dir; a DataError saying what to run when missing or stale."""
        return open_versioned(out_dir, self.name, PREPROCESS_VERSION, "resnet50")

    def prepare(
        self,
        raw_dir: Path,
        out_dir: Path | None = None,
        *,
        threads: int | None = None,
        show_progress: bool = True,
    ) -> PreparedSamples:
        """Preprocess every image of raw_dir into a cache (reused when already complete)."""
        raw_dir = Path(raw_dir)
        entries = read_val_map(raw_dir)
        source = str(raw_dir.resolve())
        source_hash = hashlib.sha256((raw_dir / VAL_MAP).read_bytes()).hexdigest()
        files_hash = _files_fingerprint(raw_dir, entries)
        out_dir = Path(out_dir) if out_dir is not None else self.default_cache_dir(raw_dir)

        existing = self._reusable(out_dir, source, source_hash, files_hash, len(entries))
        if existing is not None:
            log.info("reusing the prepared %s samples in %s", self.name, out_dir)
            return existing

        def fill(i: int) -> list[np.ndarray]:
            return [preprocess(decode(raw_dir / entries[i].file))]

        with cv2_single_threaded():
            return write_cache(
                out_dir,
                dataset=self.name,
                version=PREPROCESS_VERSION,
                source=source,
                source_hash=source_hash,
                source_files_hash=files_hash,
                tensors=[(self.input_name, "float32", self.sample_shape)],
                count=len(entries),
                fill=fill,
                threads=threads,
                show_progress=show_progress,
            )

    def _reusable(
        self, out_dir: Path, source: str, source_hash: str, files_hash: str, count: int
    ) -> PreparedSamples | None:
        return reusable_cache(
            out_dir,
            dataset=self.name,
            version=PREPROCESS_VERSION,
            source=source,
            source_hash=source_hash,
            source_files_hash=files_hash,
            count=count,
            tensors=((self.input_name, "float32", self.sample_shape),),
        )

    # -- calibration ------------------------------------------------------------------------------

    def calibration_indices(
        self,
        count: int,
        size: int = CALIBRATION_SIZE,
        seed: int = 0,
        *,
        raw_dir: Path | None = None,
    ) -> list[int]:
        """Sorted sample indices to calibrate INT8 on.

        With `raw_dir` holding an official MLPerf list (CALIBRATION_LISTS: 500 validation file
        names), its images' indices; otherwise a seeded subset of `size` of range(count) (all of it
        when count <= size).
        """
        if raw_dir is not None:
            for list_name in CALIBRATION_LISTS:
                list_path = Path(raw_dir) / list_name
                if list_path.is_file():
                    return self._official_calibration(Path(raw_dir), list_path)
        return seeded_subset(count, size, seed)

    def _official_calibration(self, raw_dir: Path, list_path: Path) -> list[int]:
        by_name = {e.file: e.index for e in read_val_map(raw_dir)}
        indices: list[int] = []
        for lineno, line in enumerate(list_path.read_text(encoding="utf-8").splitlines(), 1):
            name = line.strip()
            if not name:
                continue
            if name not in by_name:
                raise DataError(
                    f"{list_path}:{lineno}: {name} is not listed in {raw_dir / VAL_MAP}; the"
                    " official calibration list names ImageNet validation images: use it with"
                    " the official set, or delete it to calibrate on a seeded subset"
                )
            indices.append(by_name[name])
        return sorted(set(indices))

    # -- synthetic set ----------------------------------------------------------------------------

    def synthesize(
        self,
        raw_dir: Path,
        count: int,
        seed: int = 0,
        label_fn: Callable[[np.ndarray], np.ndarray] | None = None,
        *,
        show_progress: bool = True,
        threads: int | None = None,
    ) -> None:
        """Write `count` synthetic JPEGs plus val_map.txt in the official layout into raw_dir.

        label_fn receives preprocessed float32 batches [n,3,224,224] (n <= 32) and returns labels
        0..999; a reference model's predictions make the set's accuracy mean "agreement with that
        model". Without label_fn the labels are seeded random numbers and measure nothing.
        val_map.txt is written last: a folder without it is not a (complete) data set.
        """
        raw_dir = Path(raw_dir)
        begin_synthetic(
            raw_dir, mark=_README_MARK, list_file=VAL_MAP, count=count, seed=seed, unit="images"
        )
        names = [f"ILSVRC2012_val_{i + 1:08d}.JPEG" for i in range(count)]
        wanted = set(names)
        for stale in raw_dir.glob("ILSVRC2012_val_*.JPEG"):  # images of an earlier, larger set
            if stale.name not in wanted:
                stale.unlink()
        write_images(
            raw_dir,
            names,
            seed,
            threads=threads,
            show_progress=show_progress,
            label=f"synthesize {self.name}",
        )
        if label_fn is None:
            labels = np.random.default_rng([seed, 2**32]).integers(0, NUM_CLASSES, count)
            how = "seeded random numbers: they measure nothing (accuracy ~0.1%)"
        else:
            labels = self._model_labels(raw_dir, names, label_fn, threads, show_progress)
            fn_name = getattr(label_fn, "__qualname__", type(label_fn).__name__)
            how = (
                f"the predictions of `{fn_name}` on the preprocessed images. When that function is"
                " the FP32 reference model, the accuracy of another run on this set is its"
                " agreement with FP32 (the FP32 model itself scores 100%), which is what the"
                " 99% / 99.9% targets compare against"
            )
        atomic_write_text(
            raw_dir / README,
            f"{_README_MARK}.\n\n"
            f"Images: {count} JPEGs ILSVRC2012_val_00000001.JPEG ... {names[-1]}, seed {seed},\n"
            "generated by mlperf_trt.data.synthetic_images: smooth colour fields, gradients,\n"
            "random shapes and texture; sides 64..700 px, aspect 0.4..2.5;\n"
            "85% RGB, 10% greyscale, 5% CMYK JPEGs. They are not photographs.\n\n"
            f"Labels ({VAL_MAP}, `<file> <label>` per line, sample index = line order): {how}.\n",
        )
        atomic_write_text(
            raw_dir / VAL_MAP,
            "".join(f"{n} {int(lab)}\n" for n, lab in zip(names, labels, strict=True)),
        )

    def _model_labels(
        self,
        raw_dir: Path,
        names: list[str],
        label_fn: Callable[[np.ndarray], np.ndarray],
        threads: int | None,
        show_progress: bool,
    ) -> np.ndarray:
        progress = None
        if show_progress:
            progress = Progress("label with model", total=len(names), unit="images")
        labels = np.empty(len(names), dtype=np.int64)
        with cv2_single_threaded(), ThreadPoolExecutor(threads or os.cpu_count() or 1) as pool:
            for start in range(0, len(names), _LABEL_CHUNK):
                chunk = names[start : start + _LABEL_CHUNK]
                batch = np.stack(list(pool.map(lambda n: preprocess(decode(raw_dir / n)), chunk)))
                out = np.asarray(label_fn(batch))
                if out.shape != (len(chunk),) or not np.issubdtype(out.dtype, np.integer):
                    raise DataError(
                        f"label_fn returned {out.dtype} {out.shape} for a batch of {len(chunk)}:"
                        " expected one integer label per image"
                    )
                if out.min() < 0 or out.max() >= NUM_CLASSES:
                    raise DataError(
                        f"label_fn returned labels {int(out.min())}..{int(out.max())}: expected"
                        f" 0..{NUM_CLASSES - 1} (subtract 1 from a 1001-class model's ArgMax)"
                    )
                labels[start : start + len(chunk)] = out
                if progress is not None:
                    progress.update(start + len(chunk))
        if progress is not None:
            progress.update(len(names), force=True)
            progress.close()
        return labels
