"""`vision-cpu`: RetinaNet and 3D-UNet samples/s on the CPU (issue 7's per-benchmark figures).

1. RetinaNet, the tiny built-in network, FP32 on ONNX Runtime, Offline, one synthetic set, two
   ways, alternating and repeated (medians and the paired ratio):
   a. the built-in raw-head model (`--model retinanet --model-size tiny`): the engine returns
      the heads and the harness decodes and runs class-wise NMS in C++ (RetinaNetPostprocessor);
   b. the same network in the reference ONNX interface (SPEC §2.2), post-processing inside the
      graph (models.retinanet_nms.write_official), run with `--model-path PATH --data-dir DIR`
      on the set (a) used; that model takes one image per batch.
   Both runs of a repetition get the same min duration and expected QPS, so LoadGen issues them
   the same query; the slower one runs as much longer as it is slower.
2. 3D-UNet (`3d-unet-99`, tiny, FP32): Offline cases/s (a case is one sample, SPEC §2.3) and
   voxels/s: the voxels of the query's cases over the LoadGen test's duration. Equal issue is on
   for 3D-UNet (SPEC §2.3): the routine sizes the query to whole copies of the loaded set
   (min_query_count a multiple of its size), whose voxels are then (samples/query / set size) x
   the set's voxels.

The expected QPS of the measured runs comes from a `smoke` probe of each model (--offline-qps
sets RetinaNet's instead; 3D-UNet is always probed, it is ~10x slower). The RetinaNet set size is
--samples; the 3D-UNet set is UNET_CASES cases.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from routines.mlperf_runs import (
    CliRun,
    load_note,
    median_rate,
    offline_sets,
    paired_ratio,
    probe_offline,
    run_cli,
    sized_qps,
    spread,
    validity,
)
from run import print_table

# The driver fills the shared options this routine's user left out with these.
DEFAULTS = {"duration_ms": 10_000, "repeat": 2, "samples": 12}
RETINANET = "retinanet"
UNET = "3d-unet-99"
UNET_CASES = 8  # the e2e tests' set: 1-2 windows a case at the tiny sizes
PRECISION = "fp32"
RAW, OFFICIAL = "raw", "official"
WAYS = {
    RAW: "a: raw heads, decode+NMS in C++",
    OFFICIAL: "b: reference ONNX, NMS in graph",
}
OFFICIAL_FILE = "resnext50_32x4d_fpn.onnx"  # the reference model's file name (SPEC §2.2)


def _official_model(folder: Path) -> tuple[Path, str]:
    """The tiny built-in network (seed 0, as `run` builds it) in the reference interface,
    written under `folder`, and the hash of the raw network it wraps."""
    from mlperf_trt.models import model_hash, retinanet
    from mlperf_trt.models.retinanet_nms import write_official

    raw = retinanet.build("tiny", 0)
    return write_official(raw, folder / OFFICIAL_FILE), model_hash(raw)


def _postprocess_note() -> str:
    from mlperf_trt.models import retinanet

    scores = retinanet.TOTAL_ANCHORS * retinanet.NUM_CLASSES
    return (
        f"b's post-processing runs as ONNX Runtime ops on one image at a time: Sigmoid, Greater"
        f" and NonZero over all {retinanet.TOTAL_ANCHORS:,} anchors x {retinanet.NUM_CLASSES}"
        f" classes = {scores / 1e6:.1f} M scores, TopK per level, decode, one"
        f" NonMaxSuppression; a's decode + NMS run in C++ (RetinaNetPostprocessor) on the raw"
        f" heads, beside the engine's batches"
    )


def _measured(call: Callable[..., CliRun], *args: Any, **kwargs: Any) -> tuple[CliRun, float]:
    """`call(*args, **kwargs)`'s child run and the CPU seconds (user + system) the child used:
    over its wall time, the cores it had; a child that had fewer than this machine's while its
    workers ran shared them with other work."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = call(*args, **kwargs)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return r, cpu


def _row(label: str, model: str, way: str, batch: str, r: CliRun, cpu: float) -> list[Any]:
    return [
        label,
        model,
        way,
        batch,
        r.samples_per_second,
        int(r.effective.get("samples_per_query", 0) or 0),
        validity(r),
        r.reasons[0] if r.reasons else "",
        r.wall_s,
        cpu / r.wall_s,
    ]


def _raw_batch(r: CliRun) -> str:
    from mlperf_trt.harness.pipelines.retinanet import MAX_CPU_BATCH

    return f"<={min(int(r.settings['batch_size']), MAX_CPU_BATCH)}"


