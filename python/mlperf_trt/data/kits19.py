"""KiTS19 (3D-UNet): raw layout, reference preprocessing, the prepared-volume cache, synthetic sets.

Raw layout (SPEC §2.3): `case_XXXXX/imaging.nii.gz` and `case_XXXXX/segmentation.nii.gz`, read
with nibabel. The sample order (SPEC §1.1) is the case list:

- a folder with its own `inference_cases.json` (a JSON list of case names) uses that list
  (synthetic sets write one);
- otherwise the official list: the 42 cases of the reference's `meta/inference_cases.json` plus
  `case_00400`, a copy of `case_00185`, for 43 samples (SPEC §2.3, §7). The reference setup copies
  the folder (`cp -r case_00185 case_00400`); when the copy is missing, case_00185's files are read
  for it.

Preprocessing is the reference `preprocess.py` step by step (SPEC §2.3): spacing from header
pixdim[1:4]; when it differs from [1.6, 1.2, 1.2] mm, scipy.ndimage.zoom by spacing / target
(image order 1, label order 0, mode constant, cval = the volume's minimum, grid_mode False); clip
[-79, 304] and (x - 101) / 76.9; edge-pad axes shorter than 128 symmetrically (image and label);
per axis, crop `dim % 64` symmetrically when it is < 32, else pad with -2.2 (label 0) up to the
next multiple of 64 (and at least 128). Volumes differ in shape, so the cache (docs/unet3d.md) is
one `.npy` per case and array plus `manifest.json`, written last.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from mlperf_trt.data.cache import prepared_dir, seeded_subset, sha256_file
from mlperf_trt.errors import DataError
from mlperf_trt.progress import Progress
from mlperf_trt.results.layout import atomic_write_json

__all__ = [
    "CALIBRATION_CASES",
    "CASE_LIST",
    "INFERENCE_CASES",
    "KiTS19",
    "PreparedVolumes",
    "Preprocessed",
    "TARGET_SPACING",
    "adjust_shape",
    "case_files",
    "normalize_intensity",
    "pad_to_min_shape",
    "preprocess_arrays",
    "read_case",
    "read_case_list",
    "read_nifti",
    "resample",
    "zoom_factors",
]

log = logging.getLogger(__name__)

CASE_LIST = "inference_cases.json"
IMAGING, SEGMENTATION = "imaging.nii.gz", "segmentation.nii.gz"
TARGET_SPACING = (1.6, 1.2, 1.2)  # SPEC §2.3, mm, (z, y, x)
CLIP = (-79.0, 304.0)  # SPEC §2.3
MEAN, STD = 101.0, 76.9  # SPEC §2.3
PADDING_VALUE = -2.2  # SPEC §2.3: constant padding of the image (label: 0)
ROI = 128  # SPEC §2.3
STRIDE = 64  # SPEC §2.3: int(128 * (1 - 0.5))
PREPROCESS_VERSION = "kits19-reference-v1"  # bump when the preprocessed bytes change
MANIFEST = "manifest.json"
MANIFEST_FORMAT = "mlperf_trt-kits19-volumes/1"
# SPEC §2.3: the 42 cases of meta/inference_cases.json, then case_00400 (a copy of case_00185).
_OFFICIAL_42 = tuple(
    f"case_{n:05d}"
    for n in (0, 3, 5, 6, 12, 24, 34, 41, 44, 49, 52, 56, 61, 65, 66, 70, 76, 78, 80, 84, 86)
    + (87, 92, 111, 112, 125, 128, 138, 157, 160, 161, 162, 169, 171, 176, 185, 187, 189, 198)
    + (203, 206, 207)
)
DUPLICATE_CASE, DUPLICATE_OF = "case_00400", "case_00185"
INFERENCE_CASES: tuple[str, ...] = (*_OFFICIAL_42, DUPLICATE_CASE)
# SPEC §2.3: meta/calibration_cases.json, 20 training cases (outside the inference set).
CALIBRATION_CASES: tuple[str, ...] = tuple(
    f"case_{n:05d}"
    for n in (50, 117, 172, 149, 91, 147, 144, 100, 90, 196, 183, 130, 136, 47, 73, 141, 53)
    + (148, 81, 150)
)


# -- raw data -------------------------------------------------------------------------------------


def read_case_list(raw_dir: Path) -> list[str]:
    """The case names of raw_dir in sample order (module docstring); every case must exist."""
    raw_dir = Path(raw_dir)
    path = raw_dir / CASE_LIST
    if path.is_file():
        try:
            cases = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise DataError(f"cannot read {path} as a JSON list of case names: {err}") from err
        if not isinstance(cases, list) or not cases or not all(isinstance(c, str) for c in cases):
            raise DataError(f"{path}: expected a non-empty JSON list of case names (case_XXXXX)")
        if len(set(cases)) != len(cases):
            raise DataError(f"{path} lists a case twice: every sample must be a distinct case")
    elif raw_dir.is_dir():
        cases = list(INFERENCE_CASES)
    else:
        raise DataError(
            f"KiTS19 folder {raw_dir} does not exist: expected case_XXXXX/{IMAGING} and"
            f" {SEGMENTATION} folders (or synthesize a set with"
            " `python -m mlperf_trt prepare --model 3d-unet --synthetic N`)"
        )
    for case in cases:
        case_files(raw_dir, case)  # raises for a missing case
    return [str(c) for c in cases]


def case_files(raw_dir: Path, case: str) -> tuple[Path, Path]:
    """(imaging, segmentation) of a case; case_00400 falls back to case_00185's files."""
    folder = Path(raw_dir) / case
    if case == DUPLICATE_CASE and not folder.is_dir() and (Path(raw_dir) / DUPLICATE_OF).is_dir():
        folder = Path(raw_dir) / DUPLICATE_OF  # SPEC §2.3: case_00400 is a copy of case_00185
    files = (folder / IMAGING, folder / SEGMENTATION)
    missing = [p for p in files if not p.is_file()]
    if missing:
        raise DataError(
            f"KiTS19 case {case}: {missing[0]} is missing; expected {IMAGING} and {SEGMENTATION}"
            f" in {folder} (download the case with the kits19 starter code, or remove it from"
            f" {Path(raw_dir) / CASE_LIST})"
        )
    return files


