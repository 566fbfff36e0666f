"""3D-UNet sliding window (SPEC §2.3): the C++ kernels against plain numpy written here from the
SPEC (scipy's gaussian window, slicing, `result[:, win] += logits * patch` in window order,
argmax); CUDA twins against the CPU kernels (gpu)."""

from __future__ import annotations

import importlib
import itertools

import numpy as np
import pytest
from scipy.signal import windows as scipy_windows

from mlperf_trt import _C
from mlperf_trt.errors import DataError, KernelError

K = _C.kernels


# --- references ---------------------------------------------------------------------------------
def ref_gaussian(roi: int, sigma_scale: float) -> np.ndarray:
    g = scipy_windows.gaussian(roi, std=sigma_scale * roi)
    cube = np.cbrt(np.outer(np.outer(g, g), g).reshape(roi, roi, roi))
    return (cube / cube.max()).astype(np.float32)


def ref_origins(shape: tuple[int, int, int], roi: int, stride: int) -> np.ndarray:
    axes = [range(0, stride * ((d - roi) // stride) + 1, stride) for d in shape]
    return np.array(list(itertools.product(*axes)), np.int64).reshape(-1, 3)


def ref_accumulate(
    logits: np.ndarray, origins: np.ndarray, patch: np.ndarray, result: np.ndarray, norm: np.ndarray
) -> None:
    roi = patch.shape[0]
    for (z, y, x), window in zip(origins, logits, strict=True):
        win = (slice(z, z + roi), slice(y, y + roi), slice(x, x + roi))
        result[(slice(None), *win)] += window * patch
        norm[win] += patch


def ref_finalize(result: np.ndarray, norm: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.argmax(result / norm, axis=0).astype(np.uint8)


# --- gaussian and origins -----------------------------------------------------------------------
@pytest.mark.parametrize(("roi", "sigma_scale"), [(128, 0.125), (17, 0.125), (8, 0.3), (1, 0.5)])
def test_gaussian_importance_matches_scipy(roi: int, sigma_scale: float) -> None:
    patch = K.gaussian_importance(roi, sigma_scale)
    want = ref_gaussian(roi, sigma_scale)
    assert patch.shape == (roi, roi, roi) and patch.dtype == np.float32
    np.testing.assert_allclose(patch, want, rtol=1.2e-7, atol=0)  # at most one float32 ulp
    assert patch.max() == 1.0
    np.testing.assert_array_equal(patch, patch[::-1, :, :])
    np.testing.assert_array_equal(patch, patch.transpose(2, 0, 1))


def test_gaussian_importance_threads_agree_and_bad_input() -> None:
    np.testing.assert_array_equal(
        K.gaussian_importance(33, 0.125, threads=1), K.gaussian_importance(33, 0.125, threads=3)
    )
    with pytest.raises(KernelError, match="sigma_scale"):
        K.gaussian_importance(16, 0.0)
    with pytest.raises(KernelError, match="roi"):
        K.gaussian_importance(0)


@pytest.mark.parametrize(
    "shape", [(128, 128, 128), (192, 128, 256), (256, 192, 128), (130, 200, 129), (320, 128, 191)]
)
def test_window_origins_match_the_formula(shape: tuple[int, int, int]) -> None:
    origins = K.window_origins(*shape)
    np.testing.assert_array_equal(origins, ref_origins(shape, 128, 64))
    assert origins.dtype == np.int64


def test_window_origins_small_roi_and_short_axis() -> None:
    np.testing.assert_array_equal(
        K.window_origins(9, 12, 5, roi=5, stride=3), ref_origins((9, 12, 5), 5, 3)
    )
    with pytest.raises(DataError, match="height 100 is below the window 128"):
        K.window_origins(128, 100, 128)


# --- extract ------------------------------------------------------------------------------------
def test_extract_windows_into_a_buffer() -> None:
    rng = np.random.default_rng(0)
    volume = rng.standard_normal((1, 13, 10, 11)).astype(np.float32)
    roi = 6
    origins = np.array([[0, 0, 0], [7, 4, 5], [3, 2, 1], [7, 0, 5]], np.int64)  # borders included
    out = np.full((4, 1, roi, roi, roi), np.nan, np.float32)
    got = K.extract_windows(volume, origins, out=out, roi=roi, threads=2)
    assert got is out or np.shares_memory(got, out)
    for w, (z, y, x) in enumerate(origins):
        np.testing.assert_array_equal(out[w, 0], volume[0, z : z + roi, y : y + roi, x : x + roi])
    np.testing.assert_array_equal(K.extract_windows(volume[0], origins, roi=roi), out)


def test_extract_windows_rejects_bad_origins_and_buffers() -> None:
    volume = np.zeros((1, 8, 8, 8), np.float32)
    with pytest.raises(DataError, match=r"window 1: origin \(3, 0, 0\)"):
        K.extract_windows(volume, np.array([[0, 0, 0], [3, 0, 0]], np.int64), roi=6)
    with pytest.raises(DataError, match="outside the volume"):
        K.extract_windows(volume, np.array([[0, -1, 0]], np.int64), roi=6)
    with pytest.raises(KernelError, match="out must have shape"):
        K.extract_windows(
            volume, np.zeros((1, 3), np.int64), out=np.zeros((2, 1, 6, 6, 6), np.float32), roi=6
        )
    with pytest.raises(KernelError, match=r"origins must be int64 \[k, 3\]"):
        K.extract_windows(volume, np.zeros((1, 2), np.int64), roi=6)
    with pytest.raises(KernelError, match="int64"):
        K.extract_windows(volume, np.zeros((1, 3), np.int32), roi=6)


# --- accumulate and finalize --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("shape", "roi", "stride"), [((16, 24, 32), 16, 8), ((10, 7, 13), 5, 3), ((8, 8, 8), 8, 4)]
)
def test_accumulate_and_finalize_match_reference_bit_for_bit(
    shape: tuple[int, int, int], roi: int, stride: int
) -> None:
    rng = np.random.default_rng(sum(shape))
    origins = K.window_origins(*shape, roi=roi, stride=stride)
    patch = K.gaussian_importance(roi, 0.125)
    logits = rng.standard_normal((len(origins), 3, roi, roi, roi)).astype(np.float32)
    result = np.zeros((3, *shape), np.float32)
    norm = np.zeros(shape, np.float32)
    K.accumulate_windows(logits, origins, patch, result, norm, threads=2)
    want_result = np.zeros_like(result)
    want_norm = np.zeros_like(norm)
    ref_accumulate(logits, origins, patch, want_result, want_norm)
    np.testing.assert_array_equal(result, want_result)
    np.testing.assert_array_equal(norm, want_norm)
    np.testing.assert_array_equal(K.finalize_argmax(result, norm), ref_finalize(result, norm))


def test_full_size_volumes_with_axes_of_128_192_256() -> None:
    """The real window (128^3, stride 64) over a 192 x 128 x 256 volume: 6 windows."""
    rng = np.random.default_rng(1)
    shape = (192, 128, 256)
    volume = rng.standard_normal((1, *shape)).astype(np.float32)
    origins = K.window_origins(*shape)
    assert len(origins) == 2 * 1 * 3
    windows = K.extract_windows(volume, origins)
    # A stand-in model: 3 logits per voxel from the input voxel (so the windows must be right).
    logits = np.concatenate([windows, -windows, np.abs(windows) - 0.5], axis=1)
    patch = K.gaussian_importance()
    result = np.zeros((3, *shape), np.float32)
    norm = np.zeros(shape, np.float32)
    K.accumulate_windows(logits, origins, patch, result, norm)
    want_result, want_norm = np.zeros_like(result), np.zeros_like(norm)
    ref_accumulate(logits, origins, patch, want_result, want_norm)
    np.testing.assert_array_equal(result, want_result)
    np.testing.assert_array_equal(norm, want_norm)
    labels = K.finalize_argmax(result, norm)
    assert labels.dtype == np.uint8 and labels.shape == shape
    np.testing.assert_array_equal(labels, ref_finalize(result, norm))


def test_accumulate_in_batches_equals_one_call_and_threads_agree() -> None:
    rng = np.random.default_rng(2)
    shape, roi = (12, 12, 20), 8
    origins = K.window_origins(*shape, roi=roi, stride=4)
    patch = K.gaussian_importance(roi, 0.125)
    logits = rng.standard_normal((len(origins), 2, roi, roi, roi)).astype(np.float32)
    one = [np.zeros((2, *shape), np.float32), np.zeros(shape, np.float32)]
    K.accumulate_windows(logits, origins, patch, *one, threads=1)
    many = [np.zeros((2, *shape), np.float32), np.zeros((1, *shape), np.float32)]
    for start in range(0, len(origins), 3):
        K.accumulate_windows(
            logits[start : start + 3], origins[start : start + 3], patch, *many, threads=2
        )
    np.testing.assert_array_equal(many[0], one[0])
    np.testing.assert_array_equal(many[1][0], one[1])


def test_finalize_ties_nan_and_uncovered_voxels() -> None:
    result = np.array([[1, 2, 0, np.nan, 0], [1, 2, 5, 1, 0], [0, 2, 5, 2, 0]], np.float32)
    norm = np.array([1, 1, 2, 1, 0], np.float32)  # the last voxel: no window covered it
    np.testing.assert_array_equal(
        K.finalize_argmax(result.reshape(3, 1, 1, 5), norm.reshape(1, 1, 5)), [[[0, 0, 1, 2, 0]]]
    )


@pytest.mark.parametrize("channels", [1, 2, 3, 5])
def test_finalize_any_channel_count_matches_numpy(channels: int) -> None:
    rng = np.random.default_rng(channels)
    result = rng.standard_normal((channels, 5, 6, 7)).astype(np.float32)
    result[:, 0, 0, :3] = 1.0  # ties: the first channel wins
    norm = rng.uniform(0.1, 2.0, (5, 6, 7)).astype(np.float32)
    out = np.full((5, 6, 7), 99, np.uint8)
    assert K.finalize_argmax(result, norm, out=out) is not None
    np.testing.assert_array_equal(out, ref_finalize(result, norm))


def test_accumulate_rejects_bad_shapes() -> None:
    patch = K.gaussian_importance(4, 0.125)
    origins = np.zeros((2, 3), np.int64)
    result = np.zeros((3, 6, 6, 6), np.float32)
    norm = np.zeros((6, 6, 6), np.float32)
    with pytest.raises(KernelError, match="k = 2 windows"):
        K.accumulate_windows(np.zeros((1, 3, 4, 4, 4), np.float32), origins, patch, result, norm)
    logits = np.zeros((2, 3, 4, 4, 4), np.float32)
    with pytest.raises(KernelError, match=r"result must have shape \(3, 6, 6, 6\)"):
        K.accumulate_windows(logits, origins, patch, result[:2].copy(), norm)
    with pytest.raises(KernelError, match="patch must hold"):
        K.accumulate_windows(logits, origins, patch[:2].copy(), result, norm)
    with pytest.raises(DataError, match="outside the volume"):
        K.accumulate_windows(logits, origins + 3, patch, result, norm)
    with pytest.raises(KernelError, match="read-only"):
        norm.flags.writeable = False
        K.accumulate_windows(logits, origins, patch, result, norm)


# --- the teammates' numpy reference (mlperf_trt.models.sliding_window) -------------------------
def test_matches_models_sliding_window_reference() -> None:
    try:
        ref = importlib.import_module("mlperf_trt.models.sliding_window")
    except ImportError:
        pytest.skip("mlperf_trt.models.sliding_window is not there yet")
    shape = (128, 192, 128)
    np.testing.assert_array_equal(K.window_origins(*shape), np.array(ref.window_origins(shape)))
    patch = K.gaussian_importance()
    np.testing.assert_allclose(patch, ref.gaussian_importance(), rtol=1.2e-7, atol=0)
    rng = np.random.default_rng(4)
    volume = rng.standard_normal((1, *shape)).astype(np.float32)

    def model(windows: np.ndarray) -> np.ndarray:
        return np.concatenate([windows, 0.5 - windows, windows * windows - 1.0], axis=1)

    want = ref.sliding_window_reference(volume, model, batch=2)
    origins = K.window_origins(*shape)
    result = np.zeros((3, *shape), np.float32)
    norm = np.zeros(shape, np.float32)
    for start in range(0, len(origins), 2):
        batch = origins[start : start + 2]
        K.accumulate_windows(model(K.extract_windows(volume, batch)), batch, patch, result, norm)
    np.testing.assert_array_equal(K.finalize_argmax(result, norm), want)


# --- CUDA twins (gpu) ---------------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.parametrize(("shape", "roi", "stride"), [((16, 24, 32), 16, 8), ((10, 7, 13), 5, 3)])
def test_cuda_sliding_window_matches_cpu(
    shape: tuple[int, int, int], roi: int, stride: int
) -> None:
    from mlperf_trt import _cuda

    rng = np.random.default_rng(3)
    volume = rng.standard_normal((1, *shape)).astype(np.float32)
    origins = K.window_origins(*shape, roi=roi, stride=stride)
    np.testing.assert_array_equal(
        _cuda.extract_windows(volume, origins, roi=roi), K.extract_windows(volume, origins, roi=roi)
    )
    patch = K.gaussian_importance(roi, 0.125)
    logits = rng.standard_normal((len(origins), 3, roi, roi, roi)).astype(np.float32)
    cpu = [np.zeros((3, *shape), np.float32), np.zeros(shape, np.float32)]
    gpu = [np.zeros((3, *shape), np.float32), np.zeros(shape, np.float32)]
    K.accumulate_windows(logits, origins, patch, *cpu)
    _cuda.accumulate_windows(logits, origins, patch, *gpu)
    np.testing.assert_array_equal(gpu[0], cpu[0])
    np.testing.assert_array_equal(gpu[1], cpu[1])
    np.testing.assert_array_equal(_cuda.finalize_argmax(*gpu), K.finalize_argmax(*cpu))


@pytest.mark.gpu
def test_cuda_sliding_window_ptr_entry_points() -> None:
    from mlperf_trt import _cuda

    rng = np.random.default_rng(5)
    shape, roi = (12, 12, 20), 8
    volume = rng.standard_normal((1, *shape)).astype(np.float32)
    origins = K.window_origins(*shape, roi=roi, stride=4)
    k, n = len(origins), roi**3
    patch = K.gaussian_importance(roi, 0.125)
    d_vol, d_win = _cuda.DeviceBuffer(volume.nbytes), _cuda.DeviceBuffer(k * n * 4)
    d_patch = _cuda.DeviceBuffer(patch.nbytes)
    d_res, d_norm = _cuda.DeviceBuffer(3 * volume.nbytes), _cuda.DeviceBuffer(volume.nbytes)
    d_logits, d_out = _cuda.DeviceBuffer(3 * k * n * 4), _cuda.DeviceBuffer(volume.size)
    d_vol.upload(volume)
    d_patch.upload(patch)
    d_res.upload(np.zeros(3 * volume.size, np.float32))
    d_norm.upload(np.zeros(volume.size, np.float32))
    _cuda.extract_windows_ptr(d_vol.ptr, *shape, origins, d_win.ptr, roi=roi)
    windows = d_win.download(np.empty((k, 1, roi, roi, roi), np.float32))
    np.testing.assert_array_equal(windows, K.extract_windows(volume, origins, roi=roi))
    logits = np.concatenate([windows, -windows, windows * 2], axis=1)
    d_logits.upload(logits)
    _cuda.accumulate_windows_ptr(
        d_logits.ptr, 3, origins, d_patch.ptr, d_res.ptr, d_norm.ptr, *shape, roi=roi
    )
    _cuda.finalize_argmax_ptr(d_res.ptr, d_norm.ptr, 3, *shape, d_out.ptr)
    _cuda.synchronize()
    result = np.zeros((3, *shape), np.float32)
    norm = np.zeros(shape, np.float32)
    K.accumulate_windows(logits, origins, patch, result, norm)
    np.testing.assert_array_equal(
        d_out.download(np.empty(shape, np.uint8)), K.finalize_argmax(result, norm)
    )
