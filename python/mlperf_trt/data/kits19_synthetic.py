"""Synthetic KiTS19-format sets: small CT-like NIfTI volumes labelled by the FP32 model.

Each case is a phantom drawn in millimetres and sampled at the case's voxel spacing: air outside
an elliptic body, a subcutaneous fat rim, soft tissue (+40 HU with a smooth variation), two
contrast-enhanced kidney ellipsoids (+180..230 HU) and one or two tumour spheres on a kidney's
surface (+100..130 HU), plus Gaussian noise, stored as int16 HU like the real scans. Cases cycle
through three geometries (spacing written to the header, (z, y, x) in mm):

- i % 3 == 0: exactly the target spacing 1.6 / 1.2 / 1.2 and 69..125 slices: the z axis is
  shorter than 128 and is edge-padded by the preprocessing;
- i % 3 == 1: thick slices, 2.5..3.0 mm, in-plane 0.70..0.90 mm;
- i % 3 == 2: thin slices, 0.70..1.00 mm, in-plane 0.75..0.95 mm.

Labels: the image is written, read back and preprocessed (SPEC §2.3); `model_fn` (the FP32
model's sliding-window prediction) labels the preprocessed volume; the prediction is mapped back
to the raw geometry by undoing the padding and cropping and, for resampled cases, a
nearest-neighbour zoom back to the raw shape; that is segmentation.nii.gz. For target-spacing
cases the preprocessed label then equals the prediction wherever the preprocessing did not pad
(the padded rim is the edge label or 0 by the rule); for resampled cases the two nearest-neighbour
resamplings move a few boundary voxels. `fp32_dice` measures exactly this: the FP32 prediction
scored against the prepared labels.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mlperf_trt.data.kits19 import (
    CASE_LIST,
    IMAGING,
    ROI,
    SEGMENTATION,
    STRIDE,
    TARGET_SPACING,
    preprocess_arrays,
    read_nifti,
)
from mlperf_trt.data.synthetic_target import begin_synthetic
from mlperf_trt.errors import DataError
from mlperf_trt.progress import Progress
from mlperf_trt.results.layout import atomic_write_json, atomic_write_text

README = "README.txt"
_README_MARK = "Synthetic KiTS19-format set written by mlperf_trt"

ModelFn = Callable[[np.ndarray], np.ndarray]


def _geometry(
    i: int, rng: np.random.Generator
) -> tuple[tuple[float, float, float], tuple[int, ...]]:
    """(spacing (z, y, x) in mm, raw shape) of case i (module docstring)."""
    kind = i % 3
    fov = (rng.uniform(110.0, 200.0), rng.uniform(150.0, 200.0), rng.uniform(160.0, 220.0))
    if kind == 0:
        spacing = TARGET_SPACING
    elif kind == 1:
        spacing = (rng.uniform(2.5, 3.0), *(rng.uniform(0.70, 0.90),) * 2)
    else:
        spacing = (rng.uniform(0.70, 1.00), *(rng.uniform(0.75, 0.95),) * 2)
    # float32 as the NIfTI header stores it
    sp = tuple(float(np.float32(s)) for s in spacing)
    shape = tuple(max(8, int(round(f / s))) for f, s in zip(fov, sp, strict=True))
    if kind == 0:  # keep z under 128 slices at 1.6 mm
        shape = (min(shape[0], 125), *shape[1:])
    return (sp[0], sp[1], sp[2]), shape


def _phantom(
    shape: tuple[int, ...], spacing: tuple[float, float, float], rng: np.random.Generator
) -> np.ndarray:
    """int16 HU volume (module docstring)."""
    d, h, w = shape
    z = ((np.arange(d) - (d - 1) / 2) * spacing[0]).reshape(d, 1, 1)
    y = ((np.arange(h) - (h - 1) / 2) * spacing[1]).reshape(1, h, 1)
    x = ((np.arange(w) - (w - 1) / 2) * spacing[2]).reshape(1, 1, w)
    half = (d * spacing[0] / 2, h * spacing[1] / 2, w * spacing[2] / 2)
    ay, ax = rng.uniform(0.78, 0.9) * half[1], rng.uniform(0.82, 0.94) * half[2]
    hu = np.full(shape, -1000.0, np.float32)
    body = np.broadcast_to((y / ay) ** 2 + (x / ax) ** 2 <= 1.0, shape)
    inner = np.broadcast_to((y / (0.85 * ay)) ** 2 + (x / (0.85 * ax)) ** 2 <= 1.0, shape)
    hu[body] = -100.0
    phase = rng.uniform(0, 2 * np.pi, 3)
    smooth = 6.0 * (
        np.cos(z / 23.0 + phase[0]) + np.cos(y / 31.0 + phase[1]) * np.cos(x / 27.0 + phase[2])
    )
    hu[inner] = (40.0 + np.broadcast_to(smooth, shape))[inner]
    kidneys = []
    for side in (-1.0, 1.0):
        centre = (
            rng.uniform(-0.2, 0.2) * half[0],
            rng.uniform(0.05, 0.25) * ay,
            side * rng.uniform(0.38, 0.5) * ax,
        )
        axes = (rng.uniform(22.0, 35.0), rng.uniform(16.0, 24.0), rng.uniform(13.0, 19.0))
        inside = ((z - centre[0]) / axes[0]) ** 2 + ((y - centre[1]) / axes[1]) ** 2
        mask = inside + ((x - centre[2]) / axes[2]) ** 2 <= 1.0
        hu[mask] = rng.uniform(180.0, 230.0)
        kidneys.append((centre, axes))
    for _ in range(int(rng.integers(1, 3))):
        centre, axes = kidneys[int(rng.integers(0, 2))]
        direction = rng.standard_normal(3)
        direction /= np.linalg.norm(direction)
        at = [c + a * u for c, a, u in zip(centre, axes, direction, strict=True)]
        radius = rng.uniform(8.0, 18.0)
        mask = (z - at[0]) ** 2 + (y - at[1]) ** 2 + (x - at[2]) ** 2 <= radius**2
        hu[mask & inner] = rng.uniform(100.0, 130.0)
    hu += rng.normal(0.0, rng.uniform(8.0, 15.0), size=shape).astype(np.float32)
    out: np.ndarray = np.clip(np.round(hu), -1024, 3071).astype(np.int16)
    return out


def _to_raw_geometry(
    pred: np.ndarray, resampled_shape: tuple[int, ...], raw_shape: tuple[int, ...]
) -> np.ndarray:
    """Undo the SPEC §2.3 padding and cropping of `pred`, then zoom back to the raw shape."""
    from scipy.ndimage import zoom

    out = pred
    for axis, r in enumerate(resampled_shape):
        r1 = max(r, ROI)  # after the edge padding to 128
        crop = r1 % STRIDE if r1 % STRIDE < STRIDE // 2 else 0
        r2 = r1 - crop
        extra = (STRIDE - r2 % STRIDE) % STRIDE
        if r2 + extra < ROI:
            extra += STRIDE
        take = np.take(out, np.arange(extra // 2, extra // 2 + r2), axis=axis)
        full_shape = list(take.shape)
        full_shape[axis] = r1
        full = np.zeros(full_shape, np.uint8)  # the cropped margins: dropped again by the rule
        index: list[Any] = [slice(None)] * 3
        index[axis] = slice(crop // 2, crop // 2 + r2)
        full[tuple(index)] = take
        pad = r1 - r
        out = np.take(full, np.arange(pad // 2, pad // 2 + r), axis=axis)
    if out.shape != tuple(raw_shape):
        factors = [raw / res for raw, res in zip(raw_shape, out.shape, strict=True)]
        out = zoom(out, factors, order=0, mode="nearest", grid_mode=False)
        if out.shape != tuple(raw_shape):
            raise DataError(f"label mapped back to {out.shape}, expected {tuple(raw_shape)}")
    return np.ascontiguousarray(out, dtype=np.uint8)


def _dice(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(kidney, tumour) DICE with the reference's 1e-6 smoothing (SPEC §2.3)."""
    out = []
    for cls in (1, 2):
        p, t = pred == cls, truth == cls
        inter = float(np.count_nonzero(p & t))
        out.append((2.0 * inter + 1e-6) / (np.count_nonzero(p) + np.count_nonzero(t) + 1e-6))
    return out[0], out[1]


