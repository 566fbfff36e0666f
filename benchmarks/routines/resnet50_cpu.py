"""`resnet50-cpu`: resnet50 Offline on ONNX Runtime through the harness against a plain
session.run loop on the same engine and batches, FP32 and INT8, plus preprocessing throughput."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from run import DRIVER, print_table

# The driver fills the shared options this routine's user left out with these.
DEFAULTS = {"duration_ms": 5000}


def _child_resnet50(args: argparse.Namespace) -> None:
    """One precision: the harness Offline, then a plain session.run loop on the same batches."""
    import onnxruntime as ort

    from mlperf_trt.data.imagenet import ImageNet
    from mlperf_trt.harness.runner import RunRequest, run

    out = Path(args.child_out)
    overrides = (
        f"precision={args.child_precision}",
        f"model_size={args.model_size}",
        f"min_duration_ms={args.duration_ms}",
        "min_query_count=1",
        f"batch_size={args.batch}",
        *args.harness_set,
    )
    outcome = run(
        RunRequest(
            model="resnet50",
            scenario="Offline",
            backend="ort",
            results_dir=out / "results",
            overrides=overrides,
            show_progress=False,
        )
    )
    resolved = json.loads((outcome.result_dir / "resolved_config.json").read_text())
    inputs = resolved["inputs"]
    prepared = ImageNet().prepare(Path(inputs["data_dir"]), show_progress=False)
    options = ort.SessionOptions()
    threads = int(resolved["settings"]["intra_op_threads"]["value"]) * int(
        resolved["settings"]["workers"]["value"]
    )
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(
        str(Path(inputs["engine_dir"]) / "model.onnx"), options, providers=["CPUExecutionProvider"]
    )
    name = session.get_inputs()[0].name
    batches = [
        prepared.batch(list(range(i, i + args.batch)))[name]
        for i in range(0, min(prepared.count, 8 * args.batch) - args.batch + 1, args.batch)
    ]
    session.run(["ArgMax:0"], {name: batches[0]})
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < args.duration_ms / 1000:
        for b in batches:
            session.run(["ArgMax:0"], {name: b})
            done += len(b)
    loop = done / (time.perf_counter() - start)
    result = {
        "precision": args.child_precision,
        "harness_samples_per_s": outcome.summary.samples_per_second,
        "harness_valid": outcome.summary.valid,
        "loop_samples_per_s": loop,
        "loop_threads": threads,
        "settings": {k: v["value"] for k, v in resolved["settings"].items()},
        "engine": inputs["engine_dir"],
        "model": resolved["notes"][0],
    }
    (out / "result.json").write_text(json.dumps(result))


def routine_resnet50_cpu(args: argparse.Namespace) -> dict[str, Any]:
    if args.child:
        _child_resnet50(args)
        return {}
    from mlperf_trt.data import data_root
    from mlperf_trt.data.imagenet import ImageNet, decode, preprocess

    report: dict[str, Any] = {"model_size": args.model_size, "batch": args.batch}
    rows = []
    for precision in ("fp32", "int8"):
        with tempfile.TemporaryDirectory(prefix="bench-resnet50-") as tmp:
            cmd = [
                sys.executable,
                str(DRIVER),
                "resnet50-cpu",
                "--child",
                "harness",
                "--child-precision",
                precision,
                "--child-out",
                tmp,
                "--model-size",
                args.model_size,
                "--duration-ms",
                str(args.duration_ms),
                "--batch",
                str(args.batch),
                *[f"--harness-set={e}" for e in args.harness_set],
            ]
            subprocess.run(cmd, check=True)
            r = json.loads((Path(tmp) / "result.json").read_text())
        report[precision] = r
        rows.append(
            [
                precision,
                r["harness_samples_per_s"],
                r["loop_samples_per_s"],
                r["harness_samples_per_s"] / r["loop_samples_per_s"],
                "VALID" if r["harness_valid"] else "INVALID",
            ]
        )
    speedup = report["int8"]["harness_samples_per_s"] / report["fp32"]["harness_samples_per_s"]
    report["int8_over_fp32"] = speedup
    print_table(
        f"resnet50 ({args.model_size}) Offline on ONNX Runtime, batch {args.batch}:"
        " harness vs a plain session.run loop (same engine, same batches)",
        ["precision", "harness samples/s", "loop samples/s", "harness/loop", "LoadGen"],
        rows,
    )
    print(f"INT8 / FP32 (harness): {speedup:.2f}x")
    # Preprocessing throughput on the synthetic images the runs used.
    synth = sorted((data_root() / "synthetic").glob("imagenet2012-val-*"))
    if synth:
        raw = synth[-1]
        files = sorted(raw.glob("*.JPEG"))[:64]
        start = time.perf_counter()
        for f in files:
            preprocess(decode(f))
        single = len(files) / (time.perf_counter() - start)
        with tempfile.TemporaryDirectory(prefix="bench-prep-") as tmp:
            start = time.perf_counter()
            prepared = ImageNet().prepare(raw, Path(tmp) / "cache", show_progress=False)
            threaded = prepared.count / (time.perf_counter() - start)
        report["preprocess_images_per_s"] = {"one_thread": single, "prepare_all_threads": threaded}
        print(
            f"preprocessing: {single:.0f} images/s on one thread (decode + resize + kernel);"
            f" prepare (all threads, incl. hashing and writing): {threaded:.0f} images/s"
        )
    print(
        "MLCommons reference implementation: not measured here (its code cannot be fetched on"
        " this machine), so the >= 1.2x comparison is open"
    )
    return report