def read_nifti(path: Path) -> tuple[np.ndarray, tuple[float, float, float]]:
    """(float64 voxel array, spacing from header pixdim[1:4]); DataError naming the file."""
    import nibabel
    from nibabel.openers import ImageOpener

    path = Path(path)
    try:
        image: Any = nibabel.load(str(path))
        # nibabel silently replaces zero pixdims by 1 on load; the file's own values decide.
        with ImageOpener(str(path)) as handle:
            header: Any = image.header_class.from_fileobj(handle, check=False)
        raw = np.asarray(header["pixdim"][1:4], dtype=np.float64)
        data = np.asarray(image.get_fdata())
    except DataError:
        raise
    except Exception as err:  # nibabel raises many types for a damaged or foreign file
        raise DataError(
            f"cannot read {path} as a NIfTI volume: {type(err).__name__}: {err}"
        ) from err
    if data.ndim != 3:
        raise DataError(f"{path} holds a {data.ndim}-D array {data.shape}: expected a 3-D volume")
    if raw.shape != (3,) or not np.all(np.isfinite(raw)) or np.any(raw <= 0):
        raise DataError(
            f"{path} has no usable voxel spacing (header pixdim[1:4] = {raw.tolist()}): expected"
            " three positive spacings in mm; rewrite the file with its real spacing in the header"
        )
    # The reference takes image.header["pixdim"][1:4] (float32 values) as the spacing.
    spacing = tuple(float(s) for s in np.asarray(image.header["pixdim"][1:4], np.float32))
    return data, (spacing[0], spacing[1], spacing[2])


def read_case(raw_dir: Path, case: str) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    """(float32 image, uint8 label, spacing) of a case, converted as the reference does."""
    imaging, segmentation = case_files(raw_dir, case)
    image, spacing = read_nifti(imaging)
    label, _ = read_nifti(segmentation)
    if image.shape != label.shape:
        raise DataError(
            f"KiTS19 case {case}: {imaging} is {image.shape} but {segmentation} is {label.shape};"
            " the segmentation must have the image's shape"
        )
    return image.astype(np.float32), label.astype(np.uint8), spacing


# -- preprocessing (SPEC §2.3) ------------------------------------------------------------------


