"""The two entry points of the GitHub side: the action's run (entrypoint.py) and the
``mltest comment`` command that posts saved reports from a trusted ``workflow_run`` workflow.

Heavy imports (requests, the runner, torch) happen inside the functions, so ``mltest --help``
stays fast.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

EXIT_OK, EXIT_NOT_POSTED, EXIT_USAGE = 0, 1, 2


TOKEN_VARIABLES = ("MLTEST_GITHUB_TOKEN", "INPUT_GITHUB-TOKEN", "INPUT_GITHUB_TOKEN")
SUITE_EXIT_ENV = "MLTEST_SUITE_EXIT_CODE"  # docker mode: how the suite's container ended


def action_main(
    env: Mapping[str, str] | None = None, stream: TextIO | None = None, phase: str = "all"
) -> int:
    """Run the suite as the GitHub Action does and publish it; returns the job's exit code.

    1. read the inputs and the GitHub context (bad input: error annotation, exit 2);
    2. when a GPU is asked for, make sure one is visible;
    3. run the suite in a worker without secrets (it always writes a report);
    4. publish: job summary, annotations, PR comment, outputs;
    5. exit with the verdict's code, filtered by fail-on.

    Args:
        phase: ``all`` (host mode: this process supervises and publishes), ``suite`` (docker
            mode's first container: steps 1-3, no token, exits with the verdict's own code) or
            ``publish`` (docker mode's second container, which runs no user code: steps 1, 4
            and 5 for the report the first one wrote).
    """
    from mltest.process_guard import Cancellation

    # The runner cancels a job with SIGINT, then SIGTERM: from here on they are recorded, the
    # suite stops its worker and the report and comment say "cancelled" before this exits.
    with Cancellation():
        return _action(os.environ if env is None else env, stream, phase)


def _action(env: Mapping[str, str], stream: TextIO | None, phase: str) -> int:
    from mltest.errors import MltestError
    from mltest.github.actions import Actions
    from mltest.github.context import GitHubContext
    from mltest.github.settings import ActionSettings
    from mltest.report import Verdict

    started = time.monotonic()
    out = Actions(env, stream)
    try:
        settings = ActionSettings.from_env(env)
        ctx = GitHubContext.from_env(env)
    except MltestError as exc:
        if phase == "suite":  # no token here; the publish container reads the same inputs
            out.error(str(exc), title="mltest: bad action input")
            return Verdict.ERROR.exit_code
        from mltest.github.early_error import publish_early_error

        return publish_early_error("bad action input", str(exc), env, out)
    # Credentials the workflow allowed for the model code (`allow-secret-env`): kept before
    # every secret-like name is wiped from this process's environment.
    allowed = {name: env[name] for name in settings.allow_secret_env if name in env}
    _forget_token(env)  # read once into the settings; nothing started later inherits it
    publish_by = _publish_deadline(settings.max_time_s, started)

    def give_up(message: str, title: str) -> int:
        """The error as the run's verdict, in the sticky comment, summary and outputs."""
        from mltest.github.early_error import early_error_report, publish_early_error

        if phase == "suite":
            # No token here: the report carries the error to the publish container, which
            # applies fail-on (so this exits with the error's own code, as a verdict would).
            out.error(message, title=f"mltest: {title}")
            report = early_error_report(title, message, settings.config, ctx)
            _write_report(report, settings.report_dir, out)
            return Verdict.ERROR.exit_code
        return publish_early_error(
            title, message, env, out, settings=settings, ctx=ctx, deadline=publish_by
        )

    if phase == "publish":
        report, problem = _report_of_suite_container(settings, env, out)
        if report is None:
            return give_up(problem, "no report")
        return _publish(report, settings, ctx, out, publish_by)

    if settings.require_gpu:
        from mltest.github.preflight import gpu_problem

        problem = gpu_problem()
        if problem:
            return give_up(problem, "no GPU")

    from mltest.github.settings import BaselineMode
    from mltest.render.console import check_line
    from mltest.supervisor import run_suite

    try:
        report = run_suite(
            settings.config,
            settings.report_dir,
            update_baselines=settings.baselines is BaselineMode.UPDATE,
            max_time_s=_suite_time(settings.max_time_s),
            on_result=lambda result: out.log(check_line(result, colour=False)),
            metadata={
                "event": ctx.event_name,
                "pr": ctx.pull_request.number if ctx.pull_request else None,
                "head_sha": ctx.commit_sha,
                "run_url": ctx.run_url,
            },
            pass_env=settings.env,
            allow_secret_env=settings.allow_secret_env,
            environ={**os.environ, **allowed} if allowed else None,
        )
    except Exception:  # a bug in mltest itself: still leave outputs and a readable error
        traceback.print_exc()
        return give_up("mltest crashed before writing a report; see the log", "crash")
    if phase == "suite":
        out.log(f"mltest: {report.suite}: {report.verdict.value}; publishing comes next")
        return report.verdict.exit_code
    return _publish(report, settings, ctx, out, publish_by)


