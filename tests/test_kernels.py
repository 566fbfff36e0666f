"""CPU kernels against plain numpy references; CUDA twins against the CPU kernels (gpu)."""

from __future__ import annotations

import gc
import threading
import time

import numpy as np
import pytest

from mlperf_trt import _C
from mlperf_trt.errors import DataError, KernelError

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


# --- row gather (DESIGN §4.1) -------------------------------------------------------------------
GATHER_CASES = [  # (dtype, row shape): row bytes 3, 14, 60, 16, 24, 1
    (np.uint8, (3,)),
    (np.int16, (7,)),
    (np.float32, (5, 3)),
    (np.float64, (2,)),
    (np.complex64, (3,)),
    (np.bool_, ()),
]


def _gather_indices(rows: int, rng: np.random.Generator) -> np.ndarray:
    """Runs of consecutive rows, repeats, a reversed stretch and random picks."""
    parts = [np.arange(2, 9), [0, 0, rows - 1], np.arange(rows - 1, rows - 6, -1)]
    parts.append(rng.integers(0, rows, 11))
    return np.concatenate(parts).astype(np.int64)


@pytest.mark.parametrize(("dtype", "row_shape"), GATHER_CASES)
def test_gather_rows_matches_fancy_indexing(dtype: type, row_shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(len(row_shape) + np.dtype(dtype).itemsize)
    src = (rng.standard_normal((41, *row_shape)) * 100).astype(dtype)
    idx = _gather_indices(41, rng)
    out = K.gather_rows(src, idx)
    assert out.dtype == src.dtype and out.shape == (len(idx), *row_shape)
    np.testing.assert_array_equal(out, src[idx])


@pytest.mark.parametrize(("dtype", "row_shape"), GATHER_CASES[:4])
def test_gather_rows_strided_source_and_preallocated_out(
    dtype: type, row_shape: tuple[int, ...]
) -> None:
    rng = np.random.default_rng(5)
    base = (rng.standard_normal((3 * 23, *row_shape)) * 100).astype(dtype)
    src = base[1::3]  # rows 3 rows apart: not C-contiguous, each row packed
    assert not src.flags.c_contiguous
    idx = _gather_indices(len(src), rng)
    out = np.full((len(idx), *row_shape), 7, dtype=dtype)
    got = K.gather_rows(src, idx, out)
    assert got is out
    np.testing.assert_array_equal(out, src[idx])


def test_gather_rows_from_memmap(tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = np.arange(64 * 9, dtype=np.int32).reshape(64, 9)
    data.tofile(tmp_path / "rows.bin")
    src = np.memmap(tmp_path / "rows.bin", dtype=np.int32, mode="r", shape=(64, 9))
    idx = np.array([63, 1, 2, 3, 40], dtype=np.int64)
    np.testing.assert_array_equal(K.gather_rows(src, idx), data[idx])


def test_gather_rows_empty_batches() -> None:
    src = np.arange(12, dtype=np.float32).reshape(4, 3)
    out = K.gather_rows(src, np.zeros(0, dtype=np.int64))
    assert out.shape == (0, 3) and out.dtype == np.float32
    empty = K.gather_rows(np.zeros((0, 5), np.uint8), np.zeros(0, dtype=np.int64))
    assert empty.shape == (0, 5)


def test_gather_rows_errors() -> None:
    src = np.zeros((10, 3), np.float32)
    with pytest.raises(DataError, match=r"index 10 at position 2 .* 10 rows"):
        K.gather_rows(src, np.array([0, 1, 10], dtype=np.int64))
    with pytest.raises(DataError, match="index -1 at position 0"):
        K.gather_rows(src, np.array([-1], dtype=np.int64))
    with pytest.raises(KernelError, match="int64"):
        K.gather_rows(src, np.array([0, 1], dtype=np.int32))
    with pytest.raises(KernelError, match="not packed"):
        K.gather_rows(np.zeros((10, 6), np.float32)[:, ::2], np.array([0], dtype=np.int64))
    with pytest.raises(KernelError, match="below the row size"):
        K.gather_rows(src[::-1], np.array([0], dtype=np.int64))
    with pytest.raises(KernelError, match="objects"):
        K.gather_rows(np.zeros((3, 2), dtype=object), np.array([0], dtype=np.int64))
    with pytest.raises(KernelError, match="shape"):
        K.gather_rows(src, np.array([0, 1], dtype=np.int64), np.zeros((3, 3), np.float32))
    with pytest.raises(KernelError, match="dtype"):
        K.gather_rows(src, np.array([0], dtype=np.int64), np.zeros((1, 3), np.float64))


# --- buffer pools --------------------------------------------------------------------------------
def _check_pool(pool, alignment: int) -> None:  # type: ignore[no-untyped-def]
    """Distinct, aligned, non-overlapping buffers; reuse after release; exhaustion raises."""
    assert (pool.capacity, pool.available, pool.alignment) == (3, 3, alignment)
    assert pool.stride % alignment == 0 and pool.stride >= pool.buffer_bytes
    taken = [pool.acquire() for _ in range(3)]
    ids = [i for i, _ in taken]
    assert sorted(ids) == [0, 1, 2] and pool.available == 0
    starts = sorted(v.ctypes.data for _, v in taken)
    assert all(s % alignment == 0 for s in starts)
    assert all(b - a >= pool.buffer_bytes for a, b in zip(starts, starts[1:], strict=False))
    for k, (_, view) in enumerate(taken):
        assert view.dtype == np.uint8 and view.shape == (pool.buffer_bytes,)
        view[:] = k + 1
    for k, (_, view) in enumerate(taken):
        assert np.all(view == k + 1)  # no buffer overlaps another
    with pytest.raises(KernelError, match=r"exhausted: all 3 buffers of 1000 bytes"):
        pool.acquire()
    start = time.perf_counter()
    with pytest.raises(KernelError, match="exhausted"):
        pool.acquire(timeout_s=0.05)
    assert time.perf_counter() - start >= 0.04
    pool.release(ids[1])
    again, view = pool.acquire()
    assert again == ids[1] and np.all(view == 2)  # the same buffer, bytes kept
    pool.release(again)
    with pytest.raises(KernelError, match="not acquired"):
        pool.release(again)
    with pytest.raises(KernelError, match="3 buffers"):
        pool.release(7)
    # All out again; a blocked acquire (GIL released) is served by a release from another thread.
    assert pool.acquire()[0] == again and pool.available == 0
    timer = threading.Timer(0.05, pool.release, args=(ids[0],))
    timer.start()
    got, _ = pool.acquire(timeout_s=5.0)
    timer.join()
    assert got == ids[0]


def test_host_pool() -> None:
    _check_pool(K.HostPool(1000, 3), 64)


def test_host_pool_views_keep_the_pool_alive() -> None:
    pool = K.HostPool(4096, 2)
    _, view = pool.acquire()
    view[:] = 9
    del pool
    gc.collect()
    view[:10] = 3  # still valid memory: the view holds the pool
    assert int(view.sum()) == 3 * 10 + 9 * (4096 - 10)


def test_host_pool_rejects_bad_sizes() -> None:
    with pytest.raises(KernelError, match="buffer_bytes"):
        K.HostPool(0, 4)
    with pytest.raises(KernelError, match="number of buffers"):
        K.HostPool(64, 0)


# --- embedding-bag (DLRMv2, SPEC §2.8) ---------------------------------------------------------
DLRM_HOT = [3, 2, 1, 2, 6, 1, 1, 1, 1, 7, 3, 8, 1, 6, 9, 5, 1, 1, 1, 12, 100, 27, 10, 3, 1, 1]


def _ref_bag(table: np.ndarray, ids: np.ndarray, padding: bool = False) -> np.ndarray:
    """Sums in the kernel's order (h = 0, 1, ...) in float32, so results are bit-equal."""
    out = np.zeros((ids.shape[0], table.shape[1]), np.float32)
    for h in range(ids.shape[1]):
        col = ids[:, h]
        rows = table[np.where(col < 0, 0, col)]
        if padding:
            rows = np.where((col < 0)[:, None], np.float32(0), rows)
        out += rows
    return out


@pytest.mark.parametrize(
    ("rows", "dim", "pairs", "hot"),
    [(1, 1, 1, 1), (37, 5, 130, 3), (300, 128, 67, 7), (9, 3, 0, 2)],
)
def test_embedding_bag_matches_reference(rows: int, dim: int, pairs: int, hot: int) -> None:
    rng = np.random.default_rng(rows + dim)
    table = rng.standard_normal((rows, dim)).astype(np.float32)
    ids = rng.integers(0, rows, (pairs, hot)).astype(np.int32)
    out = K.embedding_bag_sum(table, ids)
    assert out.shape == (pairs, dim) and out.dtype == np.float32
    np.testing.assert_array_equal(out, _ref_bag(table, ids))
    np.testing.assert_allclose(out, table[ids].sum(axis=1), rtol=1e-5, atol=1e-5)


def _dlrm_batch(pairs: int, dim: int, rng: np.random.Generator):  # type: ignore[no-untyped-def]
    """26 small tables and one packed [pairs, 214] id matrix, sliced per table (SPEC §2.8)."""
    tables = [
        rng.standard_normal((int(rng.integers(3, 50)), dim)).astype(np.float32) for _ in DLRM_HOT
    ]
    packed = np.empty((pairs, sum(DLRM_HOT)), np.int32)
    ids, at = [], 0
    for table, hot in zip(tables, DLRM_HOT, strict=True):
        packed[:, at : at + hot] = rng.integers(0, len(table), (pairs, hot))
        ids.append(packed[:, at : at + hot])  # strided view into the packed matrix
        at += hot
    return tables, ids


@pytest.mark.parametrize("threads", [1, 3, 0])
def test_embedding_bag_tables_dlrm_layout(threads: int) -> None:
    rng = np.random.default_rng(26)
    tables, ids = _dlrm_batch(131, 8, rng)
    assert sum(i.shape[1] for i in ids) == 214 and not ids[5].flags.c_contiguous
    out = K.embedding_bag_sum_tables(tables, ids, threads=threads)
    assert out.shape == (131, 26, 8)
    for t, (table, id_) in enumerate(zip(tables, ids, strict=True)):
        np.testing.assert_array_equal(out[:, t, :], _ref_bag(table, id_))
    # Into a caller's buffer, in place; the same bytes as a single-table call into out[:, t, :].
    buf = np.full((131, 26, 8), np.nan, np.float32)
    assert K.embedding_bag_sum_tables(tables, ids, out=buf) is buf
    np.testing.assert_array_equal(buf, out)
    single = np.full_like(buf, np.nan)
    for t, (table, id_) in enumerate(zip(tables, ids, strict=True)):
        K.embedding_bag_sum(table, id_, out=single[:, t, :], table_index=t)
    np.testing.assert_array_equal(single, out)


def test_embedding_bag_memmap_table_is_read_in_place(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(3)
    table = rng.standard_normal((1000, 16)).astype(np.float32)
    table.tofile(tmp_path / "table.bin")
    mm = np.memmap(tmp_path / "table.bin", dtype=np.float32, mode="r", shape=(1000, 16))
    assert not mm.flags.writeable
    ids = rng.integers(0, 1000, (45, 4)).astype(np.int32)
    np.testing.assert_array_equal(K.embedding_bag_sum(mm, ids), _ref_bag(table, ids))
    out = K.embedding_bag_sum_tables([mm, table], [ids, ids[:, :1]], threads=2)
    np.testing.assert_array_equal(out[:, 0], _ref_bag(table, ids))
    # No silent copy: a table that would need converting is refused, not cast.
    with pytest.raises(KernelError, match="float32"):
        K.embedding_bag_sum(table.astype(np.float64), ids)
    with pytest.raises(KernelError, match="C-contiguous"):
        K.embedding_bag_sum(table[:, ::2], ids)


def test_embedding_bag_empty_batches_and_bags() -> None:
    table = np.ones((4, 3), np.float32)
    np.testing.assert_array_equal(
        K.embedding_bag_sum(table, np.zeros((5, 0), np.int32)), np.zeros((5, 3), np.float32)
    )
    assert K.embedding_bag_sum_tables([table, table], [np.zeros((0, 2), np.int32)] * 2).shape == (
        0,
        2,
        3,
    )


def test_embedding_bag_padding() -> None:
    table = np.arange(20, dtype=np.float32).reshape(5, 4)
    ids = np.array([[1, -1, 2], [-1, -1, -1], [4, 4, -1]], np.int32)
    out = K.embedding_bag_sum(table, ids, skip_padding=True)
    np.testing.assert_array_equal(out, [table[1] + table[2], np.zeros(4), 2 * table[4]])
    np.testing.assert_array_equal(out, _ref_bag(table, ids, padding=True))
    with pytest.raises(DataError, match=r"pair 0 \(slot 1\) has id -1"):
        K.embedding_bag_sum(table, ids)
    with pytest.raises(DataError, match="id -2"):
        K.embedding_bag_sum(table, np.array([[-2]], np.int32), skip_padding=True)


def test_embedding_bag_errors_name_table_pair_and_id() -> None:
    rng = np.random.default_rng(0)
    tables = [rng.standard_normal((10, 4)).astype(np.float32) for _ in range(3)]
    ids = [rng.integers(0, 10, (200, 2)).astype(np.int32) for _ in range(3)]
    ids[2][150, 1] = 10
    ids[2][170, 0] = 99
    ids[1][190, 0] = 12345
    for threads in (1, 4):  # the lowest (table, pair) is reported whatever the thread timing
        with pytest.raises(
            DataError, match=r"embedding table 1: pair 190 \(slot 0\) has id 12345 .* 10 rows"
        ):
            K.embedding_bag_sum_tables(tables, ids, threads=threads)
    with pytest.raises(DataError, match=r"embedding table 7: pair 150 .* id 10 "):
        K.embedding_bag_sum(tables[2], ids[2], table_index=7)
    with pytest.raises(KernelError, match="dim"):
        K.embedding_bag_sum_tables([tables[0], np.zeros((10, 5), np.float32)], ids[:2])
    with pytest.raises(KernelError, match="pairs"):
        K.embedding_bag_sum_tables(tables[:2], [ids[0], ids[1][:5]])
    with pytest.raises(KernelError, match="int32"):
        K.embedding_bag_sum(tables[0], ids[0].astype(np.int64))
    with pytest.raises(KernelError, match="read-only"):
        ro = np.zeros((200, 4), np.float32)
        ro.flags.writeable = False
        K.embedding_bag_sum(tables[0], ids[0], out=ro)


# --- CUDA twins of the gather, pools and embedding-bag (gpu) ----------------------------------
@pytest.mark.gpu
@pytest.mark.parametrize(("dtype", "row_shape"), GATHER_CASES)
def test_cuda_gather_matches_cpu(dtype: type, row_shape: tuple[int, ...]) -> None:
    from mlperf_trt import _cuda

    rng = np.random.default_rng(11)
    base = (rng.standard_normal((99, *row_shape)) * 100).astype(dtype)
    for src in (base, base[::3]):
        idx = _gather_indices(len(src), rng)
        expected = K.gather_rows(src, idx)
        np.testing.assert_array_equal(_cuda.gather_rows(src, idx), expected)
        np.testing.assert_array_equal(_cuda.gather_rows_h2d(src, idx), expected)
    with pytest.raises(DataError, match="index 99"):
        _cuda.gather_rows_h2d(base, np.array([99], np.int64))


@pytest.mark.gpu
def test_cuda_gather_ptr_from_pinned_and_device_memory() -> None:
    from mlperf_trt import _cuda

    rng = np.random.default_rng(2)
    src = rng.integers(0, 255, (50, 48), dtype=np.uint8)  # 48-byte rows: the 16-byte path
    idx = np.array([4, 5, 6, 7, 0, 49, 3], np.int64)
    pool = _cuda.PinnedPool(src.nbytes, 1)
    _, pinned = pool.acquire()
    pinned[:] = src.reshape(-1)
    d_src, d_idx = _cuda.DeviceBuffer(src.nbytes), _cuda.DeviceBuffer(idx.nbytes)
    d_out = _cuda.DeviceBuffer(len(idx) * 48)
    d_src.upload(src)
    d_idx.upload(idx)
    _cuda.gather_rows_ptr(d_src.ptr, 50, 48, 48, d_idx.ptr, len(idx), d_out.ptr)
    _cuda.synchronize()
    np.testing.assert_array_equal(d_out.download(np.empty((len(idx), 48), np.uint8)), src[idx])
    _cuda.gather_rows_h2d_ptr(pinned.ctypes.data, 50, 48, 48, idx[::-1].copy(), d_out.ptr)
    _cuda.synchronize()
    np.testing.assert_array_equal(
        d_out.download(np.empty((len(idx), 48), np.uint8)), src[idx[::-1]]
    )


@pytest.mark.gpu
def test_pinned_pool() -> None:
    from mlperf_trt import _cuda

    _check_pool(_cuda.PinnedPool(1000, 3), 256)


@pytest.mark.gpu
@pytest.mark.parametrize("dim", [128, 5])
def test_cuda_embedding_bag_matches_cpu(dim: int) -> None:
    from mlperf_trt import _cuda

    rng = np.random.default_rng(dim)
    tables, ids = _dlrm_batch(77, dim, rng)
    ids = [np.ascontiguousarray(i) for i in ids]
    ids[3][5, 0] = -1
    args = (tables, ids)
    np.testing.assert_array_equal(
        _cuda.embedding_bag_sum_tables(*args, skip_padding=True),
        K.embedding_bag_sum_tables(*args, skip_padding=True),
    )
    with pytest.raises(DataError, match="embedding table 3: pair 5"):
        _cuda.embedding_bag_sum_tables(*args)


@pytest.mark.gpu
def test_cuda_embedding_bag_ptr_writes_strided_output() -> None:
    from mlperf_trt import _cuda

    rng = np.random.default_rng(4)
    tables = [rng.standard_normal((30, 16)).astype(np.float32) for _ in range(2)]
    ids = [rng.integers(0, 30, (9, h)).astype(np.int32) for h in (3, 1)]
    d_t = [_cuda.DeviceBuffer(t.nbytes) for t in tables]
    d_i = [_cuda.DeviceBuffer(i.nbytes) for i in ids]
    for d, a in zip(d_t + d_i, tables + ids, strict=True):
        d.upload(a)
    d_out = _cuda.DeviceBuffer(9 * 2 * 16 * 4)
    bags = [(d_t[k].ptr, 30, d_i[k].ptr, ids[k].shape[1], ids[k].shape[1]) for k in range(2)]
    _cuda.embedding_bag_sum_ptr(bags, 9, 16, d_out.ptr, 32)
    _cuda.synchronize()
    out = d_out.download(np.empty((9, 2, 16), np.float32))
    np.testing.assert_array_equal(out, K.embedding_bag_sum_tables(tables, ids))


@pytest.mark.gpu
def test_cuda_quantize_ptr_matches_cpu() -> None:
    from mlperf_trt import _cuda

    x = (np.random.default_rng(8).standard_normal(1001) * 40).astype(np.float32)
    d_x, d_q = _cuda.DeviceBuffer(x.nbytes), _cuda.DeviceBuffer(x.size)
    d_x.upload(x)
    _cuda.quantize_int8_ptr(d_x.ptr, x.size, 0.21, d_q.ptr)
    _cuda.synchronize()
    np.testing.assert_array_equal(d_q.download(np.empty(x.size, np.int8)), K.quantize_int8(x, 0.21))
