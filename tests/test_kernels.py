"""CPU kernels against plain numpy references; CUDA twins against the CPU kernels (gpu)."""

from __future__ import annotations

import numpy as np
import pytest

from mlperf_trt import _C
from mlperf_trt.errors import KernelError

K = _C.kernels


def _ref_argmax(scores: np.ndarray) -> np.ndarray:
    """First maximum, NaN never wins (all-NaN rows give 0)."""
    masked = np.where(np.isnan(scores), -np.inf, scores)
    out = masked.argmax(axis=1).astype(np.int32)
    return out


@pytest.mark.parametrize("shape", [(1, 1), (3, 1001), (17, 5), (64, 33), (5, 4097)])
def test_argmax_matches_reference(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(shape))
    scores = rng.standard_normal(shape).astype(np.float32)
    np.testing.assert_array_equal(K.argmax_rows(scores), _ref_argmax(scores))


def test_argmax_ties_and_nan() -> None:
    scores = np.array(
        [[1, 3, 3, 0], [np.nan, 2, 5, 5], [np.nan] * 4, [-np.inf, -np.inf, -1, np.nan]],
        dtype=np.float32,
    )
    np.testing.assert_array_equal(K.argmax_rows(scores), [1, 2, 0, 2])


def test_argmax_rejects_wrong_dtype_and_layout() -> None:
    scores = np.zeros((4, 6), dtype=np.float32)
    with pytest.raises(KernelError, match="float32"):
        K.argmax_rows(scores.astype(np.float64))
    with pytest.raises(KernelError, match="C-contiguous"):
        K.argmax_rows(scores[:, ::2])
    with pytest.raises(KernelError, match="rows, cols"):
        K.argmax_rows(np.zeros(5, dtype=np.float32))


def _ref_quantize(x: np.ndarray, scale: float) -> np.ndarray:
    q = np.rint(x / np.float32(scale))  # numpy rounds half to even, as QuantizeLinear
    q = np.where(np.isnan(q), 0, q)
    return np.clip(q, -128, 127).astype(np.int8)


@pytest.mark.parametrize("n", [1, 7, 1000, 65537])
@pytest.mark.parametrize("scale", [0.5, 0.0173, 3.0])
def test_quantize_matches_reference(n: int, scale: float) -> None:
    rng = np.random.default_rng(n)
    x = (rng.standard_normal(n) * 100).astype(np.float32)
    np.testing.assert_array_equal(K.quantize_int8(x, scale), _ref_quantize(x, scale))


def test_quantize_rounds_half_to_even_and_saturates() -> None:
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, 1000.0, -1000.0, np.nan], dtype=np.float32)
    np.testing.assert_array_equal(K.quantize_int8(x, 1.0), [0, 2, 2, 0, -2, 127, -128, 0])


def test_quantize_keeps_shape_and_round_trips() -> None:
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, size=(2, 3, 5)).astype(np.float32)
    scale = 1.0 / 127
    q = K.quantize_int8(x, scale)
    assert q.shape == x.shape and q.dtype == np.int8
    back = K.dequantize_int8(q, scale)
    assert back.dtype == np.float32
    assert np.max(np.abs(back - x)) <= scale / 2 + 1e-7


def test_quantize_rejects_bad_scale() -> None:
    with pytest.raises(KernelError, match="scale"):
        K.quantize_int8(np.zeros(3, dtype=np.float32), 0.0)


@pytest.mark.gpu
@pytest.mark.parametrize("shape", [(1, 1), (3, 1001), (129, 33), (1000, 4097)])
def test_cuda_argmax_matches_cpu(shape: tuple[int, int]) -> None:
    from mlperf_trt import _cuda

    rng = np.random.default_rng(7)
    scores = rng.standard_normal(shape).astype(np.float32)
    scores[0, 0] = np.nan
    np.testing.assert_array_equal(_cuda.argmax_rows(scores), K.argmax_rows(scores))


@pytest.mark.gpu
@pytest.mark.parametrize("n", [1, 255, 1 << 20])
def test_cuda_quantize_matches_cpu(n: int) -> None:
    from mlperf_trt import _cuda

    rng = np.random.default_rng(n)
    x = (rng.standard_normal(n) * 50).astype(np.float32)
    x[:4] = [0.5, 1.5, np.nan, 1e9][: min(4, n)]
    np.testing.assert_array_equal(_cuda.quantize_int8(x, 0.37), K.quantize_int8(x, 0.37))
    q = K.quantize_int8(x, 0.37)
    np.testing.assert_array_equal(_cuda.dequantize_int8(q, 0.37), K.dequantize_int8(q, 0.37))


MEAN = (123.68, 116.78, 103.94)  # SPEC §2.1


def _ref_crop_normalize(img, top, left, h, w, mean, divisor, bgr):  # type: ignore[no-untyped-def]
    crop = img[top : top + h, left : left + w]
    if bgr:
        crop = crop[:, :, ::-1]
    out = (crop.astype(np.float32) - np.array(mean, np.float32)) / np.array(divisor, np.float32)
    return np.ascontiguousarray(out.transpose(2, 0, 1))


@pytest.mark.parametrize(
    ("shape", "window"),
    [
        ((224, 224, 3), (0, 0, 224, 224)),
        ((256, 341, 3), (16, 58, 224, 224)),
        ((9, 5, 3), (3, 1, 5, 3)),
    ],
)
@pytest.mark.parametrize("bgr", [True, False])
def test_crop_normalize_is_bit_identical_to_numpy(shape, window, bgr) -> None:  # type: ignore[no-untyped-def]
    img = np.random.default_rng(3).integers(0, 256, shape, dtype=np.uint8)
    out = K.crop_normalize(img, *window, MEAN, (1.0, 1.0, 1.0), bgr)
    np.testing.assert_array_equal(out, _ref_crop_normalize(img, *window, MEAN, (1, 1, 1), bgr))
    scaled = K.crop_normalize(img, *window, (0.0, 0.0, 0.0), (255.0, 255.0, 255.0), bgr)
    np.testing.assert_array_equal(
        scaled, _ref_crop_normalize(img, *window, (0, 0, 0), (255,) * 3, bgr)
    )
    q = K.crop_normalize_int8(img, *window, MEAN, (1.0, 1.0, 1.0), bgr, 1.2)
    np.testing.assert_array_equal(
        q, _ref_quantize(_ref_crop_normalize(img, *window, MEAN, (1, 1, 1), bgr), 1.2)
    )


def test_crop_normalize_rejects_bad_windows() -> None:
    img = np.zeros((10, 10, 3), np.uint8)
    with pytest.raises(KernelError, match="does not fit"):
        K.crop_normalize(img, 5, 0, 6, 4, MEAN)
    with pytest.raises(KernelError, match="HWC"):
        K.crop_normalize(np.zeros((10, 10), np.uint8), 0, 0, 2, 2, MEAN)


@pytest.mark.gpu
def test_cuda_crop_normalize_matches_cpu() -> None:
    from mlperf_trt import _cuda

    img = np.random.default_rng(5).integers(0, 256, (300, 257, 3), dtype=np.uint8)
    args = (img, 38, 16, 224, 224, MEAN, (1.0, 1.0, 1.0), True)
    np.testing.assert_array_equal(_cuda.crop_normalize(*args), K.crop_normalize(*args))
    np.testing.assert_array_equal(
        _cuda.crop_normalize_int8(*args, 0.9), K.crop_normalize_int8(*args, 0.9)
    )
