"""`dlrm-cpu`: the tiny DLRMv2 on a synthetic Criteo set (issue 8's measurements).

1. The embedding-bag gather: GB/s of table rows read by the C++ kernel (all cores, and one thread
   as each harness worker runs it) against numpy fancy indexing (`table[ids].sum(axis=1)` per
   table), on one batch of the set's own multi-hot ids (pairs_per_batch pairs), same tables.
2. Offline pairs/s and samples/s of `python -m mlperf_trt run --model dlrm-v2-99 --backend ort
   --model-size tiny` children, FP32 and INT8, with a fixed min duration.
3. The Server QPS reached under the 60 ms p99 bound (SPEC §2.8): a short search over
   server_target_qps, each try a `--duration smoke` child (600 queries), reporting every tried
   QPS with its p99 and validity and the highest VALID one.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import numpy as np

from routines.mlperf_runs import (
    CliRun,
    load_note,
    offline_sets,
    probe_offline,
    run_cli,
    sized_qps,
    validity,
)
from run import print_table, time_it

# The driver fills the shared options this routine's user left out with these.
DEFAULTS = {"duration_ms": 10_000, "samples": 500}
MODEL = "dlrm-v2-99"
PRECISIONS = ("fp32", "int8")
SPIN_NOTE = (
    "note: LoadGen's Server issue thread spins on one core while it waits for the next"
    " arrival; on this {cpus}-vCPU VM that is {share} of the CPU, which the workers (and their"
    " p99) do without. A Server figure here says more about this VM than about the harness."
)


def _tables_and_samples(data_dir: Path) -> tuple[list[np.ndarray], Any]:
    """The tiny model's memory-mapped tables and the synthetic set's aggregated samples, as the
    children used them (both cached under ./data by the first child run)."""
    from mlperf_trt.benchmarks import resolve
    from mlperf_trt.data import data_root
    from mlperf_trt.data.criteo import Criteo
    from mlperf_trt.harness import inputs
    from mlperf_trt.harness.pipelines import pipeline_for
    from mlperf_trt.harness.pipelines.dlrm import tables_for

    pipeline = pipeline_for("dlrm-v2")
    source = inputs.obtain_model(
        resolve(MODEL),
        model_path=None,
        size="tiny",
        models_dir=data_root() / "models",
        card=pipeline.model_card,
    )
    criteo = Criteo()
    return tables_for(source.model), criteo.samples(data_dir, criteo.prepare(data_dir))


def bench_gather(tables: list[np.ndarray], samples: Any, pairs: int) -> dict[str, Any]:
    """C++ embedding-bag (all cores; one thread) vs numpy on the first `pairs` pairs of the set."""
    from mlperf_trt import _C

    rows = np.arange(min(pairs, int(samples.offsets[-1])), dtype=np.int64)
    ids = [np.ascontiguousarray(f[rows], dtype=np.int32) for f in samples.sparse]
    hot = [int(i.shape[1]) for i in ids]
    dim = int(tables[0].shape[1])
    read = len(rows) * sum(hot) * dim * tables[0].itemsize
    out = np.empty((len(rows), len(tables), dim), np.float32)
    want = np.empty_like(out)
    plain = [np.asarray(t) for t in tables]  # the memmaps as plain ndarrays for numpy

    def numpy_bags() -> None:
        for t, (table, i) in enumerate(zip(plain, ids, strict=True)):
            want[:, t, :] = table[i].sum(axis=1)

    def cpp(threads: int) -> None:
        _C.kernels.embedding_bag_sum_tables(tables, ids, out=out, threads=threads)

    t_cpp = time_it(lambda: cpp(0))
    t_cpp1 = time_it(lambda: cpp(1))
    t_np = time_it(numpy_bags)
    cpp(0)
    numpy_bags()
    diff = float(np.abs(out - want).max())
    table_bytes = sum(int(t.nbytes) for t in tables)
    report: dict[str, Any] = {
        "pairs": len(rows),
        "ids_per_pair": sum(hot),
        "tables": len(tables),
        "rows_per_table": sorted({int(len(t)) for t in tables}),
        "table_bytes": table_bytes,
        "bytes_read": read,
        "cpu_threads": os.cpu_count(),
        "cpp_s": t_cpp,
        "cpp_1thread_s": t_cpp1,
        "numpy_s": t_np,
        "cpp_GBps": read / t_cpp / 1e9,
        "cpp_1thread_GBps": read / t_cpp1 / 1e9,
        "numpy_GBps": read / t_np / 1e9,
        "max_abs_diff_cpp_numpy": diff,
    }
    print_table(
        f"embedding-bag on the set's own ids: {len(rows):,} pairs x {sum(hot)} ids, {len(tables)}"
        f" tables of dim {dim} ({table_bytes / 2**20:.1f} MiB of tables, {min(map(len, tables))}"
        f" to {max(map(len, tables))} rows); GB/s of table rows read, best of 5",
        ["implementation", "ms / batch", "GB/s", "vs numpy"],
        [
            [f"C++, {os.cpu_count()} threads", t_cpp * 1e3, read / t_cpp / 1e9, t_np / t_cpp],
            ["C++, 1 thread (a harness worker)", t_cpp1 * 1e3, read / t_cpp1 / 1e9, t_np / t_cpp1],
            ["numpy table[ids].sum(axis=1)", t_np * 1e3, read / t_np / 1e9, 1.0],
        ],
    )
    l3 = _l3_bytes()
    report["l3_bytes"] = l3
    where = (
        f"the tables fit this CPU's L3 ({l3 / 2**20:.0f} MiB): cache-resident figures, not DRAM"
        " bandwidth"
        if l3 and table_bytes <= l3
        else f"L3 {l3 / 2**20:.0f} MiB"
        if l3
        else "L3 size unknown"
    )
    order = " (float32 sums in another order)" if diff else ""
    print(f"C++ vs numpy: max abs difference {diff:.3g}{order}; {where}")
    return report


def _l3_bytes() -> int:
    """This CPU's last-level cache in bytes from sysfs; 0 where it cannot be read."""
    path = Path("/sys/devices/system/cpu/cpu0/cache/index3/size")
    try:
        text = path.read_text().strip().upper()
    except OSError:
        return 0
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
    digits = text.rstrip("KMG")
    return int(digits) * scale if digits.isdigit() else 0


