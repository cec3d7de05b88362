"""The two entry points of the GitHub side: the action's run (entrypoint.py) and the
``mltest comment`` command that posts saved reports from a trusted ``workflow_run`` workflow.

Heavy imports (requests, the runner, torch) happen inside the functions, so ``mltest --help``
stays fast.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

EXIT_OK, EXIT_NOT_POSTED, EXIT_USAGE = 0, 1, 2


def action_main(env: Mapping[str, str] | None = None, stream: TextIO | None = None) -> int:
    """Run the suite as the GitHub Action does and publish it; returns the job's exit code.

    1. read the inputs and the GitHub context (bad input: error annotation, exit 2);
    2. when a GPU is asked for, make sure one is visible;
    3. run the suite (it always writes a report, even for a bad config);
    4. publish: job summary, annotations, PR comment, outputs;
    5. exit with the verdict's code, filtered by fail-on.
    """
    from mltest.errors import MltestError
    from mltest.github.actions import Actions
    from mltest.github.context import GitHubContext
    from mltest.github.publish import outputs_for, publish_action
    from mltest.github.settings import ActionSettings, FailOn
    from mltest.report import Verdict

    env = os.environ if env is None else env
    out = Actions(env, stream)
    try:
        settings = ActionSettings.from_env(env)
        ctx = GitHubContext.from_env(env)
    except MltestError as exc:
        out.error(str(exc), title="mltest: bad action input")
        out.set_outputs(outputs_for(None, None))
        return Verdict.ERROR.exit_code

    def give_up(message: str, title: str) -> int:
        out.error(message, title=title)
        out.set_outputs(outputs_for(None, None))
        return settings.fail_on.exit_code(Verdict.ERROR)

    if settings.require_gpu:
        from mltest.github.preflight import gpu_problem

        problem = gpu_problem()
        if problem:
            return give_up(problem, "mltest: no GPU")

    from mltest.render.console import check_line
    from mltest.runner import run_suite

    try:
        report = run_suite(
            settings.config,
            settings.report_dir,
            on_result=lambda result: out.log(check_line(result, colour=False)),
            metadata={
                "event": ctx.event_name,
                "pr": ctx.pull_request.number if ctx.pull_request else None,
                "head_sha": ctx.commit_sha,
                "run_url": ctx.run_url,
            },
        )
    except Exception:  # a bug in mltest itself: still leave outputs and a readable error
        traceback.print_exc()
        return give_up("mltest crashed before writing a report; see the log", "mltest: crash")
    report_path = (settings.report_dir / "report.json").resolve()
    out.log(f"mltest: {report.suite}: {report.verdict.value} ({report_path})")
    publish_action(report, report_path, ctx, settings, out)
    code = settings.fail_on.exit_code(report.verdict)
    if code == 0 and report.verdict is not Verdict.PASS and settings.fail_on is not FailOn.FAILURE:
        out.log(
            f"mltest: verdict {report.verdict.value}, job passes because fail-on is "
            f"{settings.fail_on.value}"
        )
    return code


def add_comment_arguments(parser: argparse.ArgumentParser) -> None:
    """Give the CLI's ``comment`` subparser its arguments and handler (no heavy imports)."""
    parser.description = (
        "Create or update mltest's sticky comment on a pull request from saved reports. "
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
    parser.add_argument("--repo", required=True, help="owner/name of the pull request's repo")
    parser.add_argument("--pr", required=True, type=int, help="pull request number")
    parser.add_argument(
        "--comment-id", default="", help="sticky comment id (default: derived from the suite names)"
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
    """``mltest comment``: merge the given reports into one sticky comment on ``--pr``."""
    from mltest.github.actions import Actions
    from mltest.github.comment import default_comment_id, validate_comment_id
    from mltest.github.context import DEFAULT_API_URL, GitHubContext
    from mltest.github.publish import post_comment
    from mltest.report import Report

    env = os.environ if env is None else env
    out = Actions(env, stream)
    try:
        if "/" not in args.repo or args.pr <= 0:
            raise ValueError(
                f"--repo must be owner/name and --pr positive, got {args.repo!r} and {args.pr}"
            )
        reports = [Report.read_json(_report_file(p)) for p in args.report]
        comment_id = validate_comment_id(args.comment_id or default_comment_id(reports))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"mltest comment: {exc}", file=sys.stderr)
        return EXIT_USAGE
    token = env.get("GITHUB_TOKEN") or env.get("GH_TOKEN") or ""
    if not token:
        print(
            "mltest comment: set GITHUB_TOKEN (or GH_TOKEN) to a token that can write "
            "pull request comments",
            file=sys.stderr,
        )
        return EXIT_USAGE
    ctx = GitHubContext(
        repository=args.repo, api_url=(env.get("GITHUB_API_URL") or DEFAULT_API_URL).rstrip("/")
    )
    outcome = post_comment(reports, ctx, args.pr, comment_id, token, out, run_url=args.run_url)
    if outcome.action == "failed":
        return EXIT_NOT_POSTED
    out.log(outcome.url or f"mltest comment: {outcome.action}")
    return EXIT_OK


def _report_file(path: Path) -> Path:
    return path / "report.json" if path.is_dir() else path