def _suite_time(max_time_s: float | None) -> float | None:
    """The suite's share of input `max-time`: publishing keeps a reserve of its own."""
    from mltest.github.publish import PUBLISH_S

    if max_time_s is None:
        return None
    return max(max_time_s * 0.5, max_time_s - min(PUBLISH_S, 30.0))


def _publish_deadline(max_time_s: float | None, started: float) -> float:
    """When publishing must be done by (monotonic): input `max-time` bounds everything."""
    if max_time_s is None:
        return math.inf  # publishing bounds itself: PUBLISH_S from its start
    return started + max_time_s


def _publish(report, settings, ctx, out, deadline: float) -> int:
    from mltest.github.publish import PUBLISH_S, publish_action
    from mltest.github.settings import FailOn
    from mltest.report import Verdict

    report_path = (settings.report_dir / "report.json").resolve()
    out.log(f"mltest: {report.suite}: {report.verdict.value} ({report_path})")
    deadline = min(deadline, time.monotonic() + PUBLISH_S)
    publish_action(report, report_path, ctx, settings, out, deadline=deadline)
    code = settings.fail_on.exit_code(report.verdict)
    if code == 0 and report.verdict is not Verdict.PASS and settings.fail_on is not FailOn.FAILURE:
        out.log(
            f"mltest: verdict {report.verdict.value}, job passes because fail-on is "
            f"{settings.fail_on.value}"
        )
    return code


def _write_report(report, report_dir: Path, out) -> None:
    from mltest.errors import MltestError
    from mltest.files import atomic_write_text

    try:
        atomic_write_text(report_dir / "report.json", report.to_json())
    except (OSError, MltestError) as exc:
        out.error(f"{report_dir / 'report.json'}: could not write the error report: {exc}")


def _report_of_suite_container(settings, env: Mapping[str, str], out):
    """The report the suite's container wrote, checked against how that container ended.

    The container's exit code is the supervisor's verdict; a report that disagrees with it
    (or a container that ended without finishing the report) is not trusted: error.

    Returns:
        (report, "") or, when there is no readable report, (None, what to say instead).
    """
    from mltest.report import Report

    path = settings.report_dir / "report.json"
    code = env.get(SUITE_EXIT_ENV, "")
    try:
        report = Report.read_json(path)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        out.log(f"mltest: {path}: {exc}")
        why = "no" if isinstance(exc, FileNotFoundError) else "an unreadable"
        return None, (
            f"the suite's container exited with code {code or '(unknown)'} and left {why} "
            f"{path.name} (was it killed, out of memory, or did it fail to start? see the log)"
        )
    if not code.isdigit() or int(code) != report.verdict.exit_code:
        report.errors.append(
            f"the suite's container exited with code {code or '(unknown)'} but its report "
            f"says {report.verdict.value}; the run is treated as an error (was the container "
            "killed, out of memory, or the report changed after the supervisor wrote it?)"
        )
    return report, ""


def _forget_token(env: Mapping[str, str]) -> None:
    """Drop the token, and anything else that looks like a secret, from this process's
    environment once the settings hold it: wiped from /proc/<pid>/environ too, so not even a
    model running as root on the runner finds it there (docs/security.md)."""
    if env is os.environ:
        from mltest.process_guard import forget_secrets
        from mltest.worker_handle import looks_secret

        forget_secrets([*TOKEN_VARIABLES, *(name for name in os.environ if looks_secret(name))])


