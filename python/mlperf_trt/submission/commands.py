"""The CLI of the submission layer: `audit`, `submit` and `report` (DESIGN §1, §2).

`add_commands(subparsers)` registers the three commands on the CLI's subparsers; each parser gets
a `handler` default (`handler(args) -> int`: 0 ok, 1 problems found or a test failed, 2 bad input),
so the CLI dispatches with ``args.handler(args)``. `main(argv)` is a standalone entry with the same
commands, used until the CLI registers them.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mlperf_trt.errors import MlperfTrtError

if TYPE_CHECKING:
    from mlperf_trt.harness.runner import RunRequest

__all__ = [
    "EXIT_ERROR",
    "EXIT_FAILED",
    "EXIT_OK",
    "add_commands",
    "cmd_audit",
    "cmd_report",
    "cmd_submit",
    "main",
]

EXIT_OK, EXIT_FAILED, EXIT_ERROR = 0, 1, 2
Handler = Callable[[argparse.Namespace], int]


def _guarded(handler: Handler) -> Handler:
    """Typed errors become a one-line message and exit code 2 (as the CLI does for `run`)."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except MlperfTrtError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_ERROR

    run.__name__ = handler.__name__
    return run


def _add_run_options(p: argparse.ArgumentParser) -> None:
    """The options of `run` that decide what is measured (the audited run's flags)."""
    from mlperf_trt.benchmarks import DEFAULT_ROUND, SCENARIOS
    from mlperf_trt.config import DURATIONS

    p.add_argument("--model", required=True, help="benchmark and variant, e.g. resnet50")
    p.add_argument("--scenario", required=True, help=" | ".join(SCENARIOS))
    p.add_argument("--backend", default="auto", help="null | ort | trt | auto")
    p.add_argument("--duration", default="full", choices=DURATIONS, help="as for run")
    p.add_argument("--round", default=DEFAULT_ROUND, help=f"v4.1 | v5.0 (default {DEFAULT_ROUND})")
    p.add_argument("--results-dir", type=Path, default=Path("results"))
    p.add_argument("--config", type=Path, action="append", default=[], metavar="FILE.toml")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides")
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--model-path", type=Path, default=None)
    p.add_argument("--model-size", default=None, help="built-in model size: full | tiny")
    p.add_argument("--precision", default=None, help="fp32 | fp16 | bf16 | int8 | fp8")
    p.add_argument("--engines-dir", type=Path, default=Path("engines"))
    p.add_argument("--no-progress", action="store_true")


def add_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Registers `audit`, `submit` and `report`; each parser's `handler` default runs it."""
    p = subparsers.add_parser(
        "audit", help="run compliance tests (TEST01/04/05/06) against a finished run"
    )
    _add_run_options(p)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--test", choices=("TEST01", "TEST04", "TEST05", "TEST06"))
    which.add_argument(
        "--all", action="store_true", help="every test the round requires, each in a fresh process"
    )
    p.set_defaults(handler=_guarded(cmd_audit))

    p = subparsers.add_parser("submit", help="stage the submission tree and self-check it")
    p.add_argument("--submitter", required=True, help="the organisation's folder name")
    p.add_argument("--division", required=True, choices=("closed", "open"))
    p.add_argument("--results-dir", type=Path, default=Path("results"))
    p.add_argument("--out", type=Path, required=True, help="new folder for the tree")
    p.add_argument(
        "--system-json", type=Path, default=None, help="system fields detection cannot know"
    )
    p.add_argument("--round", default=None, help="v4.1 | v5.0 (default v5.0)")
    p.set_defaults(handler=_guarded(cmd_submit))

    p = subparsers.add_parser("report", help="a table of every run, and a latency plot")
    p.add_argument("--results-dir", type=Path, default=Path("results"))
    p.add_argument(
        "--out", type=Path, default=Path("report.png"), help="the PNG (default report.png)"
    )
    p.set_defaults(handler=_guarded(cmd_report))


def _run_request(args: argparse.Namespace) -> RunRequest:
    from mlperf_trt.harness.runner import RunRequest

    overrides = list(args.overrides)
    for flag in ("precision", "model_size"):
        value = getattr(args, flag, None)
        if value:
            overrides.append(f"{flag}={value}")
    return RunRequest(
        model=args.model,
        scenario=args.scenario,
        mode="performance",
        duration=args.duration,
        backend=args.backend,
        round=args.round,
        results_dir=args.results_dir,
        config_files=tuple(args.config),
        overrides=tuple(overrides),
        data_dir=args.data_dir,
        model_path=args.model_path,
        engines_dir=args.engines_dir,
        show_progress=not args.no_progress,
    )


