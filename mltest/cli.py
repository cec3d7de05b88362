"""The `mltest` command. Imports stay lazy so `mltest --help` never loads torch."""

from __future__ import annotations

import argparse
import math
import os
import sys

from mltest import __version__

EXIT_CODES = (
    "exit codes: 0 all checks passed, 1 a check failed, 2 the suite could not run completely "
    "(bad config, import error, a check that errored or ran out of time, or the run was "
    "cancelled by SIGINT/SIGTERM)"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mltest",
        description="Test that ML model code still learns and still predicts what it should.",
        epilog=EXIT_CODES,
    )
    parser.add_argument("--version", action="version", version=f"mltest {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = commands.add_parser("run", help="run the suite and write the report", epilog=EXIT_CODES)
    _suite_args(run)
    run.set_defaults(handler=_run)

    baseline = commands.add_parser("baseline", help="manage stored baselines")
    baseline_commands = baseline.add_subparsers(dest="baseline_command", metavar="ACTION")
    update = baseline_commands.add_parser(
        "update",
        help="record or rewrite baselines and golden outputs on purpose (commit the result)",
    )
    _suite_args(update)
    update.set_defaults(handler=_baseline_update)
    baseline.set_defaults(handler=lambda args: _usage(baseline))
    _evaluation_commands(commands, update)

    init = commands.add_parser(
        "init",
        help="complete a partial mltest.yaml (model, data, trainer) from a short exploration: "
        "task kind, a memorization target every seed reaches, the checks that fit",
        description="Explore the model and data module (in a worker process) and write a "
        "commented mltest.yaml: the task kind, a memorization target every seed reaches with "
        "margin, max_epochs with headroom, and the checks that run on this project. Give "
        "--config for a file holding model, data and trainer (completed in place, your lines "
        "and comments kept), or --model and --data to start a new one.",
        epilog="exit codes: 0 written, 1 written but the model did not memorize (memorization "
        "left out, the reason in the file), 2 nothing explored (bad options or config, a "
        "project that does not load)",
    )
    _init_args(init)
    init.set_defaults(handler=_init)

    # mltest comment: post saved reports from a trusted workflow (see docs/github-action.md).
    comment = commands.add_parser("comment", help="post saved report(s) as the sticky PR comment")
    try:
        from mltest.github.commands import add_comment_arguments
    except ImportError:  # the GitHub side is optional for laptop use
        comment.set_defaults(handler=lambda args: _usage(comment))
    else:
        add_comment_arguments(comment)
    return parser


def _suite_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", default="mltest.yaml", help="path to mltest.yaml (default: %(default)s)"
    )
    parser.add_argument(
        "--report-dir",
        default="mltest-report",
        help="where report.json, report.md and junit.xml go (default: %(default)s)",
    )
    parser.add_argument(
        "--check",
        action="append",
        metavar="NAME",
        help="run only this check (repeatable): memorization, sanity, regression, "
        "key_examples, evaluation",
    )
    parser.add_argument(
        "--max-time",
        type=_positive_seconds,
        metavar="SECONDS",
        help="time budget for the whole suite; the check running when it ends is an error",
    )
    _env_args(parser)
    parser.add_argument(
        "--allow-outside-repo",
        action="store_true",
        help="allow baseline_dir to resolve outside the config's repository (a command-line "
        "flag, so a pull request that edits the config cannot grant it to itself)",
    )


def _init_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", default="mltest.yaml", help="the config to complete or create "
        "(default: %(default)s)"
    )
    parser.add_argument("--model", metavar="MODULE:CLASS", help="LightningModule import path, "
                        "relative to the config's folder (writes a new config)")
    parser.add_argument("--data", metavar="MODULE:CLASS", help="LightningDataModule import path")
    parser.add_argument("--model-args", default="{}", metavar="YAML",
                        help="the model's init_args, e.g. '{lr: 0.01}'")
    parser.add_argument("--data-args", default="{}", metavar="YAML",
                        help="the data module's init_args, e.g. '{batch_size: 32}'")
    parser.add_argument("--trainer", default="{}", metavar="YAML",
                        help="Lightning Trainer arguments, e.g. '{accelerator: cpu}' (default: "
                        "accelerator auto, one device)")
    parser.add_argument("--max-epochs", type=_positive_int, default=300, metavar="N",
                        help="epochs each seed explores, the most memorization's max_epochs "
                        "can be (default: %(default)s)")
    parser.add_argument("--batches", type=_positive_int, default=1, metavar="N",
                        help="training batches to memorize (default: %(default)s)")
    parser.add_argument("--time-budget", type=_positive_seconds, default=1800.0,
                        metavar="SECONDS", help="stop the exploration after this long "
                        "(default: %(default)g)")
    _env_args(parser)


def _env_args(parser: argparse.ArgumentParser) -> None:
    """`--env NAME` / `--env NAME=value` (`--pass-env` is the older spelling) and the names
    that look like credentials but may pass: see mltest/env_request.py."""
    parser.add_argument(
        "--env",
        "--pass-env",
        dest="pass_env",
        action="append",
        default=[],
        metavar="NAME[=VALUE]",
        help="give the model code this environment variable (repeatable): NAME copies it from "
        "this environment, NAME=VALUE sets it; by default the model code sees only an "
        "allow-list (PATH, HOME, locale, CUDA_*, ...) and never a token",
    )
    parser.add_argument(
        "--allow-secret-env",
        action="append",
        default=[],
        metavar="NAME",
        help="let --env pass this variable although its name looks like a credential "
        "(TOKEN, SECRET, PASSWORD, KEY, ...; repeatable)",
    )


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1 or int(text) > 1_000_000:
        raise argparse.ArgumentTypeError(f"expected a whole number 1..1000000, got {text!r}")
    return int(text)


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _run(args: argparse.Namespace) -> int:
    return _suite(args, update=False)


