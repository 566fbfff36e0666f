"""One driver for the project's measurements: `python benchmarks/run.py ROUTINE [options]`.

Routines (each in benchmarks/routines/, one module per domain):
  harness       the harness (C++ core, null backend) against a bare LoadGen run with an empty
                Python SUT on the same settings: Offline samples/s as a ratio, Server achieved QPS
                and p99 latency at a target. Each LoadGen test runs in its own child process
                (LoadGen takes one user.conf per process, SPEC §3.4); bare and harness alternate,
                and the table reports every repetition and the median ratio.
  kernels       the CPU kernels (and their CUDA twins where a GPU is present): throughput per
                size; the SampleStore row gather and the DLRMv2 embedding-bag in GB/s against numpy
                (`src[idx]`, `table[ids].sum(axis=1)`) and, on a GPU, against the card's own
                cudaMemcpy D2D / H2D bandwidth measured in the same run; RetinaNet decode + NMS in
                images/s and the 3D-UNet sliding window in voxels/s against the numpy references
                (models.retinanet_post, models.sliding_window), with their exactness.
  resnet50-cpu  resnet50 Offline on ONNX Runtime (FP32, INT8) through the harness against a plain
                session.run loop on the same engine and batches; preprocessing images/s.
  bert-cpu      tiny BERT on a synthetic SQuAD set, ONNX Runtime: Offline samples/s with and
                without length grouping (length_buckets=auto vs none), FP32 and INT8, alternating
                and repeated, medians and the grouped/ungrouped ratio; the padding grouping saves
                (real tokens vs tokens run), from the C++ Scheduler over the whole set, and on an
                official SQuAD folder too with --data-dir.
  dlrm-cpu      tiny DLRMv2 on a synthetic Criteo set, ONNX Runtime: the embedding-bag gather in
                GB/s of table rows read (C++ against numpy, on the set's own multi-hot ids);
                Offline pairs/s and samples/s (FP32, INT8); the Server QPS reached under the 60 ms
                p99 bound (SPEC §2.8) from a short search over server_target_qps.
  vision-cpu    tiny RetinaNet and 3D-UNet, FP32, ONNX Runtime, Offline: RetinaNet samples/s of the
                raw-head model (decode + NMS in C++) against the same network in the reference
                ONNX interface (NMS in the graph, --model-path), alternating and repeated, medians
                and the paired ratio; 3D-UNet cases/s and voxels/s. Its LoadGen runs are
                `run` child processes too, as below.

The LoadGen runs of bert-cpu and dlrm-cpu are `python -m mlperf_trt run` child processes; data
sets and engines are cached under ./data and ./engines of the current folder, as for `run`.
Each routine prints a table and writes JSON to benchmarks/out/<routine>.json (or --out).
Timings are measurements, never test assertions (DESIGN §7).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DRIVER = Path(__file__).resolve()  # what the routines start their own child processes with


# --- timing helper --------------------------------------------------------------------------
def time_it(fn: Callable[[], object], *, repeat: int = 5, min_time: float = 0.2) -> float:
    """Best seconds per call of `fn` over `repeat` rounds of at least `min_time` each."""
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeat):
        calls = 0
        start = time.perf_counter()
        while True:
            fn()
            calls += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_time:
                break
        best = min(best, elapsed / calls)
    return best


def print_table(title: str, header: list[str], rows: list[list[Any]]) -> None:
    cells = [header] + [[f"{c:,.4g}" if isinstance(c, float) else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    print(f"\n{title}")
    for i, r in enumerate(cells):
        print("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)))
        if i == 0:
            print("  ".join("-" * w for w in widths))


def write_json(routine: str, data: object, out: Path | None) -> Path:
    path = out or HERE / "out" / f"{routine}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path


@dataclass(frozen=True)
class Routine:
    module: str  # under benchmarks/routines/
    function: str  # (args) -> the JSON report; {} in a child process


# The registry; a routine's module is imported only when it runs. A module may define DEFAULTS,
# its values for the shared options below that the user left out.
ROUTINES = {
    "harness": Routine("harness", "routine_harness"),
    "kernels": Routine("kernels", "routine_kernels"),
    "resnet50-cpu": Routine("resnet50_cpu", "routine_resnet50_cpu"),
    "bert-cpu": Routine("bert_cpu", "routine_bert_cpu"),
    "dlrm-cpu": Routine("dlrm_cpu", "routine_dlrm_cpu"),
    "vision-cpu": Routine("vision_cpu", "routine_vision_cpu"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("routine", choices=sorted(ROUTINES))
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--model", default="resnet50", help="harness: the workload")
    parser.add_argument(
        "--repeat", type=int, default=None, help="repetitions (harness, bert-cpu; default 3)"
    )
    parser.add_argument(
        "--duration-ms",
        type=int,
        default=None,
        help="LoadGen min duration (harness, resnet50-cpu: 5000; bert-cpu: 8000; dlrm-cpu: 10000)",
    )
    parser.add_argument(
        "--offline-qps",
        type=float,
        default=None,
        help="Offline expected QPS (harness: 2e6; bert-cpu, dlrm-cpu: measured by a smoke probe)",
    )
    parser.add_argument(
        "--server-qps",
        type=float,
        default=None,
        help="Server target QPS (harness: 40000; dlrm-cpu: the search's first try)",
    )
    parser.add_argument(
        "--harness-set",
        action="append",
        default=[],
        help="extra --set for the harness side (e.g. batch_size=128); every run of bert-cpu and"
        " dlrm-cpu",
    )
    parser.add_argument("--model-size", default="full", choices=("full", "tiny"))
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument(
        "--samples",
        type=int,
        default=None,
        help="synthetic_samples of the set (bert-cpu: 400; dlrm-cpu: 500)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="bert-cpu: an official-format SQuAD folder (dev-v1.1.json, vocab.txt) to compute the"
        " padding figures on as well",
    )
    parser.add_argument(
        "--server-tries", type=int, default=4, help="dlrm-cpu: Server runs of the QPS search"
    )
    parser.add_argument(
        "--server-min-qps",
        type=float,
        default=5.0,
        help="dlrm-cpu: the search stops below this QPS (a smoke Server run is 600 queries)",
    )
    parser.add_argument(
        "--server-precision", default="int8", help="dlrm-cpu: precision of the Server search"
    )
    parser.add_argument("--child-precision", help=argparse.SUPPRESS)
    parser.add_argument("--scenario", default="Offline", help=argparse.SUPPRESS)
    parser.add_argument("--child", choices=("bare", "harness"), help=argparse.SUPPRESS)
    parser.add_argument("--child-settings", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    return parser


def main() -> int:
    args = build_parser().parse_args()
    # The routines import the helpers above with `from run import ...`; run as a script, this
    # module is `__main__`, so name it `run` too rather than let that import load a second copy.
    sys.modules.setdefault("run", sys.modules[__name__])
    routine = ROUTINES[args.routine]
    module = importlib.import_module(f"routines.{routine.module}")
    for key, value in getattr(module, "DEFAULTS", {}).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    report = getattr(module, routine.function)(args)
    if not args.child:
        print(f"\nwrote {write_json(args.routine, report, args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
