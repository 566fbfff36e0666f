"""`kernels`: the CPU kernels (and their CUDA twins where a GPU is present) against numpy
references: throughput per size, exactness where the result is more than a copy."""

from __future__ import annotations

import argparse
from typing import Any

from run import print_table, time_it


def routine_kernels(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    from mlperf_trt import _C, build_info

    info = build_info()
    cuda = None
    if info.get("cuda_devices"):
        from mlperf_trt import _cuda as cuda
    rng = np.random.default_rng(0)
    rows, report = [], []
    for rows_n, cols in ((256, 1001), (4096, 1001), (65536, 128)):
        scores = rng.standard_normal((rows_n, cols), dtype=np.float32)
        t_cpu = time_it(lambda s=scores: _C.kernels.argmax_rows(s))
        t_np = time_it(lambda s=scores: s.argmax(axis=1))
        gbs = scores.nbytes / t_cpu / 1e9
        entry = {
            "kernel": "argmax_rows",
            "shape": [rows_n, cols],
            "cpu_s": t_cpu,
            "numpy_s": t_np,
            "cpu_GBps": gbs,
        }
        row = ["argmax_rows", f"{rows_n}x{cols}", t_cpu * 1e6, t_np * 1e6, gbs]
        if cuda is not None:
            t_gpu = time_it(lambda s=scores: cuda.argmax_rows(s))
            entry["cuda_with_copies_s"] = t_gpu
            row.append(t_gpu * 1e6)
        rows.append(row)
        report.append(entry)
    for n in (1 << 16, 1 << 22):
        x = rng.standard_normal(n, dtype=np.float32)
        t_cpu = time_it(lambda x=x: _C.kernels.quantize_int8(x, 0.05))
        t_np = time_it(
            lambda x=x: np.clip(np.rint(x / np.float32(0.05)), -128, 127).astype(np.int8)
        )
        entry = {
            "kernel": "quantize_int8",
            "n": n,
            "cpu_s": t_cpu,
            "numpy_s": t_np,
            "cpu_GBps": x.nbytes / t_cpu / 1e9,
        }
        row = ["quantize_int8", str(n), t_cpu * 1e6, t_np * 1e6, x.nbytes / t_cpu / 1e9]
        if cuda is not None:
            t_gpu = time_it(lambda x=x: cuda.quantize_int8(x, 0.05))
            entry["cuda_with_copies_s"] = t_gpu
            row.append(t_gpu * 1e6)
        rows.append(row)
        report.append(entry)
    header = ["kernel", "size", "C++ us", "numpy us", "C++ GB/s"]
    if cuda is not None:
        header.append("CUDA us (incl. copies)")
    print_table("kernels (best of 5)", header, rows)
    result: dict[str, Any] = {"build": info, "results": report}
    result["gather"] = _bench_gather(rng, cuda)
    result["embedding_bag"] = _bench_embedding_bag(rng, cuda)
    result["retinanet_decode_nms"] = _bench_retinanet(rng, cuda)
    result["sliding_window"] = _bench_sliding_window(rng, cuda)
    if cuda is not None:
        result["cuda_copy"] = _bench_cuda_copies(cuda)
    return result


# SampleStore gathers (DESIGN §4.1): (name, per-sample shape, dtype, samples in store, batch).
GATHER_SHAPES = (
    ("resnet50 int8", (3, 224, 224), "int8", 1024, 64),
    ("bert-99 int32 x3", (3, 384), "int32", 4096, 256),
    ("dlrm dense f32", (13,), "float32", 65536, 2048),
    ("odd 6-byte rows", (3,), "int16", 65536, 4096),
)
# DLRMv2 embedding-bag (SPEC §2.8): 26 tables of dim 128, the fixed multi-hot widths; tables cut
# to EMB_ROWS rows each (the real ones reach 40M rows) so that they fit this machine's memory.
DLRM_MULTI_HOT = (3, 2, 1, 2, 6, 1, 1, 1, 1, 7, 3, 8, 1, 6, 9, 5, 1, 1, 1, 12, 100, 27, 10, 3, 1, 1)
EMB_DIM, EMB_ROWS, EMB_PAIRS = 128, 200_000, 2048


def _bench_gather(rng: Any, cuda: Any) -> list[dict[str, Any]]:
    """C++ gather (into a preallocated buffer) vs numpy fancy indexing; GB/s of rows moved."""
    import numpy as np

    from mlperf_trt import _C

    rows, report = [], []
    for name, shape, dtype, stored, batch in GATHER_SHAPES:
        src = rng.integers(-100, 100, (stored, *shape)).astype(dtype)
        row_bytes = src[0].nbytes
        for order in ("random", "sequential"):
            if order == "random":
                idx = rng.integers(0, stored, batch).astype(np.int64)
            else:
                idx = np.arange(batch, dtype=np.int64) + stored // 3
            moved = batch * row_bytes
            out = np.empty((batch, *shape), dtype)
            t_cpp = time_it(lambda s=src, i=idx, o=out: _C.kernels.gather_rows(s, i, o))
            t_np = time_it(lambda s=src, i=idx: s[i])
            entry: dict[str, Any] = {
                "case": name,
                "order": order,
                "row_bytes": row_bytes,
                "batch": batch,
                "cpp_s": t_cpp,
                "numpy_s": t_np,
                "cpp_GBps": moved / t_cpp / 1e9,
                "numpy_GBps": moved / t_np / 1e9,
            }
            row = [name, order, row_bytes, batch, moved / t_cpp / 1e9, moved / t_np / 1e9]
            if cuda is not None:
                entry.update(_bench_cuda_gather(cuda, src, idx))
                row += [entry["cuda_d2d_GBps"], entry["cuda_h2d_pinned_GBps"]]
            rows.append(row)
            report.append(entry)
    header = ["gather", "order", "row B", "batch", "C++ GB/s", "numpy src[idx] GB/s"]
    if cuda is not None:
        header += ["CUDA D2D kernel GB/s", "CUDA H2D pinned GB/s"]
    print_table("row gather (GB/s of rows moved, best of 5)", header, rows)
    return report


def _bench_cuda_gather(cuda: Any, src: Any, idx: Any) -> dict[str, float]:
    """The device gather kernel and the pinned host -> device gather, GB/s of rows moved."""
    import numpy as np

    row_bytes, n = src[0].nbytes, len(idx)
    d_src, d_idx, d_out = (cuda.DeviceBuffer(b) for b in (src.nbytes, idx.nbytes, n * row_bytes))
    d_src.upload(np.ascontiguousarray(src))
    d_idx.upload(idx)
    pool = cuda.PinnedPool(src.nbytes, 1)
    _, pinned = pool.acquire()
    pinned[:] = src.reshape(-1).view(np.uint8)
    host = pinned.ctypes.data

    def d2d() -> None:
        cuda.gather_rows_ptr(d_src.ptr, len(src), row_bytes, row_bytes, d_idx.ptr, n, d_out.ptr)
        cuda.synchronize()

    def h2d() -> None:
        cuda.gather_rows_h2d_ptr(host, len(src), row_bytes, row_bytes, idx, d_out.ptr)
        cuda.synchronize()

    t_d2d, t_h2d = time_it(d2d), time_it(h2d)
    return {
        "cuda_d2d_s": t_d2d,
        "cuda_h2d_pinned_s": t_h2d,
        "cuda_d2d_GBps": n * row_bytes / t_d2d / 1e9,
        "cuda_h2d_pinned_GBps": n * row_bytes / t_h2d / 1e9,
    }


def _bench_embedding_bag(rng: Any, cuda: Any) -> dict[str, Any]:
    """26 tables x 2048 pairs: C++ (all cores) vs numpy per table; GB/s of table rows read."""
    import os

    import numpy as np

    from mlperf_trt import _C

    tables = [rng.random((EMB_ROWS, EMB_DIM), dtype=np.float32) for _ in DLRM_MULTI_HOT]
    ids = [rng.integers(0, EMB_ROWS, (EMB_PAIRS, h)).astype(np.int32) for h in DLRM_MULTI_HOT]
    out = np.empty((EMB_PAIRS, len(tables), EMB_DIM), np.float32)
    read = EMB_PAIRS * sum(DLRM_MULTI_HOT) * EMB_DIM * 4

    def numpy_bags() -> None:
        for t, (table, i) in enumerate(zip(tables, ids, strict=True)):
            out[:, t, :] = table[i].sum(axis=1)

    t_cpp = time_it(lambda: _C.kernels.embedding_bag_sum_tables(tables, ids, out=out))
    t_cpp1 = time_it(lambda: _C.kernels.embedding_bag_sum_tables(tables, ids, out=out, threads=1))
    t_np = time_it(numpy_bags)
    report: dict[str, Any] = {
        "tables": len(tables),
        "rows_per_table": EMB_ROWS,
        "dim": EMB_DIM,
        "pairs": EMB_PAIRS,
        "ids_per_pair": sum(DLRM_MULTI_HOT),
        "bytes_read": read,
        "cpu_threads": os.cpu_count(),
        "cpp_s": t_cpp,
        "cpp_1thread_s": t_cpp1,
        "numpy_s": t_np,
        "cpp_GBps": read / t_cpp / 1e9,
        "cpp_1thread_GBps": read / t_cpp1 / 1e9,
        "numpy_GBps": read / t_np / 1e9,
    }
    rows = [
        [f"C++, {os.cpu_count()} threads", t_cpp * 1e3, read / t_cpp / 1e9],
        ["C++, 1 thread", t_cpp1 * 1e3, read / t_cpp1 / 1e9],
        ["numpy table[ids].sum(axis=1)", t_np * 1e3, read / t_np / 1e9],
    ]
    if cuda is not None:
        d_tables = [cuda.DeviceBuffer(t.nbytes) for t in tables]
        d_ids = [cuda.DeviceBuffer(i.nbytes) for i in ids]
        for d, a in zip(d_tables + d_ids, tables + ids, strict=True):
            d.upload(a)
        d_out = cuda.DeviceBuffer(out.nbytes)
        bags = [
            (dt.ptr, EMB_ROWS, di.ptr, h, h)
            for dt, di, h in zip(d_tables, d_ids, DLRM_MULTI_HOT, strict=True)
        ]

        def gpu() -> None:
            cuda.embedding_bag_sum_ptr(bags, EMB_PAIRS, EMB_DIM, d_out.ptr, len(tables) * EMB_DIM)
            cuda.synchronize()

        t_gpu = time_it(gpu)
        report["cuda_s"] = t_gpu
        report["cuda_GBps"] = read / t_gpu / 1e9
        rows.append(["CUDA (device tables)", t_gpu * 1e3, read / t_gpu / 1e9])
    print_table(
        f"DLRMv2 embedding-bag: {len(tables)} tables x {EMB_ROWS:,} rows x dim {EMB_DIM},"
        f" {EMB_PAIRS} pairs, {sum(DLRM_MULTI_HOT)} ids/pair (GB/s of table rows read)",
        ["implementation", "ms / batch", "GB/s"],
        rows,
    )
    return report


# RetinaNet heads at full size (SPEC §2.2): 120,087 anchors x 264 classes. Logits ~ N(-7, 1.5):
# about 0.35% of the scores pass 0.05 (~110k candidates, every level above its top 1000).
RETINANET_LOGITS = (-7.0, 1.5)
# 3D-UNet (SPEC §2.3): a 256^3 preprocessed volume (27 windows of 128^3), windows in batches of 2
# through one reused logits buffer (the model's output buffer; the model itself is not timed).
UNET_SHAPE, UNET_BATCH = (256, 256, 256), 2


def _retinanet_inputs(rng: Any) -> tuple[Any, Any, Any, list[int]]:
    import numpy as np

    try:
        from mlperf_trt.models import retinanet

        anchors = np.ascontiguousarray(retinanet.anchors(), dtype=np.float32)
        level_sizes = [int(n) for n in retinanet.LEVEL_SIZES]
    except (ImportError, AttributeError):  # the model module is not there: random anchors
        level_sizes = [9 * s * s for s in (100, 50, 25, 13, 7)]
        xy = rng.uniform(0, 800, (sum(level_sizes), 2))
        wh = rng.uniform(16, 512, (sum(level_sizes), 2))
        anchors = np.concatenate([xy - wh / 2, xy + wh / 2], axis=1).astype(np.float32)
    a = sum(level_sizes)
    mean, std = RETINANET_LOGITS
    cls = (rng.standard_normal((a, 264), dtype=np.float32) * std + mean).astype(np.float32)
    box = (rng.standard_normal((a, 4), dtype=np.float32) * 0.2).astype(np.float32)
    return cls, box, anchors, level_sizes


def _bench_retinanet(rng: Any, cuda: Any) -> dict[str, Any]:
    """C++ decode + top-k + NMS of one image vs the numpy reference; images/s and exactness."""
    import numpy as np

    from mlperf_trt import _C

    cls, box, anchors, level_sizes = _retinanet_inputs(rng)
    got = _C.kernels.retinanet_decode_nms(cls, box, anchors, level_sizes)
    t_cpp = time_it(lambda: _C.kernels.retinanet_decode_nms(cls, box, anchors, level_sizes))
    candidates = int((cls > np.float32(-2.944)).sum())
    report: dict[str, Any] = {
        "anchors": len(anchors),
        "classes": 264,
        "candidates_above_005": candidates,
        "detections": len(got[1]),
        "cpp_s": t_cpp,
        "cpp_images_per_s": 1 / t_cpp,
    }
    rows = [["C++ (_C.kernels)", t_cpp * 1e3, 1 / t_cpp, len(got[1]), "-"]]
    try:
        from mlperf_trt.models.retinanet_post import postprocess_image
    except ImportError:
        postprocess_image = None
    if postprocess_image is not None:
        want = postprocess_image(cls, box, anchors, level_sizes)
        t_np = time_it(lambda: postprocess_image(cls, box, anchors, level_sizes), repeat=2)
        same = len(got[1]) == len(want[1]) and bool(np.array_equal(got[2], want[2]))
        diff = float(np.abs(got[0] - want[0]).max()) if same and len(got[1]) else 0.0
        report.update(
            numpy_s=t_np,
            numpy_images_per_s=1 / t_np,
            speedup=t_np / t_cpp,
            identical_labels_and_order=same,
            boxes_max_abs_diff=diff,
            scores_max_abs_diff=float(np.abs(got[1] - want[1]).max()) if same else None,
            bit_identical=same
            and all(np.array_equal(g, w) for g, w in zip(got, want, strict=True)),
        )
        rows.append(
            [
                "numpy models.retinanet_post",
                t_np * 1e3,
                1 / t_np,
                len(want[1]),
                f"identical={report['bit_identical']}, box diff {diff:.3g} px",
            ]
        )
    if cuda is not None:
        d = [cuda.DeviceBuffer(x.nbytes) for x in (cls, box, anchors)]
        for buf, x in zip(d, (cls, box, anchors), strict=True):
            buf.upload(x)
        ws_bytes = cuda.retinanet_workspace_bytes(len(anchors), 264, level_sizes)
        ws = cuda.DeviceBuffer(ws_bytes)

        def gpu() -> Any:
            return cuda.retinanet_decode_nms_ptr(
                d[0].ptr, d[1].ptr, d[2].ptr, len(anchors), 264, level_sizes, ws.ptr, ws_bytes
            )

        g = gpu()
        t_gpu = time_it(gpu)
        same_gpu = all(np.array_equal(a, b) for a, b in zip(g, got, strict=True))
        report.update(
            cuda_s=t_gpu,
            cuda_images_per_s=1 / t_gpu,
            cuda_identical_to_cpp=same_gpu,
            cuda_workspace_bytes=ws_bytes,
        )
        rows.append(
            [
                "CUDA (device heads)",
                t_gpu * 1e3,
                1 / t_gpu,
                len(g[1]),
                f"identical to C++={same_gpu}",
            ]
        )
    print_table(
        f"RetinaNet decode + NMS, one image: {len(anchors):,} anchors x 264 classes,"
        f" {candidates:,} scores above 0.05",
        ["implementation", "ms / image", "images/s", "detections", "exactness"],
        rows,
    )
    return report


def _numpy_sliding_window(volume: Any, origins: Any, patch: Any, logits_of: Any) -> Any:
    """models.sliding_window's accumulation, written out with the same batching."""
    import numpy as np

    roi = patch.shape[0]
    d, h, w = volume.shape[1:]
    result = np.zeros((3, d, h, w), np.float32)
    norm = np.zeros((d, h, w), np.float32)
    for start in range(0, len(origins), UNET_BATCH):
        batch = origins[start : start + UNET_BATCH]
        windows = np.stack([volume[:, z : z + roi, y : y + roi, x : x + roi] for z, y, x in batch])
        logits = logits_of(windows)
        for (z, y, x), lg in zip(batch, logits, strict=True):
            result[:, z : z + roi, y : y + roi, x : x + roi] += lg * patch
            norm[z : z + roi, y : y + roi, x : x + roi] += patch
    return result, norm, np.argmax(result / norm, axis=0).astype(np.uint8)


def _bench_sliding_window(rng: Any, cuda: Any) -> dict[str, Any]:
    """Extract + accumulate + argmax over a whole volume (model excluded): voxels/s."""
    import numpy as np

    from mlperf_trt import _C

    k = _C.kernels
    shape = UNET_SHAPE
    volume = rng.standard_normal((1, *shape), dtype=np.float32)
    origins = k.window_origins(*shape)
    patch = k.gaussian_importance()
    voxels = int(np.prod(shape))
    # The stand-in model output: one fixed buffer of logits, as an engine's output binding.
    stand_in = rng.standard_normal((UNET_BATCH, 3, 128, 128, 128), dtype=np.float32)
    windows = np.empty((UNET_BATCH, 1, 128, 128, 128), np.float32)

    def logits_of(w: Any) -> Any:
        return stand_in[: len(w)]

    def cpp() -> Any:
        result = np.zeros((3, *shape), np.float32)
        norm = np.zeros(shape, np.float32)
        for start in range(0, len(origins), UNET_BATCH):
            batch = origins[start : start + UNET_BATCH]
            k.extract_windows(volume, batch, out=windows[: len(batch)])
            k.accumulate_windows(logits_of(batch), batch, patch, result, norm)
        return result, norm, k.finalize_argmax(result, norm)

    got = cpp()
    t_cpp = time_it(cpp, repeat=3)
    t_patch = time_it(lambda: k.gaussian_importance(), repeat=3)
    rows = [["C++ (_C.kernels, all cores)", t_cpp * 1e3, voxels / t_cpp / 1e6, "-"]]
    report: dict[str, Any] = {
        "shape": list(shape),
        "windows": len(origins),
        "batch": UNET_BATCH,
        "cpp_s": t_cpp,
        "cpp_voxels_per_s": voxels / t_cpp,
        "gaussian_importance_s": t_patch,
    }
    want = _numpy_sliding_window(volume, [tuple(o) for o in origins], patch, logits_of)
    t_np = time_it(
        lambda: _numpy_sliding_window(volume, [tuple(o) for o in origins], patch, logits_of),
        repeat=2,
    )
    exact = {
        "result_max_abs_diff": float(np.abs(got[0] - want[0]).max()),
        "norm_max_abs_diff": float(np.abs(got[1] - want[1]).max()),
        "labels_identical": bool(np.array_equal(got[2], want[2])),
    }
    report.update(numpy_s=t_np, numpy_voxels_per_s=voxels / t_np, speedup=t_np / t_cpp, **exact)
    rows.append(
        [
            "numpy (reference's steps)",
            t_np * 1e3,
            voxels / t_np / 1e6,
            f"result diff {exact['result_max_abs_diff']:.3g},"
            f" labels identical={exact['labels_identical']}",
        ]
    )
    if cuda is not None:
        n = voxels * 4
        d_vol, d_res, d_norm = cuda.DeviceBuffer(n), cuda.DeviceBuffer(3 * n), cuda.DeviceBuffer(n)
        d_win = cuda.DeviceBuffer(windows.nbytes)
        d_logits, d_patch = cuda.DeviceBuffer(stand_in.nbytes), cuda.DeviceBuffer(patch.nbytes)
        d_out = cuda.DeviceBuffer(voxels)
        d_vol.upload(volume)
        d_logits.upload(stand_in)
        d_patch.upload(patch)
        d_zero = cuda.DeviceBuffer(n)
        d_zero.upload(np.zeros(voxels, np.float32))

        def gpu() -> None:
            for ptr in (d_res.ptr, d_res.ptr + n, d_res.ptr + 2 * n, d_norm.ptr):
                cuda.memcpy_async(ptr, d_zero.ptr, n)
            for start in range(0, len(origins), UNET_BATCH):
                batch = origins[start : start + UNET_BATCH]
                cuda.extract_windows_ptr(d_vol.ptr, *shape, batch, d_win.ptr)
                cuda.accumulate_windows_ptr(
                    d_logits.ptr, 3, batch, d_patch.ptr, d_res.ptr, d_norm.ptr, *shape
                )
            cuda.finalize_argmax_ptr(d_res.ptr, d_norm.ptr, 3, *shape, d_out.ptr)
            cuda.synchronize()

        gpu()
        same = bool(np.array_equal(d_out.download(np.empty(shape, np.uint8)), got[2]))
        t_gpu = time_it(gpu, repeat=3)
        report.update(cuda_s=t_gpu, cuda_voxels_per_s=voxels / t_gpu, cuda_labels_identical=same)
        rows.append(
            ["CUDA (device buffers)", t_gpu * 1e3, voxels / t_gpu / 1e6, f"labels identical={same}"]
        )
    print_table(
        f"3D-UNet sliding window over {shape} ({len(origins)} windows, batch {UNET_BATCH}; model"
        " not timed)",
        ["implementation", "ms / volume", "Mvoxels/s", "exactness"],
        rows,
    )
    return report


def _bench_cuda_copies(cuda: Any) -> dict[str, float]:
    """The card's copy bandwidth, the ceiling of the gather and embedding figures above."""
    nbytes = 256 << 20
    a, b = cuda.DeviceBuffer(nbytes), cuda.DeviceBuffer(nbytes)
    pool = cuda.PinnedPool(nbytes, 1)
    _, pinned = pool.acquire()
    host = pinned.ctypes.data

    def d2d() -> None:
        cuda.memcpy_async(b.ptr, a.ptr, nbytes)
        cuda.synchronize()

    def h2d() -> None:
        cuda.memcpy_async(a.ptr, host, nbytes)
        cuda.synchronize()

    t_d2d, t_h2d = time_it(d2d), time_it(h2d)
    # D2D reads and writes every byte: count both, as the gather's "bytes moved" counts once.
    report = {
        "bytes": nbytes,
        "d2d_s": t_d2d,
        "h2d_pinned_s": t_h2d,
        "d2d_GBps_read_plus_write": 2 * nbytes / t_d2d / 1e9,
        "d2d_GBps_copied": nbytes / t_d2d / 1e9,
        "h2d_pinned_GBps": nbytes / t_h2d / 1e9,
    }
    print_table(
        "cudaMemcpy bandwidth (256 MiB)",
        ["copy", "GB/s copied"],
        [["D2D", report["d2d_GBps_copied"]], ["H2D pinned", report["h2d_pinned_GBps"]]],
    )
    return report