def _entry() -> list[str]:
    """How to start `audit` in a fresh process: the CLI once it has the command, else `main`."""
    from mlperf_trt.cli import build_parser

    parser = build_parser()
    for action in parser._subparsers._group_actions if parser._subparsers else ():  # noqa: SLF001
        if isinstance(action, argparse._SubParsersAction) and "audit" in action.choices:
            return [sys.executable, "-m", "mlperf_trt"]
    return [
        sys.executable,
        "-c",
        "import sys; from mlperf_trt.submission.commands import main; sys.exit(main())",
    ]


def _argv_without_all(argv: Sequence[str]) -> list[str]:
    return [a for a in argv if a != "--all"]


def cmd_audit(args: argparse.Namespace, argv: Sequence[str] | None = None) -> int:
    """`audit`: one test here (the LoadGen run in a child process), or `--all`, one process each."""
    from mlperf_trt.benchmarks import check_round, resolve
    from mlperf_trt.submission.compliance import run_audit

    if args.all:
        workload, round_ = resolve(args.model), check_round(args.round)
        tests = workload.rules(round_).compliance_tests
        if not tests:
            print(f"{workload.name} needs no compliance test in {round_} (SPEC §4)")
            return EXIT_OK
        base = _argv_without_all(argv if argv is not None else getattr(args, "argv", sys.argv[1:]))
        worst = EXIT_OK
        for test in tests:
            code = subprocess.call([*_entry(), *base, "--test", test])
            if code == EXIT_ERROR:
                return EXIT_ERROR
            worst = max(worst, code)
        return worst
    outcome = run_audit(_run_request(args), args.test)
    print("=" * 72)
    print(f"{outcome.test} | {outcome.workload.name} | {outcome.scenario} -> {outcome.folder}")
    for text in outcome.report:
        print(text.rstrip())
        print("-" * 72)
    for note in outcome.notes:
        print(f"note: {note}")
    print(f"{outcome.test} is : {'PASS' if outcome.passed else 'FAIL'}")
    print("=" * 72)
    return EXIT_OK if outcome.passed else EXIT_FAILED


def cmd_submit(args: argparse.Namespace) -> int:
    """`submit`: stage the tree (SPEC §5.1), then self-check it (SPEC §6); 1 on problems."""
    from mlperf_trt.benchmarks import DEFAULT_ROUND
    from mlperf_trt.submission.check import check_submission
    from mlperf_trt.submission.tree import stage_submission

    round_ = args.round or DEFAULT_ROUND
    staged = stage_submission(
        args.results_dir,
        args.out,
        submitter=args.submitter,
        division=args.division,
        round_=round_,
        system_json=args.system_json,
    )
    print(f"staged {len(staged.staged)} benchmark/scenario folder(s) into {staged.submitter_dir}")
    for note in staged.ignored:
        print(f"ignored: {note}")
    problems = check_submission(staged.root, round_=round_, results_dir=args.results_dir)
    for p in problems:
        print(f"PROBLEM {p.file}: {p.what} -> {p.fix}")
    if problems:
        print(f"self-check: {len(problems)} problem(s); see docs/submission.md")
        return EXIT_FAILED
    print("self-check: no problems found; run the official checker next (docs/submission.md)")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    """`report`: the table on stdout and the PNG; 1 if a run is INVALID or a test failed."""
    from mlperf_trt.errors import SubmissionError
    from mlperf_trt.submission.report import collect_runs, format_table, plot_latencies

    rows = collect_runs(args.results_dir)
    if not rows:
        raise SubmissionError(f"--results-dir {args.results_dir}: no runs found")
    print(format_table(rows), end="")
    png = plot_latencies(rows, args.out)
    print(f"latency plot: {png}" if png else "latency plot: no Server/SingleStream run")
    bad = any(r.validity == "INVALID" or "FAIL" in r.accuracy for r in rows)
    return EXIT_FAILED if bad else EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry: `python -c 'from mlperf_trt.submission.commands import main; main()'`."""
    from mlperf_trt.cli import _Parser

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _Parser(prog="python -m mlperf_trt")
    add_commands(parser.add_subparsers(dest="command", required=True, parser_class=_Parser))
    args = parser.parse_args(argv)
    args.argv = argv
    return int(args.handler(args))
