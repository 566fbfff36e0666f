"""`python -m mlperf_trt COMMAND`: argument parsing and display only (DESIGN §2).

Exit codes: 0 done (and, for `run`, every LoadGen result VALID); 1 a run finished INVALID;
2 bad input or a failure, with a message naming the flag, file or field.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from mlperf_trt.errors import ConfigError, MlperfTrtError

EXIT_OK, EXIT_INVALID, EXIT_ERROR = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_ERROR, f"error: {message}\n")


def _add_run_args(p: argparse.ArgumentParser) -> None:
    from mlperf_trt.benchmarks import DEFAULT_ROUND, SCENARIOS
    from mlperf_trt.config import DURATIONS

    p.add_argument(
        "--model",
        required=True,
        help="benchmark and variant, e.g. resnet50, bert-99.9, gptj-99 (see `list`)",
    )
    p.add_argument("--scenario", required=True, help=" | ".join(SCENARIOS))
    p.add_argument(
        "--mode",
        default="performance",
        choices=("performance", "accuracy", "submission"),
        help="submission = an accuracy run, then a performance run (default performance)",
    )
    p.add_argument(
        "--duration",
        default="full",
        choices=DURATIONS,
        help="smoke: seconds; short: about a minute; full: official (default)",
    )
    p.add_argument(
        "--backend", default="auto", help="null | ort | trt | auto (default: the best usable here)"
    )
    p.add_argument("--round", default=DEFAULT_ROUND, help=f"v4.1 | v5.0 (default {DEFAULT_ROUND})")
    p.add_argument(
        "--results-dir",
        type=Path,
        default=Path("results"),
        help="root of the result tree (default ./results)",
    )
    p.add_argument(
        "--config",
        type=Path,
        action="append",
        default=[],
        metavar="FILE.toml",
        help="settings file (repeatable; later files win)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        dest="overrides",
        help="override one setting (repeatable; see `config --list`)",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="the data set's official raw folder (default: synthetic data)",
    )
    p.add_argument(
        "--model-path",
        type=Path,
        default=None,
        help="run this ONNX model (checked against the model card) instead of the built-in one",
    )
    p.add_argument("--precision", default=None, help="fp32 | fp16 | bf16 | int8 | fp8")
    p.add_argument("--model-size", default=None, help="built-in model size: full | tiny")
    p.add_argument(
        "--gpus", default=None, help="trt: GPUs to use, one worker group each ('all' or 0,1,...)"
    )
    p.add_argument(
        "--engines-dir",
        type=Path,
        default=Path("engines"),
        help="root of the engine cache (default ./engines)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress lines")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m mlperf_trt",
        description="MLPerf Inference harness (TensorRT / ONNX Runtime, real LoadGen)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("list", help="the benchmarks, their rules and accuracy targets")
    p.add_argument("--round", default=None, help="v4.1 | v5.0 (default v5.0)")

    sub.add_parser("info", help="system, build and usable backends")

    p = sub.add_parser("config", help="the settings registry")
    p.add_argument("--list", action="store_true", help="every setting with its type and unit")

    p = sub.add_parser("run", help="run one benchmark scenario through LoadGen")
    _add_run_args(p)

    for name, what in (
        ("build", "build (or find in the cache) the engine a run needs"),
        ("calibrate", "compute the INT8 calibration cache (an int8 build) and show it"),
    ):
        p = sub.add_parser(name, help=what)
        p.add_argument("--model", required=True)
        p.add_argument("--backend", default="auto", help="ort | trt | null | auto")
        p.add_argument("--scenario", default="Offline", help="the scenario whose defaults apply")
        p.add_argument("--precision", default=None, help="fp32 | fp16 | bf16 | int8 | fp8")
        p.add_argument(
            "--batch-size",
            type=int,
            nargs="+",
            default=None,
            metavar="N",
            help="the batch sizes the engine serves (TensorRT: one optimisation profile each);"
            " the largest is the run's batch_size",
        )
        p.add_argument(
            "--gpus", default=None, help="GPUs to use: 'all' (default) or a list such as 0,1"
        )
        p.add_argument("--model-size", default=None, help="full | tiny")
        p.add_argument("--model-path", type=Path, default=None)
        p.add_argument("--data-dir", type=Path, default=None)
        p.add_argument("--engines-dir", type=Path, default=Path("engines"))
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides")
        p.add_argument("--no-progress", action="store_true")

    p = sub.add_parser(
        "prepare", help="preprocess a data set into the cache (or make a synthetic one)"
    )
    p.add_argument("--model", required=True)
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="the official raw folder; with --synthetic, where to write the set",
    )
    p.add_argument(
        "--synthetic",
        type=int,
        default=None,
        metavar="N",
        help="write N synthetic samples in the official raw layout, then prepare them",
    )
    p.add_argument(
        "--model-path",
        type=Path,
        default=None,
        help="label synthetic data with this model instead of the built-in one",
    )
    p.add_argument("--model-size", default="full", choices=("full", "tiny"))
    p.add_argument("--no-progress", action="store_true")

    p = sub.add_parser("accuracy", help="score an mlperf_log_accuracy.json")
    p.add_argument("--model", required=True)
    p.add_argument("--log", type=Path, required=True, help="path of mlperf_log_accuracy.json")
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="the data set the log was run on (default: from resolved_config.json)",
    )
    p.add_argument("--round", default="v5.0")

    from mlperf_trt.submission.commands import add_commands

    add_commands(sub)  # audit, submit, report (the submission layer's commands)
    return parser


def _cmd_list(args: argparse.Namespace) -> int:
    from mlperf_trt.benchmarks import DEFAULT_ROUND
    from mlperf_trt.benchmarks.table import render_table

    print(render_table(args.round or DEFAULT_ROUND))
    return EXIT_OK


def _cmd_info(args: argparse.Namespace) -> int:
    from mlperf_trt import backends, build_info
    from mlperf_trt.harness.loadgen import loadgen_version
    from mlperf_trt.system import detect

    system = detect()
    print(f"system id   : {system.system_id}")
    print(f"host        : {system.hostname} ({system.os_name})")
    print(
        f"CPU         : {system.cpu_model}; {system.cpu_sockets} socket(s), "
        f"{system.cpu_cores} cores, {system.cpu_threads} usable threads, "
        f"{system.numa_nodes} NUMA node(s)"
    )
    flags = sorted(
        f
        for f in system.cpu_flags
        if f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_int8", "amx_bf16")
    )
    print(f"CPU features: {', '.join(flags) or 'none of avx2/avx512/amx'}")
    print(f"memory      : {system.memory_bytes / 2**30:.1f} GiB")
    if system.gpus:
        for gpu in system.gpus:
            print(f"GPU {gpu.index}       : {gpu.name}, {gpu.memory_mib} MiB ({gpu.uuid})")
    else:
        print("GPUs        : none found")
    print(f"LoadGen     : mlcommons-loadgen {loadgen_version()}")
    print("build       : " + json.dumps(build_info(), sort_keys=True))
    for name in backends.BACKENDS:
        ok, why = backends.availability(name)
        print(f"backend {name:<4}: {'usable' if ok else 'unusable'} - {why}")
    return EXIT_OK


def _cmd_config(args: argparse.Namespace) -> int:
    from mlperf_trt.config import describe_fields

    print(describe_fields())
    return EXIT_OK


def _print_outcome(outcome: object) -> None:
    from mlperf_trt.harness.runner import RunOutcome
    from mlperf_trt.results import format_summary

    assert isinstance(outcome, RunOutcome)
    o = outcome
    print("=" * 72)
    print(
        f"{o.workload.name} | {o.scenario} | {o.mode} | backend {o.backend} | "
        f"duration {o.config.duration}"
    )
    print(f"backend     : {o.backend_note}")
    for note in o.notes:
        print(note)
    print(format_summary(o.summary), end="")
    if o.accuracy is not None:
        print(f"Accuracy    : {o.accuracy.line}")
        for line in o.accuracy_lines:
            print(f"  {line}")
        print(f"Accuracy is : {'PASS' if o.accuracy_passed else 'FAIL'}")
    print(
        f"Harness     : {o.stats.completed_samples:,} samples in {o.stats.batches:,} batches "
        f"(batch_size {o.config['batch_size']}, {o.config['worker_groups']} group(s) x "
        f"{o.config['workers']} worker(s); batches per group:"
        f" {', '.join(str(b) for b in o.stats.batches_per_group)})"
    )
    if o.not_submittable:
        print("Submittable : no")
        for reason in o.not_submittable:
            print(f"  - {reason}")
    else:
        print("Submittable : yes (settings, seeds and validity as the checker reads them)")
    print(f"Results     : {o.result_dir}")
    print("=" * 72)


def _run_submission(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """An accuracy run, then a performance run, each in a fresh process (SPEC §3.4, §6.5)."""
    worst = EXIT_OK
    for mode in ("accuracy", "performance"):
        cmd = [sys.executable, "-m", "mlperf_trt", *_replace_mode(argv, mode)]
        code = subprocess.call(cmd)
        if code == EXIT_ERROR:
            return EXIT_ERROR
        worst = max(worst, code)
    return worst


def _replace_mode(argv: Sequence[str], mode: str) -> list[str]:
    out: list[str] = []
    skip = False
    for i, a in enumerate(argv):
        if skip:
            skip = False
            continue
        if a == "--mode":
            skip = i + 1 < len(argv)
            continue
        if a.startswith("--mode="):
            continue
        out.append(a)
    return [*out, "--mode", mode]


def _flag_overrides(args: argparse.Namespace) -> list[str]:
    """The --set items plus the flags that are shorthands for settings (--precision, ...)."""
    overrides = list(args.overrides)
    for flag in ("precision", "model_size", "batch_size", "gpus"):
        value = getattr(args, flag, None)
        if isinstance(value, list):  # build's --batch-size N [N ...]: the largest is the run's
            overrides.append(f"engine_batch_sizes={','.join(str(v) for v in sorted(value))}")
            value = max(value)
        if value:
            overrides.append(f"{flag}={value}")
    return overrides


def _cmd_run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from mlperf_trt.harness.runner import RunRequest, run

    if args.mode == "submission":
        return _run_submission(args, argv)
    overrides = _flag_overrides(args)
    outcome = run(
        RunRequest(
            model=args.model,
            scenario=args.scenario,
            mode=args.mode,
            duration=args.duration,
            backend=args.backend,
            round=args.round,
            results_dir=args.results_dir,
            config_files=tuple(args.config),
            overrides=tuple(overrides),
            model_path=args.model_path,
            engines_dir=args.engines_dir,
            data_dir=args.data_dir,
            show_progress=not args.no_progress,
        )
    )
    _print_outcome(outcome)
    if outcome.mode == "performance" and not outcome.summary.valid:
        return EXIT_INVALID
    if outcome.accuracy_passed is False:
        return EXIT_INVALID
    return EXIT_OK


def _cmd_build(args: argparse.Namespace, calibrate: bool) -> int:
    from mlperf_trt.harness.runner import RunRequest, build

    if calibrate:
        if args.precision not in (None, "int8"):
            raise ConfigError(
                f"calibrate computes INT8 scales; --precision {args.precision} has none"
            )
        args.precision = "int8"
    overrides = _flag_overrides(args)
    outcome = build(
        RunRequest(
            model=args.model,
            scenario=args.scenario,
            backend=args.backend,
            overrides=tuple(overrides),
            data_dir=args.data_dir,
            model_path=args.model_path,
            engines_dir=args.engines_dir,
            show_progress=not args.no_progress,
        )
    )
    print(f"{outcome.workload.name} on {outcome.backend}: {outcome.backend_note}")
    if outcome.engine is None:
        print("engine      : none (the null backend builds nothing)")
        return EXIT_OK
    print(f"engine      : {outcome.engine} ({'cache hit' if outcome.cache_hit else 'built'})")
    if outcome.calibration_cache is not None:
        from mlperf_trt.backends.calibration import read_calibration_cache

        cache = read_calibration_cache(outcome.calibration_cache)
        print(
            f"calibration : {outcome.calibration_cache} ({cache.method}, "
            f"{len(cache.tensors)} tensors)"
        )
    elif calibrate:
        extra = outcome.recipe.get("extra")
        if isinstance(extra, dict) and extra.get("int8_mode") == "dynamic":
            raise ConfigError(
                f"{outcome.workload.name}'s {outcome.backend} INT8 engine scales activations per"
                " batch (dynamic quantisation, backends/ort.py INT8_MODES): it has no calibration"
                " cache; calibrate for TensorRT with --backend trt"
            )
        raise ConfigError(
            f"the {outcome.recipe.get('precision')} build has no calibration cache: calibration"
            " is for INT8 and FP8 builds (--precision int8 or fp8)"
        )
    print("recipe      : " + json.dumps(outcome.recipe, sort_keys=True))
    return EXIT_OK


def _cmd_prepare(args: argparse.Namespace) -> int:
    from mlperf_trt.benchmarks import resolve
    from mlperf_trt.harness.inputs import prepare_dataset

    data = prepare_dataset(
        resolve(args.model),
        data_dir=args.data_dir,
        synthetic=args.synthetic,
        model_path=args.model_path,
        size=args.model_size,
        show_progress=not args.no_progress,
    )
    print(f"raw data : {data.raw_dir}")
    if data.synthetic:
        print(
            f"truth    : the FP32 model's own output (its score on the set:"
            f" {data.fp32_reference:.3f})"
        )
    print(f"prepared : {data.prepared.count} samples in {data.prepared.path}")
    return EXIT_OK


def _cmd_accuracy(args: argparse.Namespace) -> int:
    from mlperf_trt.benchmarks import check_round, resolve
    from mlperf_trt.harness.pipelines import score_log

    report, passed, lines = score_log(
        resolve(args.model), args.log, data_dir=args.data_dir, round_=check_round(args.round)
    )
    print(report.line)
    for line in lines:
        print(line)
    print("PASS" if passed else "FAIL")
    return EXIT_OK if passed else EXIT_INVALID


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.command == "list":
            return _cmd_list(args)
        if args.command == "info":
            return _cmd_info(args)
        if args.command == "config":
            return _cmd_config(args)
        if args.command == "run":
            return _cmd_run(args, argv)
        if args.command == "prepare":
            return _cmd_prepare(args)
        if args.command in ("build", "calibrate"):
            return _cmd_build(args, calibrate=args.command == "calibrate")
        if args.command == "accuracy":
            return _cmd_accuracy(args)
        if hasattr(args, "handler"):
            return int(args.handler(args))
    except MlperfTrtError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_ERROR  # pragma: no cover - argparse requires a command