def _retinanet(
    args: argparse.Namespace, rows: list[list[Any]], report: dict[str, Any]
) -> dict[str, list[CliRun]]:
    """The alternating RetinaNet runs, appended to `rows`; the probe and QPS into `report`."""
    base = [f"synthetic_samples={args.samples}", *args.harness_set]
    data_dir: Path | None = None
    if args.offline_qps:
        qps = float(args.offline_qps)
    else:
        probe, cpu = _measured(probe_offline, RETINANET, PRECISION, base)
        rows.append(_row("probe", RETINANET, WAYS[RAW], _raw_batch(probe), probe, cpu))
        report["retinanet_probe"] = probe.to_json()
        data_dir = Path(probe.inputs["data_dir"])
        qps = sized_qps(probe)
    report["retinanet_expected_qps"] = qps
    sets = offline_sets(args.duration_ms, qps, base)
    runs: dict[str, list[CliRun]] = {RAW: [], OFFICIAL: []}
    with tempfile.TemporaryDirectory(prefix="bench-retinanet-official-") as tmp:
        official, raw_hash = _official_model(Path(tmp))
        for rep in range(args.repeat):
            # Alternate who goes first; the first repetition starts with (a), whose child makes
            # (or finds) the synthetic set when no probe did.
            order = (RAW, OFFICIAL) if rep % 2 == 0 else (OFFICIAL, RAW)
            for way in order:
                flags: tuple[str, ...] = ()
                if way == OFFICIAL:
                    if data_dir is None:  # unreachable: (a) ran first in this repetition
                        raise SystemExit("no synthetic RetinaNet set to run the official model on")
                    flags = ("--model-path", str(official), "--data-dir", str(data_dir))
                r, cpu = _measured(
                    run_cli,
                    RETINANET,
                    "Offline",
                    precision=PRECISION,
                    duration="short",
                    sets=sets,
                    args=flags,
                )
                if way == RAW:
                    data_dir = data_dir or Path(r.inputs["data_dir"])
                batch = _raw_batch(r) if way == RAW else "1"  # the reference model takes 1 image
                runs[way].append(r)
                rows.append(_row(str(rep + 1), RETINANET, WAYS[way], batch, r, cpu))
    # The set (a) ran on is named after the hash of the model that made it: the same network.
    first_raw = runs[RAW][0]
    report["retinanet_same_network"] = first_raw.inputs.get("model_hash") == raw_hash
    report["retinanet_data_dir"] = str(data_dir)
    return runs


