"""The sticky PR comment: its hidden marker, its body (one or several reports), and the
find-then-update-or-create logic that keeps one comment per suite."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from mltest.github.api import GitHubApi
from mltest.render import safe
from mltest.render.markdown import GITHUB_COMMENT_LIMIT as COMMENT_LIMIT
from mltest.render.markdown import render_markdown, truncate
from mltest.report import Report, Verdict

_ID_RE = re.compile(r"^[A-Za-z0-9._/+]+(-[A-Za-z0-9._/+]+)*$")
_ICONS = {Verdict.PASS: "✅", Verdict.FAIL: "❌", Verdict.ERROR: "💥"}


def validate_comment_id(value: str) -> str:
    """Return ``value`` if it can sit inside an HTML comment marker, else raise ValueError."""
    if not _ID_RE.match(value) or len(value) > 100:
        raise ValueError(
            f"comment-id must be 1-100 characters from letters, digits and . _ / + - "
            f"(no leading, trailing or doubled '-'), got {value!r}"
        )
    return value


def default_comment_id(reports: Sequence[Report]) -> str:
    """A comment id derived from the suite names, so matrix jobs keep separate comments."""
    return comment_id_for_suites(r.suite for r in reports)


def comment_id_for_suites(names: Iterable[str]) -> str:
    """The comment id for a set of suite names: a slug of the sorted names joined with +."""
    unique = sorted({str(name) or "mltest" for name in names})
    slug = re.sub(r"[^A-Za-z0-9._/+]+", "-", "+".join(unique)).strip("-")
    return slug[:100].rstrip("-") or "mltest"


def marker(comment_id: str) -> str:
    """The hidden first line that identifies mltest's comment for one suite."""
    return f"<!-- mltest:comment-id={comment_id} -->"


def worst_verdict(reports: Iterable[Report]) -> Verdict:
    """error beats fail beats pass: the verdict of several reports shown together."""
    verdicts = {r.verdict for r in reports}
    for verdict in (Verdict.ERROR, Verdict.FAIL):
        if verdict in verdicts:
            return verdict
    return Verdict.PASS


def comment_body(
    reports: Sequence[Report],
    *,
    comment_id: str,
    run_url: str | None = None,
    max_chars: int = COMMENT_LIMIT,
) -> str:
    """The full comment: marker, then one report's Markdown or an overview of several.

    The renderer shortens details to fit; a last hard cut guarantees ``max_chars``.
    """

    if not reports:
        raise ValueError("comment_body needs at least one report")
    head = marker(comment_id) + "\n"
    budget = max_chars - len(head)
    if len(reports) == 1:
        text = render_markdown(reports[0], run_url=run_url, max_chars=budget)
    else:
        overview = _overview(reports, run_url)
        separator = "\n\n---\n\n"
        share = (budget - len(overview) - len(separator) * len(reports)) // len(reports)
        parts = [render_markdown(r, run_url=run_url, max_chars=max(share, 500)) for r in reports]
        text = overview + separator + separator.join(parts)
    return fit(head + text, max_chars, run_url)


def fit(body: str, max_chars: int, run_url: str | None) -> str:
    """Cut ``body`` to ``max_chars``, close open fences and ``<details>``, say where the rest is."""
    if len(body) <= max_chars:
        return body
    where = f"the [workflow run]({run_url})" if run_url else "the job summary and report.json"
    note = f"\n\n> ✂️ Shortened to fit GitHub's {max_chars:,}-character limit; see {where}.\n"
    return truncate(body, max_chars, note)


def _overview(reports: Sequence[Report], run_url: str | None) -> str:
    verdict = worst_verdict(reports)
    lines = [
        f"## {_ICONS[verdict]} mltest: {verdict.value} ({len(reports)} suites)",
        "",
        "| Suite | Verdict | Passed | Failed | Errors |",
        "|---|---|---|---|---|",
    ]
    for r in reports:
        c = r.counts
        name = safe.cell(r.suite)
        lines.append(
            f"| {name} | {_ICONS[r.verdict]} {r.verdict.value} | {c['pass']} | {c['fail']} "
            f"| {c['error'] + len(r.errors)} |"
        )
    if run_url:
        lines += ["", f"[Workflow run]({run_url})"]
    return "\n".join(lines)


@dataclass(frozen=True)
class CommentOutcome:
    """What happened to the sticky comment.

    Attributes:
        action: ``created``, ``updated`` or ``skipped`` (nothing to update, nothing created).
        url: the comment's web address, empty when skipped.
    """

    action: str
    url: str = ""


def find_sticky(comments: Iterable[dict[str, Any]], comment_id: str, login: str) -> dict | None:
    """The oldest comment by ``login`` whose body starts with the marker for ``comment_id``.

    Checking the author as well as the marker means a comment by someone else that quotes or
    copies the marker is never overwritten.
    """
    mark = marker(comment_id)
    for comment in comments:
        author = (comment.get("user") or {}).get("login")
        if author == login and (comment.get("body") or "").lstrip().startswith(mark):
            return comment
    return None


def upsert_comment(
    api: GitHubApi, repo: str, number: int, comment_id: str, body: str, *, create: bool = True
) -> CommentOutcome:
    """Update mltest's comment for ``comment_id`` on PR ``number`` in place, else create it.

    Args:
        create: when False, only an existing comment is updated (``comment: on-failure`` uses
            this so a passing run corrects an earlier failure without adding noise).

    Raises:
        GitHubApiError: the comment could not be listed, created or updated.
    """
    if not body.startswith(marker(comment_id)):
        raise ValueError("comment body must start with its marker (use comment_body)")
    login = api.authenticated_login()
    existing = find_sticky(api.list_issue_comments(repo, number), comment_id, login)
    if existing is not None:
        updated = api.update_issue_comment(repo, existing["id"], body)
        return CommentOutcome("updated", updated.get("html_url", ""))
    if not create:
        return CommentOutcome("skipped")
    created = api.create_issue_comment(repo, number, body)
    return CommentOutcome("created", created.get("html_url", ""))