def _offline(args: argparse.Namespace, base: list[str]) -> dict[str, CliRun]:
    runs: dict[str, CliRun] = {}
    for precision in PRECISIONS:
        if args.offline_qps:
            qps = float(args.offline_qps)
        else:
            qps = sized_qps(probe_offline(MODEL, precision, base))
        sets = offline_sets(args.duration_ms, qps, base)
        runs[precision] = run_cli(
            MODEL, "Offline", precision=precision, duration="short", sets=sets
        )
    return runs


def _next_qps(q: float, valid: bool, best: float | None, worst: float | None) -> float:
    """Doubling up from a VALID try or halving down from an INVALID one until both sides are
    known, then bisection between the highest VALID and the lowest INVALID."""
    if valid:
        nxt = q * 2 if worst is None else (q + worst) / 2
    else:
        nxt = q / 2 if best is None else (best + q) / 2
    return float(f"{nxt:.2g}")


def server_search(
    args: argparse.Namespace, base: list[str], start: float
) -> tuple[list[CliRun], float | None]:
    tried: list[CliRun] = []
    best: float | None = None  # highest VALID QPS
    worst: float | None = None  # lowest INVALID QPS
    q = float(f"{start:.2g}")
    for _ in range(args.server_tries):
        if q < args.server_min_qps or any(
            float(r.settings["server_target_qps"]) == q for r in tried
        ):
            break
        r = run_cli(
            MODEL,
            "Server",
            precision=args.server_precision,
            duration="smoke",
            sets=[f"server_target_qps={q:g}", *base],
        )
        tried.append(r)
        if r.valid:
            best = q if best is None else max(best, q)
        else:
            worst = q if worst is None else min(worst, q)
        if best is not None and worst is not None and worst / best < 1.15:
            break
        q = _next_qps(q, r.valid, best, worst)
    return tried, best