def add_comment_arguments(parser: argparse.ArgumentParser) -> None:
    """Give the CLI's ``comment`` subparser its arguments and handler (no heavy imports)."""
    parser.description = (
        "Create or update mltest's sticky comment on a pull request from saved reports. "
        "The reports are data from untrusted code: where the comment goes comes from the "
        "workflow_run event (GITHUB_EVENT_PATH) or --repo/--pr, and which comment from "
        "--comment-id or --suite. "
        "The token comes from GITHUB_TOKEN (or GH_TOKEN), the API root from GITHUB_API_URL. "
        "Exit codes: 0 posted (or nothing to do), 1 not posted, 2 bad arguments or report."
    )
    parser.add_argument(
        "--report",
        action="append",
        required=True,
        type=Path,
        metavar="DIR_OR_JSON",
        help="a report.json or the folder holding one; repeat to merge reports",
    )
    parser.add_argument(
        "--event-path",
        default=None,
        type=Path,
        help="the event payload (default: GITHUB_EVENT_PATH); a workflow_run event gives the "
        "repository and the pull request",
    )
    parser.add_argument(
        "--repo", default=None, help="owner/name of the pull request's repo (overrides the event)"
    )
    parser.add_argument(
        "--pr", default=None, type=int, help="pull request number (overrides the event)"
    )
    parser.add_argument("--comment-id", default="", help="sticky comment id; or give --suite")
    parser.add_argument(
        "--suite",
        action="append",
        default=[],
        metavar="NAME",
        help="a suite this workflow expects (repeat); every report must be one of them, and "
        "the comment id is made from these names",
    )
    parser.add_argument(
        "--run-url",
        default=None,
        help="link shown in the comment (e.g. the run that made the reports)",
    )
    parser.set_defaults(handler=comment_main)


def comment_main(
    args: argparse.Namespace, env: Mapping[str, str] | None = None, stream: TextIO | None = None
) -> int:
    """``mltest comment``: merge the given reports into one sticky comment on a pull request.

    1. read the reports and decide the comment id (``--comment-id``, or ``--suite`` names that
       every report must match: a report never picks another suite's comment);
    2. decide the repository and pull request from the trusted event, unless ``--repo``/``--pr``
       say otherwise (a fork's run is looked up by its head commit);
    3. create or update the comment.
    """
    from mltest.github.actions import Actions
    from mltest.github.api import GitHubApiError
    from mltest.github.comment import comment_id_for_suites, validate_comment_id
    from mltest.github.context import DEFAULT_API_URL, GitHubContext
    from mltest.github.pr_target import PullsApi, TargetError, find_target, read_event
    from mltest.github.publish import post_comment
    from mltest.report import Report

    env = os.environ if env is None else env
    out = Actions(env, stream)

    def usage(message: str) -> int:
        print(f"mltest comment: {message}", file=sys.stderr)
        return EXIT_USAGE

    try:
        reports = [Report.read_json(_report_file(p)) for p in args.report]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return usage(str(exc))
    if args.comment_id:
        comment_id = args.comment_id
    elif args.suite:
        strangers = sorted({r.suite for r in reports} - set(args.suite))
        if strangers:
            return usage(
                f"report suite(s) {', '.join(map(repr, strangers))} are not in --suite "
                f"({', '.join(args.suite)}); a report cannot choose which comment it updates. "
                "Add the suite to --suite if it is expected, or give --comment-id"
            )
        comment_id = comment_id_for_suites(args.suite)
    else:
        return usage(
            "say which comment to update: --comment-id ID, or --suite NAME for each suite "
            "you expect (the reports come from the code under test, so their suite names "
            "cannot choose the comment)"
        )
    try:
        validate_comment_id(comment_id)
    except ValueError as exc:
        return usage(str(exc))
    token = env.get("GITHUB_TOKEN") or env.get("GH_TOKEN") or ""
    if not token:
        return usage(
            "set GITHUB_TOKEN (or GH_TOKEN) to a token that can write pull request comments"
        )
    api_url = (env.get("GITHUB_API_URL") or DEFAULT_API_URL).rstrip("/")
    event_path = args.event_path or env.get("GITHUB_EVENT_PATH")
    try:
        with PullsApi(token, api_url) as api:
            target = find_target(
                read_event(event_path) if event_path else {},
                repo=args.repo,
                pr=args.pr,
                default_repo=env.get("GITHUB_REPOSITORY", ""),
                pulls_for_commit=api.pulls_for_commit,
            )
    except TargetError as exc:
        return usage(str(exc))
    except GitHubApiError as exc:
        out.warning(f"mltest comment: could not look up the pull request: {exc}; pass --pr")
        return EXIT_NOT_POSTED
    if target.number is None:
        out.log(f"mltest comment: {target.why}, not a pull request; nothing to comment on")
        return EXIT_OK
    out.log(f"mltest comment: {target.repo}#{target.number} from {target.why}")
    ctx = GitHubContext(repository=target.repo, api_url=api_url)
    outcome = post_comment(
        reports, ctx, target.number, comment_id, token, out, run_url=args.run_url
    )
    if outcome.action == "failed":
        return EXIT_NOT_POSTED
    out.log(outcome.url or f"mltest comment: {outcome.action}")
    return EXIT_OK


def _report_file(path: Path) -> Path:
    return path / "report.json" if path.is_dir() else path