def _baseline_update(args: argparse.Namespace) -> int:
    return _suite(args, update=True)


def _suite(args: argparse.Namespace, *, update: bool) -> int:
    from mltest.process_guard import forget_secrets
    from mltest.render.console import check_line, closing
    from mltest.supervisor import run_suite
    from mltest.worker_handle import looks_secret

    colour = sys.stdout.isatty()
    mode = "recording baselines" if update else "running checks"
    _say(f"mltest {__version__}: {mode} from {args.config}")
    environ = dict(os.environ)  # the worker's is filtered from this (--pass-env included)
    # Nothing in this process needs a secret: gone from /proc/<pid>/environ too, which the
    # model code could read on a runner that runs as root.
    forget_secrets([name for name in environ if looks_secret(name)])
    report = run_suite(
        args.config,
        args.report_dir,
        environ=environ,
        update_baselines=update,
        only=args.check,
        on_result=lambda result: _say(check_line(result, colour=colour)),
        max_time_s=args.max_time,
        allow_outside_repo=args.allow_outside_repo,
        pass_env=args.pass_env,
        allow_secret_env=args.allow_secret_env,
        pin_reference=getattr(args, "pin", False),
    )
    _say(closing(report, args.report_dir, colour=colour))
    if update and report.verdict.exit_code == 0:
        _say("baselines written; review them with `git diff` and commit them")
    if getattr(args, "pin", False):
        _say(_pin_outcome(report))
    return report.verdict.exit_code


def _init(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mltest.env_request import EnvRequest
    from mltest.errors import MltestError
    from mltest.init_command import InitOptions, parse_mapping, run_init

    try:
        EnvRequest.parse(args.pass_env, args.allow_secret_env)  # refused: exit 2 before exploring
        options = InitOptions(
            config=Path(args.config),
            model=args.model,
            data=args.data,
            model_args=parse_mapping(args.model_args, "--model-args"),
            data_args=parse_mapping(args.data_args, "--data-args"),
            trainer=parse_mapping(args.trainer, "--trainer"),
            max_epochs=args.max_epochs,
            batches=args.batches,
            time_budget_s=args.time_budget,
            pass_env=tuple(args.pass_env),
            allow_secret_env=tuple(args.allow_secret_env),
        )
    except MltestError as exc:
        _say(str(exc))
        return 2
    _say(f"mltest {__version__}: init {args.config}")
    outcome = run_init(options, say=_say)
    for line in outcome.lines:
        _say(line)
    return outcome.exit_code


# --- the evaluation gate (docs/checks/evaluation.md) -------------------------------------------


def _evaluation_commands(commands, update: argparse.ArgumentParser) -> None:
    """`baseline update --pin` and `hard-examples`: the evaluation gate's on-purpose actions."""
    update.add_argument(
        "--pin",
        action="store_true",
        help="also re-pin the evaluation gate's reference to this result (on purpose: per-PR "
        "updates never move it); see docs/checks/evaluation.md",
    )
    hard = commands.add_parser(
        "hard-examples",
        help="propose a saved report's hardest examples (evaluation gate) as key examples",
    )
    hard.add_argument("--report", default="mltest-report", help="report folder or report.json "
                      "(default: %(default)s)")  # fmt: skip
    hard.add_argument("--out", default="hard_examples.jsonl",
                      help="key-examples table to write (JSONL; default: %(default)s)")  # fmt: skip
    hard.add_argument("--dataset", help="only this data set's examples")
    hard.add_argument("--top", type=_count, metavar="N", help="at most N examples")
    hard.set_defaults(handler=_hard_examples)


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of 1 or more, got {text!r}")
    return int(text)


def _pin_outcome(report) -> str:
    """What `--pin` did: the evaluation gate pins only a result it recorded."""
    from mltest.report import Status

    result = next((c for c in report.checks if c.kind == "evaluation"), None)
    if result is None or result.status is Status.SKIPPED:
        return "--pin: the evaluation check did not run, so no reference was pinned"
    if result.status is not Status.PASS:
        return "--pin: the evaluation result was not recorded, so the reference was not pinned"
    return "--pin: the evaluation gate's reference is pinned to this result"


def _hard_examples(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mltest.render.hard_examples import propose
    from mltest.report import Report

    path = Path(args.report)
    path = path / "report.json" if path.is_dir() else path
    try:
        report = Report.read_json(path)
        done = propose(report, Path(args.out), dataset=args.dataset, top=args.top)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"mltest hard-examples: {path}: {exc}", file=sys.stderr)
        return 2
    _say(
        f"wrote {done.rows} proposed key example(s) to {args.out}; the candidate gets "
        f"{done.wrong_now} of them wrong today. Review them, keep the ones worth a test, and "
        "list the file in checks.key_examples.examples (tag `hard` can have its own "
        "tag_failure_rates entry)."
    )
    if done.by_reference:
        _say(f"{done.by_reference} input(s) were too large to copy and name the data set and "
             "index instead: give them real inputs, or a collate that looks them up.")  # fmt: skip
    return 0


def _say(text: str) -> None:
    """Print, but never let a closed pipe (`mltest run | head`) stop the suite mid-run."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (lives as long as the process)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return args.handler(args)
    except Exception as exc:  # mltest's own failure: exit 2 ("could not run"), not a traceback
        from mltest.errors import describe

        print(f"mltest: error: mltest itself failed: {describe(exc)}", file=sys.stderr)
        return 2
