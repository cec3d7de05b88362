"""Publish a finished report from inside a workflow run: job summary, annotations, outputs
and the sticky PR comment. A comment that cannot be posted is a warning, never a lost report
or a changed verdict."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mltest.github.actions import SUMMARY_LIMIT_BYTES, Actions
from mltest.github.api import GitHubApi, GitHubApiError
from mltest.github.comment import (
    CommentOutcome,
    comment_body,
    default_comment_id,
    upsert_comment,
)
from mltest.github.context import GitHubContext
from mltest.github.recorded_baselines import artifact_name, recorded_dir, summary_section
from mltest.github.settings import ActionSettings, BaselineMode, CommentMode
from mltest.report import Report, Status, Verdict

PUBLISH_S = 120.0  # the most time publishing may take (GitHub slow or rate limiting)
FORK_HELP = (
    "Pull requests from forks get a read-only token: post the comment from a separate "
    "workflow_run workflow with `mltest comment` (see docs/github-action.md)."
)


@dataclass(frozen=True)
class Published:
    """What publishing did. ``comment`` is None when no comment was attempted."""

    comment: CommentOutcome | None
    summary_written: bool


def outputs_for(
    report: Report | None,
    report_path: Path | None,
    comment_url: str = "",
    baseline_dir: str = "",
    baseline_artifact: str = "",
) -> dict:
    """The action's outputs; a run that produced no report reads as ``error``."""
    recorded = {"baseline-dir": baseline_dir, "baseline-artifact": baseline_artifact}
    if report is None:
        return {
            "result": Verdict.ERROR.value,
            "passed": "0",
            "failed": "0",
            "errors": "1",
            "report-path": "",
            "comment-url": comment_url,
            **recorded,
        }
    counts = report.counts
    return {
        "result": report.verdict.value,
        "passed": str(counts["pass"]),
        "failed": str(counts["fail"]),
        "errors": str(counts["error"] + len(report.errors)),
        "report-path": str(report_path or ""),
        "comment-url": comment_url,
        **recorded,
    }


def summary_markdown(report: Report, run_url: str | None) -> str:
    """The report's Markdown, shortened by the renderer until it fits the 1 MiB summary."""
    from mltest.render.markdown import render_markdown

    max_chars = SUMMARY_LIMIT_BYTES
    while True:
        text = render_markdown(report, run_url=run_url, max_chars=max_chars)
        size = len(text.encode("utf-8")) + 1
        if size <= SUMMARY_LIMIT_BYTES or max_chars < 1024:
            return text
        # Multi-byte characters make bytes exceed characters; shrink in proportion.
        max_chars = int(max_chars * SUMMARY_LIMIT_BYTES / size * 0.95)


def annotate_failures(report: Report, out: Actions) -> None:
    """One ``::error`` per failing check and per suite-level error, so they show in the UI."""
    for message in report.errors:
        out.error(message, title=f"mltest {report.suite}: suite error")
    for check in report.checks:
        if check.status in (Status.FAIL, Status.ERROR):
            message = check.summary + (f"\n{check.hint}" if check.hint else "")
            out.error(message, title=f"mltest {report.suite}: {check.name} {check.status.value}")


def publish_action(
    report: Report,
    report_path: Path,
    ctx: GitHubContext,
    settings: ActionSettings,
    out: Actions,
    make_api: Callable[[str, str], GitHubApi] = GitHubApi,
    deadline: float | None = None,
) -> Published:
    """Summary, annotations, comment (when the event is a PR and the settings ask), outputs.

    Args:
        deadline: when the comment must be posted by (monotonic); no wait or retry goes past
            it. None: the client's own retry limits only.
    """
    run_url = ctx.run_url
    comment_id = settings.comment_id or default_comment_id([report])
    # Only a run that records baselines hands a folder to the upload step: in a compare run the
    # report (written beside the model code) could point the upload at any folder, .git too.
    recording = settings.baselines is BaselineMode.UPDATE
    folder = recorded_dir(report, ctx.workspace) if recording else ""
    artifact = artifact_name(comment_id) if folder else ""
    summary = summary_markdown(report, run_url)
    if folder:
        summary += "\n" + summary_section(report, ctx, folder, artifact)
    summary_written = out.write_summary(summary)
    annotate_failures(report, out)
    outcome = None
    if settings.comment is CommentMode.OFF:
        out.log("mltest: comment: off, no PR comment")
    elif ctx.pull_request is None:
        out.log(f"mltest: {ctx.event_name or 'this'} event is not about a pull request, no comment")
    else:
        create = settings.comment is CommentMode.ALWAYS or report.verdict is not Verdict.PASS
        outcome = post_comment(
            [report],
            ctx,
            ctx.pull_request.number,
            comment_id,
            settings.token,
            out,
            make_api=make_api,
            create=create,
            is_fork=ctx.pull_request.is_fork,
            deadline=deadline,
        )
    url = outcome.url if outcome else ""
    out.set_outputs(outputs_for(report, report_path, url, folder, artifact))
    return Published(outcome, summary_written)


def post_comment(
    reports: list[Report],
    ctx: GitHubContext,
    number: int,
    comment_id: str,
    token: str,
    out: Actions,
    *,
    make_api: Callable[[str, str], GitHubApi] = GitHubApi,
    create: bool = True,
    is_fork: bool = False,
    run_url: str | None = None,
    deadline: float | None = None,
) -> CommentOutcome:
    """Create or update the sticky comment; API failures become a warning and ``failed``."""
    body = comment_body(reports, comment_id=comment_id, run_url=run_url or ctx.run_url)
    try:
        with make_api(token, ctx.api_url) as api:
            api.deadline = deadline
            outcome = upsert_comment(api, ctx.repository, number, comment_id, body, create=create)
    except GitHubApiError as exc:
        hint = ""
        if exc.status in (401, 403, 404):
            hint = " The token cannot write comments on this pull request."
            hint += (
                f" {FORK_HELP}"
                if is_fork
                else (" Give the job `permissions: pull-requests: write`.")
            )
        out.warning(
            f"mltest could not comment on pull request #{number}: {exc}.{hint} "
            "The verdict and the job summary are unaffected.",
            title="mltest: PR comment not posted",
        )
        return CommentOutcome("failed")
    out.log(f"mltest: {outcome.action} PR comment {outcome.url}".rstrip())
    return outcome
