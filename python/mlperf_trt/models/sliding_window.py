"""The numpy reference of 3D-UNet's sliding-window inference (SPEC §2.3).

This is the definition the C++ kernels (window extraction, gaussian-weighted accumulation, argmax;
CPU and CUDA twins) are tested against. It restates the MLPerf reference (`inference_utils.py`
and `base_SUT.py` of vision/medical_imaging/3d-unet-kits19):

- windows of ROI = 128 voxels per axis with overlap 0.5, i.e. stride 64; along an axis of size
  `dim` the origins are 0, 64, ..., 64 * ((dim - 128) // 64);
- importance weights: a 1-D gaussian of 128 points with std 0.125 * 128 = 16
  (scipy.signal.windows.gaussian), its 3-D outer product (g[i] * g[j]) * g[k] in float64, the
  cube root, divided by its maximum, then cast to float32;
- per window, in origin order: `result[:, win] += logits * patch` and `norm[win] += patch`
  (float32, the product rounded to float32 before the addition);
- at the end `result / norm` (float32) and the argmax over the 3 channels (the first maximum wins,
  as numpy's argmax), cast to uint8.

Accumulation order, which the C++ twins must follow to match to float32 rounding: windows in
z-major order (z outer, then y, then x: the nesting of the reference's three loops), each window
added completely before the next; batching windows through the model changes nothing because the
accumulation still runs window by window in that order. The reference keeps `norm` per channel;
every channel receives the same additions in the same order, so one [D,H,W] map is identical.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy.signal import windows

from mlperf_trt.errors import DataError

__all__ = [
    "NUM_CLASSES",
    "ROI",
    "SIGMA_SCALE",
    "STRIDE",
    "accumulate_window",
    "gaussian_importance",
    "sliding_window_reference",
    "window_origins",
]

ROI = 128  # SPEC §2.3: 128^3 windows
STRIDE = 64  # SPEC §2.3: overlap 0.5 -> int(128 * (1 - 0.5))
SIGMA_SCALE = 0.125  # SPEC §2.3: std = 0.125 * ROI
NUM_CLASSES = 3  # SPEC §2.3: background, kidney, tumour logits

RunBatch = Callable[[np.ndarray], np.ndarray]


def gaussian_importance(roi: int = ROI, sigma_scale: float = SIGMA_SCALE) -> np.ndarray:
    """float32 [roi, roi, roi]: the cube root of the 3-D gaussian, normalised to max 1 (SPEC §2.3).

    Computed in float64 and cast once at the end, as the reference's `gaussian_kernel(...)
    .astype(float32)`.
    """
    if isinstance(roi, bool) or not isinstance(roi, int) or roi < 1:
        raise DataError(f"roi {roi!r} is not a positive integer: expected the window edge (128)")
    if not sigma_scale > 0:
        raise DataError(f"sigma_scale {sigma_scale!r} must be > 0 (SPEC §2.3 uses 0.125)")
    g = windows.gaussian(roi, std=sigma_scale * roi)
    cube = np.outer(np.outer(g, g), g).reshape(roi, roi, roi)
    cube = np.cbrt(cube)
    cube /= cube.max()
    out: np.ndarray = cube.astype(np.float32)
    return out


def window_origins(
    shape: Sequence[int], roi: int = ROI, stride: int = STRIDE
) -> list[tuple[int, int, int]]:
    """(z, y, x) window origins over a volume of spatial `shape` (D, H, W), z-major (SPEC §2.3).

    Per axis: 0, stride, ..., stride * ((dim - roi) // stride). DataError when an axis is shorter
    than the window (the preprocessing pads every axis to >= 128).
    """
    dims = tuple(int(d) for d in shape)
    if len(dims) != 3:
        raise DataError(f"volume shape {dims} is not 3-D: expected (D, H, W)")
    short = [d for d in dims if d < roi]
    if short:
        raise DataError(
            f"volume shape {dims} has an axis shorter than the {roi}-voxel window: preprocess the"
            " volume first (SPEC §2.3 pads every axis to at least 128)"
        )
    axes = [range(0, stride * ((d - roi) // stride) + 1, stride) for d in dims]
    return [(z, y, x) for z in axes[0] for y in axes[1] for x in axes[2]]


def _check_volume(volume: np.ndarray) -> tuple[int, int, int]:
    if not isinstance(volume, np.ndarray) or volume.dtype != np.float32 or volume.ndim != 4:
        what = f"{volume.dtype} {volume.shape}" if isinstance(volume, np.ndarray) else type(volume)
        raise DataError(f"expected a float32 [1,D,H,W] preprocessed volume, got {what}")
    if volume.shape[0] != 1:
        raise DataError(f"volume has {volume.shape[0]} channels: expected 1 ([1,D,H,W])")
    d, h, w = (int(x) for x in volume.shape[1:])
    bad = [x for x in (d, h, w) if x < ROI or x % STRIDE]
    if bad:
        raise DataError(
            f"volume shape {(d, h, w)}: every axis must be >= {ROI} and a multiple of {STRIDE}"
            " (SPEC §2.3 preprocessing makes it so); preprocess the volume first"
        )
    return d, h, w


def accumulate_window(
    result: np.ndarray,
    norm: np.ndarray,
    logits: np.ndarray,
    patch: np.ndarray,
    origin: tuple[int, int, int],
) -> None:
    """Add one window: result[:, win] += logits * patch; norm[win] += patch (float32, in place)."""
    z, y, x = origin
    win = (slice(z, z + ROI), slice(y, y + ROI), slice(x, x + ROI))
    channels_win = (slice(None), *win)
    result[channels_win] += logits * patch
    norm[win] += patch


def sliding_window_reference(volume: np.ndarray, run_batch: RunBatch, batch: int = 2) -> np.ndarray:
    """uint8 [D,H,W] labels of a preprocessed float32 [1,D,H,W] volume (SPEC §2.3).

    `run_batch` maps float32 [k,1,128,128,128] windows (k <= batch) to float32 [k,3,128,128,128]
    logits (the model). Windows go to it in origin order; see the module docstring for the
    accumulation order.
    """
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise DataError(f"batch {batch!r} is not a positive integer")
    d, h, w = _check_volume(volume)
    patch = gaussian_importance()
    result = np.zeros((NUM_CLASSES, d, h, w), np.float32)
    norm = np.zeros((d, h, w), np.float32)
    origins = window_origins((d, h, w))
    for start in range(0, len(origins), batch):
        chunk = origins[start : start + batch]
        windows_in = np.stack(
            [volume[:, z : z + ROI, y : y + ROI, x : x + ROI] for z, y, x in chunk]
        )
        logits = np.asarray(run_batch(np.ascontiguousarray(windows_in)))
        expected = (len(chunk), NUM_CLASSES, ROI, ROI, ROI)
        if logits.shape != expected or logits.dtype != np.float32:
            raise DataError(
                f"run_batch returned {logits.dtype} {logits.shape} for {len(chunk)} windows:"
                f" expected float32 {list(expected)} (the model's `output` logits)"
            )
        for origin, window_logits in zip(chunk, logits, strict=True):
            accumulate_window(result, norm, window_logits, patch, origin)
    result /= norm
    labels: np.ndarray = np.argmax(result, axis=0).astype(np.uint8)
    return labels