def _unet_volumes(data_dir: Path) -> tuple[list[int], list[int]]:
    """Voxels and 128^3 sliding windows (stride 64, SPEC §2.3) of each preprocessed case."""
    from mlperf_trt import _C
    from mlperf_trt.data.kits19 import KiTS19
    from mlperf_trt.harness.pipelines.unet3d import ROI

    volumes = KiTS19().prepare(data_dir, show_progress=False)
    shapes = [volumes.shape(i) for i in range(volumes.count)]
    voxels = [d * h * w for d, h, w in shapes]
    windows = [len(_C.kernels.window_origins(*s, roi=ROI, stride=ROI // 2)) for s in shapes]
    return voxels, windows


def _unet(args: argparse.Namespace, rows: list[list[Any]]) -> dict[str, Any]:
    """The probe and the measured 3D-UNet run, appended to `rows`; its figures."""
    # Equal issue (SPEC §2.3): the query's count a multiple of the set size; min_query_count is
    # the Offline query's minimum sample count (config.fields), so one whole pass at least.
    base = [f"synthetic_samples={UNET_CASES}", *args.harness_set]
    probe, cpu = _measured(probe_offline, UNET, PRECISION, [*base, f"min_query_count={UNET_CASES}"])
    rows.append(_row("probe", UNET, "sliding window in C++", "1 case", probe, cpu))
    qps = sized_qps(probe)
    # LoadGen's Offline query is max(min_query_count, floor(1.1 x min duration x expected QPS))
    # samples (SPEC §3.3); under equal issue LoadGen pads what it generates to whole copies of the
    # set (SPEC §3.5: the detail log's generated_samples_per_query), while the summary's
    # samples_per_query stays the requested count. Requesting whole copies (the smallest
    # multiple of the set size at or above the duration's count) keeps the two equal, so the
    # arithmetic below can use the summary's count.
    copies = max(1, math.ceil(1.1 * args.duration_ms / 1000 * qps / UNET_CASES))
    sets = [
        *(s for s in offline_sets(args.duration_ms, qps, []) if not s.startswith("min_query")),
        f"min_query_count={copies * UNET_CASES}",
        *base,
    ]
    r, cpu = _measured(run_cli, UNET, "Offline", precision=PRECISION, duration="short", sets=sets)
    windows_per_batch = int(r.settings["windows_per_batch"])
    rows.append(_row("1", UNET, "sliding window in C++", "1 case", r, cpu))
    voxels, windows = _unet_volumes(Path(r.inputs["data_dir"]))
    spq = int(r.effective.get("samples_per_query", 0) or 0)
    psc = int(r.effective.get("performance_sample_count", 0) or 0)
    whole = psc == len(voxels) and spq > 0 and spq % psc == 0
    issued = spq / len(voxels)  # copies of the set in the query
    # Offline's result is the query's samples over the time from its start to its last
    # completion: that time is the LoadGen test's duration.
    test_s = spq / r.samples_per_second if r.samples_per_second else float("nan")
    query_voxels = issued * sum(voxels)
    query_windows = issued * sum(windows)
    return {
        "probe": probe.to_json(),
        "expected_qps": qps,
        "run": r.to_json(),
        "loadgen": validity(r),
        "cases": len(voxels),
        "voxels_per_case": voxels,
        "windows_per_case": windows,
        "windows_per_batch": windows_per_batch,
        "samples_per_query": spq,
        "performance_sample_count": psc,
        "query_is_whole_copies_of_set": whole,
        "test_s": test_s,
        "samples_per_second": r.samples_per_second,
        "voxels_per_second": query_voxels / test_s,
        "windows_per_second": query_windows / test_s,
    }


def routine_vision_cpu(args: argparse.Namespace) -> dict[str, Any]:
    from mlperf_trt.errors import ConfigError

    if args.repeat < 1:
        raise ConfigError(f"--repeat {args.repeat}: vision-cpu needs at least 1 repetition")
    start = time.perf_counter()
    report: dict[str, Any] = {
        "precision": PRECISION,
        "backend": "ort",
        "retinanet_synthetic_samples": args.samples,
        "unet_synthetic_cases": UNET_CASES,
        "min_duration_ms": args.duration_ms,
        "repeats": args.repeat,
        "harness_set": list(args.harness_set),
    }
    cpus = os.cpu_count() or 1
    report["load_before"], note = load_note()
    print(note)
    rows: list[list[Any]] = []
    runs = _retinanet(args, rows, report)
    unet = _unet(args, rows)
    report["load_after"] = os.getloadavg()[0]
    header = [
        "rep",
        "model",
        "way",
        "batch",
        "samples/s",
        "samples/query",
        "LoadGen",
        "why",
        "child s",
        "child CPUs",
    ]
    report["every_run"] = [dict(zip(header, row, strict=True)) for row in rows]
    print_table(
        f"every run: Offline, FP32, ONNX Runtime, tiny models; min duration {args.duration_ms} ms,"
        " query = 1.1 x duration x expected QPS (probes: --duration smoke); RetinaNet"
        f" {args.samples} synthetic images, 3D-UNet {UNET_CASES} synthetic cases",
        header,
        rows,
    )
    print(
        f"child CPUs: the child's CPU seconds over its wall time (of this machine's {cpus}); a"
        f" run that got clearly fewer than {cpus} shared the cores with other work"
    )

    raw, official = median_rate(runs[RAW]), median_rate(runs[OFFICIAL])
    paired = paired_ratio(runs[RAW], runs[OFFICIAL])
    report["retinanet"] = {
        "raw_median": raw,
        "official_median": official,
        "raw_over_official": raw / official,
        "paired_ratio_median": paired,
        "runs": {way: [r.to_json() for r in rs] for way, rs in runs.items()},
        "postprocess_note": _postprocess_note(),
    }
    print_table(
        f"RetinaNet tiny, medians of {args.repeat} (expected QPS"
        f" {report['retinanet_expected_qps']:g} for both ways; a run INVALID for 'min duration'"
        " ran its query faster than that, its samples/s still measured)",
        ["way", "median samples/s", "(min-max)", "LoadGen VALID"],
        [
            [
                WAYS[way],
                median_rate(rs),
                spread(rs),
                f"{sum(r.valid for r in rs)}/{len(rs)}",
            ]
            for way, rs in runs.items()
        ],
    )
    print(
        f"a/b: {raw / official:.2f}x (medians), {paired:.2f}x (median paired ratio); same raw"
        f" network in both: {report['retinanet_same_network']}"
    )
    print(_postprocess_note())

    report["unet"] = unet
    print_table(
        f"{UNET} tiny: {unet['cases']} cases, {sum(unet['voxels_per_case']):,} voxels,"
        f" {sum(unet['windows_per_case'])} windows of 128^3 (stride 64),"
        f" {unet['windows_per_batch']} windows per engine batch",
        ["cases/s", "voxels/s", "windows/s", "samples/query", "LoadGen test s", "LoadGen"],
        [
            [
                unet["samples_per_second"],
                unet["voxels_per_second"],
                unet["windows_per_second"],
                unet["samples_per_query"],
                unet["test_s"],
                unet["loadgen"],
            ]
        ],
    )
    if unet["query_is_whole_copies_of_set"]:
        print(
            "voxels/s = the query's voxels ((samples/query / set size) copies of the set, equal"
            " issue) over the LoadGen test's duration (samples/query / LoadGen's samples/s)"
        )
    else:
        print(
            "voxels/s is an estimate: the query is not whole copies of the set"
            f" (samples/query {unet['samples_per_query']}, performance_sample_count"
            f" {unet['performance_sample_count']}); it uses the set's mean voxels per case"
        )
    load_after = report["load_after"]
    print(
        f"load average before {report['load_before']:.2f}, after {load_after:.2f} on {cpus} CPUs"
        + (
            ": the machine was busy with other work during the runs, figures are lower and noisier"
            " than on an idle machine"
            if max(report["load_before"], load_after) > 0.5 * cpus
            else ""
        )
    )
    report["wall_s"] = time.perf_counter() - start
    print(f"routine wall time: {report['wall_s']:.0f} s")
    return report
