"""`bert-cpu`: what length grouping buys on the tiny BERT (issue 5's measurements).

Offline samples/s of `python -m mlperf_trt run --model bert-99 --backend ort --model-size tiny`
children on one synthetic SQuAD set, FP32 and INT8, each with length grouping
(`length_buckets=auto`: batches never mix buckets and run at their bucket's bound) and without
(`length_buckets=none`: every batch runs the full 384 tokens, SPEC §2.4). The two runs of a
precision get the same min duration and expected QPS, so LoadGen issues them the same query;
they alternate, and the table gives every repetition, the medians and their ratio.

The padding figures replay the batching on the whole set: the C++ Scheduler (the run's own,
with the set's sequence lengths as costs, the bucket bounds and the run's batch size) forms the
batches; a batch runs its bucket's bound x its size tokens grouped, 384 x its size ungrouped.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

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
DEFAULTS = {"duration_ms": 8000, "repeat": 3, "samples": 400}
MODEL = "bert-99"
PRECISIONS = ("fp32", "int8")
GROUPINGS = (("grouped", "auto"), ("ungrouped", "none"))  # (label, length_buckets)
NO_OFFICIAL = (
    "official length distribution: not derived; it needs the official dev-v1.1.json (and its"
    " vocab.txt), which is not on this machine. Pass --data-dir DIR (an official-format SQuAD"
    " folder) to compute the padding figures on it as well."
)


def scheduler_padding(lengths: np.ndarray, bounds: tuple[int, ...], batch: int) -> dict[str, Any]:
    """Tokens run over the whole set with and without length grouping, from the C++ Scheduler.

    Grouped: the Scheduler with `bounds` forms the batches (as an Offline run does: everything
    issued, then flushed); each runs at the bound of its bucket. Ungrouped: every sample runs at
    384 (length_buckets=none). Trimmed only (not a mode of the harness; for comparison): the
    Scheduler without buckets, samples in a seeded random order as LoadGen issues them, each batch
    cut to the bound of its longest sample.
    """
    from mlperf_trt import _C
    from mlperf_trt.harness.pipelines.bert import MAX_SEQ_LEN

    h = _C.harness
    costs = np.ascontiguousarray(lengths, dtype=np.uint32)
    n = len(costs)
    edges = np.asarray(bounds, dtype=np.int64)

    def drain(scheduler: Any, order: list[int]) -> tuple[int, int]:
        scheduler.issue(order, order)
        scheduler.flush()
        tokens = batches = seen = 0
        while scheduler.queued:
            _ids, indices, _cost, longest = scheduler.next_batch()
            bound = int(edges[min(int(np.searchsorted(edges, longest)), len(edges) - 1)])
            tokens += bound * len(indices)
            batches += 1
            seen += len(indices)
        scheduler.stop()
        if seen != n:
            raise SystemExit(f"the Scheduler handed out {seen} of {n} samples")
        return tokens, batches

    grouped, grouped_batches = drain(
        h.Scheduler(h.BatchPolicy(batch, 0, 0, list(bounds)), costs), list(range(n))
    )
    # Buckets never mix, so a sample always runs at its own bucket's bound: a closed form of the
    # same figure, printed beside it as a check of the replay.
    closed_form = int(edges[np.searchsorted(edges, costs)].sum())
    order = [int(i) for i in np.random.default_rng(0).permutation(n)]
    trimmed, _ = drain(h.Scheduler(h.BatchPolicy(batch, 0, 0, []), costs), order)
    real = int(costs.sum())
    ungrouped = MAX_SEQ_LEN * n
    per_bucket = np.bincount(np.searchsorted(edges, costs), minlength=len(edges))
    return {
        "samples": n,
        "batch_size": batch,
        "bucket_bounds": list(bounds),
        "samples_per_bucket": [int(c) for c in per_bucket],
        "length_min_median_mean_max": [
            int(costs.min()),
            float(np.median(costs)),
            float(costs.mean()),
            int(costs.max()),
        ],
        "real_tokens": real,
        "grouped_tokens": grouped,
        "grouped_batches": grouped_batches,
        "grouped_tokens_closed_form": closed_form,
        "ungrouped_tokens": ungrouped,
        "trimmed_only_tokens": trimmed,
        "padding_share_grouped": 1 - real / grouped,
        "padding_share_ungrouped": 1 - real / ungrouped,
        "tokens_saved_by_grouping": 1 - grouped / ungrouped,
        "ungrouped_over_grouped_tokens": ungrouped / grouped,
    }


def _print_padding(title: str, p: dict[str, Any]) -> None:
    lo, med, mean, hi = p["length_min_median_mean_max"]
    real = p["real_tokens"]
    rows = [
        ["real (sum of input_mask)", real, 1.0, "-"],
        [
            f"grouped, buckets {','.join(map(str, p['bucket_bounds']))}",
            p["grouped_tokens"],
            p["grouped_tokens"] / real,
            f"{p['padding_share_grouped']:.1%}",
        ],
        ["ungrouped (384 x size)", p["ungrouped_tokens"], p["ungrouped_tokens"] / real, ""],
        [
            "trimmed only (no grouping; for comparison)",
            p["trimmed_only_tokens"],
            p["trimmed_only_tokens"] / real,
            f"{1 - real / p['trimmed_only_tokens']:.1%}",
        ],
    ]
    rows[2][3] = f"{p['padding_share_ungrouped']:.1%}"
    print_table(
        f"{title}: {p['samples']} features, lengths min {lo} / median {med:g} / mean {mean:.1f}"
        f" / max {hi}; batch {p['batch_size']}, {p['grouped_batches']} grouped batches",
        ["tokens run", "tokens", "x real", "padding share"],
        rows,
    )
    print(
        f"samples per bucket {p['samples_per_bucket']}; grouping runs"
        f" {p['tokens_saved_by_grouping']:.1%} fewer tokens than 384-padding"
        f" (ungrouped/grouped {p['ungrouped_over_grouped_tokens']:.2f}x); replay"
        f" {p['grouped_tokens']:,} = closed form {p['grouped_tokens_closed_form']:,}:"
        f" {p['grouped_tokens'] == p['grouped_tokens_closed_form']}"
    )


def _official_lengths(data_dir: Path) -> np.ndarray:
    from mlperf_trt.data.squad import DEV_JSON, Squad
    from mlperf_trt.errors import DataError

    if not (Path(data_dir) / DEV_JSON).is_file():
        raise DataError(
            f"--data-dir {data_dir}: no {DEV_JSON} there; point it at an official-format SQuAD"
            f" v1.1 folder ({DEV_JSON} and vocab.txt)"
        )
    squad = Squad()
    lengths: np.ndarray = squad.sequence_lengths(squad.prepare(data_dir, show_progress=False))
    return lengths


def routine_bert_cpu(args: argparse.Namespace) -> dict[str, Any]:
    from mlperf_trt.data.squad import Squad
    from mlperf_trt.errors import ConfigError
    from mlperf_trt.harness.pipelines.bert import DEFAULT_BUCKETS

    if args.repeat < 1:
        raise ConfigError(f"--repeat {args.repeat}: bert-cpu needs at least 1 repetition")
    # The official folder is read first, so that a wrong --data-dir fails before minutes of runs.
    official_lengths = None if args.data_dir is None else _official_lengths(args.data_dir)
    base = [f"synthetic_samples={args.samples}", *args.harness_set]
    report: dict[str, Any] = {
        "model": f"{MODEL} tiny, ort",
        "synthetic_samples": args.samples,
        "min_duration_ms": args.duration_ms,
        "repeats": args.repeat,
        "harness_set": list(args.harness_set),
    }
    report["load_before"], note = load_note()
    print(note)
    # One expected QPS per precision, for both of its runs: the given one, else sized from what
    # a smoke run with grouping reached (the grouped run then lasts a little over min_duration,
    # the ungrouped one as much longer as it is slower).
    qps: dict[str, float] = {}
    probes: dict[str, Any] = {}
    for precision in PRECISIONS:
        if args.offline_qps:
            qps[precision] = float(args.offline_qps)
            continue
        probe = probe_offline(MODEL, precision, [*base, "length_buckets=auto"])
        probes[precision] = probe.to_json()
        qps[precision] = sized_qps(probe)
    report["expected_qps"] = qps
    report["probes"] = probes
    runs: dict[str, dict[str, list[CliRun]]] = {
        p: {g: [] for g, _ in GROUPINGS} for p in PRECISIONS
    }
    rows = []
    for rep in range(args.repeat):
        for precision in PRECISIONS:
            order = GROUPINGS if rep % 2 == 0 else GROUPINGS[::-1]  # alternate who goes first
            for label, buckets in order:
                sets = offline_sets(
                    args.duration_ms, qps[precision], [*base, f"length_buckets={buckets}"]
                )
                r = run_cli(MODEL, "Offline", precision=precision, duration="short", sets=sets)
                runs[precision][label].append(r)
                samples = int(r.effective.get("samples_per_query", 0) or 0)
                why = r.reasons[0] if r.reasons else ""
                rows.append(
                    [rep + 1, precision, label, r.samples_per_second, samples, validity(r), why]
                )
    print_table(
        f"{MODEL} tiny on ONNX Runtime, Offline, synthetic set of {args.samples} examples:"
        f" every run (min duration {args.duration_ms} ms, query = 1.1 x duration x expected QPS)",
        ["rep", "precision", "length grouping", "samples/s", "samples/query", "LoadGen", "why"],
        rows,
    )
    summary_rows = []
    for precision in PRECISIONS:
        grouped = median_rate(runs[precision]["grouped"])
        ungrouped = median_rate(runs[precision]["ungrouped"])
        report[precision] = {
            "expected_qps": qps[precision],
            "grouped_median": grouped,
            "ungrouped_median": ungrouped,
            "grouped_over_ungrouped": grouped / ungrouped,
            "runs": {g: [r.to_json() for r in rs] for g, rs in runs[precision].items()},
        }
        spread = [spread(runs[precision][g]) for g, _ in GROUPINGS]
        paired = paired_ratio(runs[precision]["grouped"], runs[precision]["ungrouped"])
        report[precision]["paired_ratio_median"] = paired
        summary_rows.append(
            [
                precision,
                qps[precision],
                grouped,
                spread[0],
                ungrouped,
                spread[1],
                grouped / ungrouped,
                paired,
            ]
        )
    print_table(
        f"medians of {args.repeat} (samples/s of every run: a run INVALID for 'min duration' ran"
        " its query faster than the expected QPS, its samples/s still measured)",
        [
            "precision",
            "expected QPS",
            "grouped",
            "(min-max)",
            "ungrouped",
            "(min-max)",
            "grouped/ungrouped",
            "median paired ratio",
        ],
        summary_rows,
    )
    for grouping, _ in GROUPINGS:
        ratio = report["int8"][f"{grouping}_median"] / report["fp32"][f"{grouping}_median"]
        report[f"int8_over_fp32_{grouping}"] = ratio
        print(f"INT8 / FP32 ({grouping}): {ratio:.2f}x")

    first = runs[PRECISIONS[0]]["grouped"][0]
    batch = int(first.settings["batch_size"])
    synthetic_dir = Path(first.inputs["data_dir"])
    squad = Squad()
    lengths = squad.sequence_lengths(squad.prepare(synthetic_dir, show_progress=False))
    report["padding_synthetic"] = scheduler_padding(lengths, DEFAULT_BUCKETS, batch)
    report["padding_synthetic"]["data_dir"] = str(synthetic_dir)
    _print_padding(
        f"padding on the synthetic set ({synthetic_dir.name})", report["padding_synthetic"]
    )
    measured = ", ".join(f"{p} {report[p]['paired_ratio_median']:.2f}x" for p in PRECISIONS)
    print(
        f"grouped/ungrouped: samples/s (median paired ratio) {measured}; tokens run (synthetic"
        " set)"
        f" {report['padding_synthetic']['ungrouped_over_grouped_tokens']:.2f}x"
    )
    if official_lengths is not None:
        official = scheduler_padding(official_lengths, DEFAULT_BUCKETS, batch)
        official["data_dir"] = str(args.data_dir)
        report["padding_official"] = official
        _print_padding(f"padding on {args.data_dir}", official)
    else:
        report["padding_official"] = None
        print(NO_OFFICIAL)
    return report