def routine_dlrm_cpu(args: argparse.Namespace) -> dict[str, Any]:
    base = [f"synthetic_samples={args.samples}", *args.harness_set]
    report: dict[str, Any] = {
        "model": f"{MODEL} tiny, ort",
        "synthetic_samples": args.samples,
        "min_duration_ms": args.duration_ms,
        "harness_set": list(args.harness_set),
    }
    report["load_before"], note = load_note()
    print(note)
    offline = _offline(args, base)
    first = offline[PRECISIONS[0]]
    data_dir = Path(first.inputs["data_dir"])
    tables, samples = _tables_and_samples(data_dir)
    pairs_per_sample = samples.pairs_per_sample
    mean_pairs = float(pairs_per_sample.mean())
    report["gather"] = bench_gather(tables, samples, int(first.settings["pairs_per_batch"]))

    rows = []
    report["offline"] = {}
    for precision, r in offline.items():
        pairs = r.samples_per_second * mean_pairs
        report["offline"][precision] = {
            "samples_per_second": r.samples_per_second,
            "pairs_per_second": pairs,
            "run": r.to_json(),
        }
        rows.append(
            [
                precision,
                r.samples_per_second,
                pairs,
                int(r.effective.get("samples_per_query", 0) or 0),
                validity(r),
            ]
        )
    print_table(
        f"{MODEL} tiny on ONNX Runtime, Offline, min duration {args.duration_ms} ms, synthetic"
        f" set of {samples.count} samples ({int(samples.offsets[-1]):,} pairs, mean"
        f" {mean_pairs:.1f} pairs/sample), pairs_per_batch {first.settings['pairs_per_batch']}",
        ["precision", "samples/s", "pairs/s", "samples/query", "LoadGen"],
        rows,
    )
    print("pairs/s = samples/s x the mean pairs per sample of the loaded set (all of it here)")
    report["mean_pairs_per_sample"] = mean_pairs

    if args.server_qps:
        start = float(args.server_qps)
    else:  # half the Offline throughput of that precision (Poisson arrivals need headroom)
        ref = offline.get(args.server_precision) or probe_offline(
            MODEL, args.server_precision, base
        )
        start = 0.5 * ref.samples_per_second
    tried, best = server_search(args, base, start)
    bound_ms = (
        float(tried[0].effective.get("target_latency_ns", 0) or 0) / 1e6 if tried else float("nan")
    )
    print_table(
        f"{MODEL} tiny Server search ({args.server_precision}, --duration smoke: 600 queries,"
        f" p99 bound {bound_ms:g} ms)",
        ["target QPS", "completed samples/s", "p50 ms", "p99 ms", "LoadGen", "child s", "why"],
        [
            [
                float(r.settings["server_target_qps"]),
                r.samples_per_second,
                r.p50_ms,
                r.p99_ms,
                validity(r),
                r.wall_s,
                r.reasons[0] if r.reasons else "",
            ]
            for r in tried
        ],
    )
    if best is not None:
        print(f"highest VALID Server QPS under the {bound_ms:g} ms p99 bound: {best:g}")
    else:
        lowest = min((float(r.settings["server_target_qps"]) for r in tried), default=start)
        print(
            f"no VALID Server QPS found down to {lowest:g} (the search stops below"
            f" --server-min-qps {args.server_min_qps:g}: a smoke run lasts 600/QPS seconds)"
        )
    cpus = os.cpu_count() or 1
    print(SPIN_NOTE.format(cpus=cpus, share=f"1/{cpus}"))
    report["server"] = {
        "precision": args.server_precision,
        "p99_bound_ms": bound_ms,
        "start_qps": start,
        "tried": [r.to_json() for r in tried],
        "highest_valid_qps": best,
        "note": SPIN_NOTE.format(cpus=cpus, share=f"1/{cpus}"),
    }
    return report