def zoom_factors(spacing: Sequence[float]) -> tuple[float, float, float]:
    """scipy zoom factors original / target spacing, per axis (SPEC §2.3)."""
    z = np.asarray(spacing, np.float64) / np.asarray(TARGET_SPACING, np.float64)
    return float(z[0]), float(z[1]), float(z[2])


def resample(
    image: np.ndarray, label: np.ndarray, spacing: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Resample to TARGET_SPACING when the spacing differs (image order 1, label order 0)."""
    from scipy.ndimage import zoom

    if list(spacing) == list(TARGET_SPACING):  # the reference's `!=` on Python lists
        return image, label
    factors = zoom_factors(spacing)
    kw: dict[str, Any] = {"mode": "constant", "grid_mode": False}
    image = zoom(image, factors, order=1, cval=float(image.min()), **kw)
    label = zoom(label, factors, order=0, cval=int(label.min()), **kw)
    return image, label


def normalize_intensity(image: np.ndarray) -> np.ndarray:
    """clip to [-79, 304], then (x - 101) / 76.9, in the image's float32 (SPEC §2.3)."""
    out: np.ndarray = (np.clip(image, CLIP[0], CLIP[1]) - MEAN) / STD
    return out.astype(np.float32, copy=False)


def _halves(total: int) -> tuple[int, int]:
    return total // 2, total - total // 2


def pad_to_min_shape(image: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edge-pad every axis shorter than 128 symmetrically to 128 (3-D image and label)."""
    pads = [_halves(max(0, ROI - d)) for d in image.shape]
    return np.pad(image, pads, mode="edge"), np.pad(label, pads, mode="edge")


def adjust_shape(image: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per axis: crop `dim % 64` symmetrically when < 32, else pad to a multiple of 64 (SPEC §2.3).

    The image is padded with -2.2, the label with 0; a padded axis also reaches at least 128.
    """
    crop = [d % STRIDE if d % STRIDE < STRIDE // 2 else 0 for d in image.shape]
    window = tuple(slice(c // 2, d - (c - c // 2)) for c, d in zip(crop, image.shape, strict=True))
    image, label = image[window], label[window]
    pads = []
    for d in image.shape:
        extra = (STRIDE - d % STRIDE) % STRIDE
        if d + extra < ROI:
            extra += STRIDE
        pads.append(_halves(extra))
    image = np.pad(image, pads, mode="constant", constant_values=PADDING_VALUE)
    label = np.pad(label, pads, mode="constant", constant_values=0)
    return image, label


@dataclass(frozen=True)
class Preprocessed:
    image: np.ndarray  # float32 [1, D, H, W]
    label: np.ndarray  # uint8 [D, H, W]
    resampled_shape: tuple[int, ...]  # after step 2 (the zoom), before padding and cropping


def preprocess_arrays(
    image: np.ndarray, label: np.ndarray, spacing: Sequence[float]
) -> Preprocessed:
    """The whole SPEC §2.3 chain on one case's float32 image and uint8 label (3-D, same shape)."""
    if image.ndim != 3 or image.shape != label.shape:
        raise DataError(
            f"image {image.shape} and label {label.shape}: expected two 3-D volumes of one shape"
        )
    image, label = resample(image.astype(np.float32, copy=False), label, spacing)
    resampled_shape = tuple(int(d) for d in image.shape)
    image = normalize_intensity(image)
    image, label = pad_to_min_shape(image, label)
    image, label = adjust_shape(image, label)
    return Preprocessed(
        np.ascontiguousarray(image[None], dtype=np.float32),
        np.ascontiguousarray(label, dtype=np.uint8),
        resampled_shape,
    )


# -- the prepared cache -------------------------------------------------------------------------


@dataclass(frozen=True)
class VolumeManifest:
    dataset: str
    version: str
    source: str  # the resolved raw folder
    source_hash: str  # sha256 of the case list (names in order)
    source_files_hash: str  # sha256 over (path, size, mtime) of the raw NIfTI files
    cases: tuple[str, ...]
    shapes: tuple[tuple[int, int, int], ...]  # preprocessed (D, H, W) per sample
    sha256: tuple[tuple[str, str], ...]  # (image, label) .npy file hashes per sample
    created: str

    @property
    def count(self) -> int:
        return len(self.cases)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": MANIFEST_FORMAT,
            "dataset": self.dataset,
            "version": self.version,
            "source": self.source,
            "source_hash": self.source_hash,
            "source_files_hash": self.source_files_hash,
            "created": self.created,
            "cases": [
                {"case": c, "shape": list(s), "image_sha256": h[0], "label_sha256": h[1]}
                for c, s, h in zip(self.cases, self.shapes, self.sha256, strict=True)
            ],
        }

    @classmethod
    def read(cls, out_dir: Path) -> VolumeManifest | None:
        path = Path(out_dir) / MANIFEST
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
            if obj.get("format") != MANIFEST_FORMAT:
                return None
            cases = obj["cases"]
            return cls(
                str(obj["dataset"]),
                str(obj["version"]),
                str(obj["source"]),
                str(obj["source_hash"]),
                str(obj["source_files_hash"]),
                tuple(str(c["case"]) for c in cases),
                tuple((int(c["shape"][0]), int(c["shape"][1]), int(c["shape"][2])) for c in cases),
                tuple((str(c["image_sha256"]), str(c["label_sha256"])) for c in cases),
                str(obj["created"]),
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError) as err:
            log.warning("ignoring the unreadable manifest %s: %s", path, err)
            return None


def _files(case: str) -> tuple[str, str]:
    return f"{case}_image.npy", f"{case}_label.npy"


class PreparedVolumes:
    """A complete KiTS19 cache, opened read-only: sample i is case(i), memory-mapped on access."""

    def __init__(self, path: Path, manifest: VolumeManifest) -> None:
        self.path = Path(path)
        self.manifest = manifest
        self.count = manifest.count
        for i, case in enumerate(manifest.cases):
            for file, shape, dtype in zip(
                _files(case),
                ((1, *manifest.shapes[i]), manifest.shapes[i]),
                (np.float32, np.uint8),
                strict=True,
            ):
                array = self._load(file)
                if array.shape != shape or array.dtype != dtype:
                    raise DataError(
                        f"{self.path / file} holds {array.dtype} {array.shape}, the manifest says"
                        f" {np.dtype(dtype).name} {shape}; delete {self.path} and prepare again"
                    )

    def __len__(self) -> int:
        return self.count

    def _load(self, file: str) -> np.ndarray:
        try:
            array: np.ndarray = np.load(self.path / file, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as err:
            raise DataError(
                f"{self.path / file} cannot be read ({err}); delete {self.path} and prepare the"
                " data set again"
            ) from err
        return array

    def _index(self, i: int) -> int:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i < self.count:
            raise DataError(f"sample index {i!r} is outside 0..{self.count - 1} of {self.path}")
        return int(i)

    def case(self, i: int) -> str:
        return self.manifest.cases[self._index(i)]

    def shape(self, i: int) -> tuple[int, int, int]:
        """The preprocessed (D, H, W) of sample i: the payload has D*H*W uint8 labels."""
        return self.manifest.shapes[self._index(i)]

    def image(self, i: int) -> np.ndarray:
        """float32 [1, D, H, W], memory-mapped read-only."""
        return self._load(_files(self.case(i))[0])

    def label(self, i: int) -> np.ndarray:
        """uint8 [D, H, W]: the reshaped ground-truth segmentation, memory-mapped read-only."""
        return self._load(_files(self.case(i))[1])

    def sample(self, i: int) -> list[np.ndarray]:
        return [np.array(self.image(i), order="C")]


def _fingerprint(raw_dir: Path, cases: Sequence[str]) -> tuple[str, str]:
    names = hashlib.sha256("\n".join(cases).encode()).hexdigest()
    digest = hashlib.sha256()
    for case in cases:
        for path in case_files(raw_dir, case):
            st = path.stat()
            digest.update(f"{case}/{path.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return names, digest.hexdigest()


def _save_npy(path: Path, array: np.ndarray) -> str:
    tmp = path.parent / f".{path.name}.partial"
    with open(tmp, "wb") as handle:
        np.save(handle, array, allow_pickle=False)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return sha256_file(path)


class KiTS19:
    """The KiTS19 inference set (the `Dataset` seam of DESIGN.md §3)."""

    name = "kits19-eval"
    input_name = "input"  # SPEC §2.3: the model's input

    def default_cache_dir(self, raw_dir: Path) -> Path:
        return prepared_dir("kits19", raw_dir)

    def prepare(
        self, raw_dir: Path, out_dir: Path | None = None, *, show_progress: bool = True
    ) -> PreparedVolumes:
        """Preprocess every case of raw_dir into out_dir (reused when complete and unchanged)."""
        raw_dir = Path(raw_dir)
        return self._prepare(raw_dir, read_case_list(raw_dir), out_dir, show_progress)

    def prepare_calibration(
        self, raw_dir: Path, out_dir: Path | None = None, *, show_progress: bool = True
    ) -> PreparedVolumes:
        """The 20 official calibration cases (training cases, SPEC §2.3), preprocessed alike."""
        raw_dir = Path(raw_dir)
        out = out_dir if out_dir is not None else self.default_cache_dir(raw_dir) / "calibration"
        return self._prepare(raw_dir, list(CALIBRATION_CASES), out, show_progress)

    def _prepare(
        self, raw_dir: Path, cases: list[str], out_dir: Path | None, show_progress: bool
    ) -> PreparedVolumes:
        out_dir = Path(out_dir) if out_dir is not None else self.default_cache_dir(raw_dir)
        names_hash, files_hash = _fingerprint(raw_dir, cases)
        old = VolumeManifest.read(out_dir)
        if (
            old is not None
            and old.version == PREPROCESS_VERSION
            and old.source == str(raw_dir.resolve())
            and old.source_hash == names_hash
            and old.source_files_hash == files_hash
        ):
            try:
                log.info("reusing the prepared %s volumes in %s", self.name, out_dir)
                return PreparedVolumes(out_dir, old)
            except DataError as err:
                log.warning("rebuilding %s: %s", out_dir, err)
        out_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            (out_dir / MANIFEST).unlink()  # from here on the folder is not a complete cache
        progress = Progress(f"prepare {self.name}", len(cases), "cases") if show_progress else None
        shapes: list[tuple[int, int, int]] = []
        hashes: list[tuple[str, str]] = []
        for n, case in enumerate(cases):
            image, label, spacing = read_case(raw_dir, case)
            pre = preprocess_arrays(image, label, spacing)
            image_file, label_file = _files(case)
            hashes.append(
                (
                    _save_npy(out_dir / image_file, pre.image),
                    _save_npy(out_dir / label_file, pre.label),
                )
            )
            d, h, w = pre.label.shape
            shapes.append((d, h, w))
            if progress is not None:
                progress.update(n + 1)
        if progress is not None:
            progress.close()
        manifest = VolumeManifest(
            self.name,
            PREPROCESS_VERSION,
            str(raw_dir.resolve()),
            names_hash,
            files_hash,
            tuple(cases),
            tuple(shapes),
            tuple(hashes),
            datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
        atomic_write_json(out_dir / MANIFEST, manifest.to_json())
        return PreparedVolumes(out_dir, manifest)

    def ground_truth(self, raw_dir: Path) -> PreparedVolumes:
        """The prepared cache of raw_dir (made when missing): its labels are the metric's truth."""
        return self.prepare(Path(raw_dir), show_progress=False)

    def calibration_indices(
        self, count: int, size: int = len(CALIBRATION_CASES), raw_dir: Path | None = None
    ) -> list[int]:
        """Sorted sample indices to calibrate on: all when count <= size, else a seeded subset.

        The official calibration cases are training cases outside the inference samples: use
        `prepare_calibration(raw_dir)` to get them as volumes. `raw_dir` is accepted for the
        seam's signature; sample indices do not depend on it.
        """
        return seeded_subset(count, size, 0)

    def synthesize(
        self,
        raw_dir: Path,
        count: int,
        seed: int,
        model_fn: Callable[[np.ndarray], np.ndarray],
        show_progress: bool = True,
    ) -> dict[str, Any]:
        """Write a synthetic set in the raw layout whose labels are `model_fn`'s predictions.

        `model_fn(volume float32 [1,D,H,W]) -> uint8 [D,H,W]` is the FP32 model's full
        sliding-window prediction. Returns {"fp32_dice": mean DICE of model_fn against the
        prepared labels, ...} (see data/kits19_synthetic.py for how labels are made).
        """
        from mlperf_trt.data.kits19_synthetic import write_synthetic_set

        return write_synthetic_set(Path(raw_dir), count, seed, model_fn, show_progress)