def _save_nifti(path: Path, array: np.ndarray, spacing: tuple[float, float, float]) -> None:
    import nibabel

    nifti_image: Any = nibabel.Nifti1Image  # nibabel is untyped
    image = nifti_image(array, np.diag([*spacing, 1.0]))
    image.header.set_zooms(spacing)
    tmp = path.parent / f".{path.name}.partial.nii.gz"
    nibabel.save(image, str(tmp))
    tmp.replace(path)


def write_synthetic_set(
    raw_dir: Path, count: int, seed: int, model_fn: ModelFn, show_progress: bool = True
) -> dict[str, Any]:
    """Write `count` cases plus inference_cases.json (last) into raw_dir; see the module doc."""
    begin_synthetic(
        raw_dir, mark=_README_MARK, list_file=CASE_LIST, count=count, seed=seed, unit="cases"
    )
    cases = [f"case_{i:05d}" for i in range(count)]
    for stale in raw_dir.glob("case_*"):
        if stale.is_dir() and stale.name not in cases:
            shutil.rmtree(stale)
    progress = Progress("synthesize kits19", count, "cases") if show_progress else None
    per_case: list[dict[str, Any]] = []
    for i, case in enumerate(cases):
        rng = np.random.default_rng([seed, i])
        spacing, shape = _geometry(i, rng)
        folder = raw_dir / case
        folder.mkdir(exist_ok=True)
        _save_nifti(folder / IMAGING, _phantom(shape, spacing, rng), spacing)
        image, read_spacing = read_nifti(folder / IMAGING)
        blank = np.zeros(image.shape, np.uint8)
        pre = preprocess_arrays(image.astype(np.float32), blank, read_spacing)
        pred = np.asarray(model_fn(pre.image))
        if pred.shape != pre.label.shape or pred.dtype != np.uint8:
            raise DataError(
                f"model_fn returned {pred.dtype} {pred.shape} for a volume of shape"
                f" {pre.image.shape}: expected uint8 {pre.label.shape} labels (the sliding-window"
                " argmax)"
            )
        label = _to_raw_geometry(pred, pre.resampled_shape, image.shape)
        _save_nifti(folder / SEGMENTATION, label, spacing)
        truth = preprocess_arrays(image.astype(np.float32), label, read_spacing).label
        kidney, tumour = _dice(pred, truth)
        per_case.append(
            {
                "case": case,
                "spacing_mm": [round(s, 4) for s in spacing],
                "raw_shape": list(shape),
                "preprocessed_shape": list(pred.shape),
                "kidney_voxels": int(np.count_nonzero(pred == 1)),
                "tumor_voxels": int(np.count_nonzero(pred == 2)),
                "kidney": kidney,
                "tumor": tumour,
            }
        )
        if progress is not None:
            progress.update(i + 1)
    if progress is not None:
        progress.close()
    kidney_mean = float(np.mean([c["kidney"] for c in per_case]))
    tumour_mean = float(np.mean([c["tumor"] for c in per_case]))
    composite = float(np.mean([(c["kidney"] + c["tumor"]) / 2.0 for c in per_case]))
    fn_name = getattr(model_fn, "__qualname__", type(model_fn).__name__)
    atomic_write_text(
        raw_dir / README,
        f"{_README_MARK}.\n\n{count} CT-like phantoms (seed {seed}), labelled by `{fn_name}`"
        " (the FP32 model's sliding-window prediction, mapped back to the raw geometry).\n"
        "See mlperf_trt/data/kits19_synthetic.py and docs/unet3d.md.\n",
    )
    atomic_write_json(raw_dir / "synthetic.json", {"seed": seed, "cases": per_case})
    atomic_write_text(raw_dir / CASE_LIST, json.dumps(cases, indent=2) + "\n")
    return {
        "fp32_dice": composite,
        "kidney": kidney_mean,
        "tumor": tumour_mean,
        "cases": count,
        "labels": "the FP32 model's sliding-window prediction, mapped back to the raw geometry",
        "per_case": per_case,
    }
