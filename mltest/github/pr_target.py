"""Which pull request ``mltest comment`` writes to, decided from facts the workflow trusts.

In the ``workflow_run`` pattern the reports are an artifact of a run of the pull request's own
code, so nothing in them may say where the comment goes. The repository and the pull request
come from the event GitHub hands the trusted workflow (``GITHUB_EVENT_PATH``), or from
``--repo``/``--pr`` that the workflow's author writes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mltest.errors import MltestError
from mltest.github.api import GitHubApi
from mltest.github.context import pull_request_from_event

_REPO = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
_SHA = re.compile(r"[0-9a-f]{7,64}")
PR_EVENTS = ("pull_request", "pull_request_target")

# (repo, head sha) -> GitHub's pull request objects for that commit.
PullsForCommit = Callable[[str, str], list[dict[str, Any]]]


class TargetError(MltestError):
    """The pull request to comment on cannot be known without the workflow saying which."""


@dataclass(frozen=True)
class Target:
    """Where the comment goes.

    Attributes:
        repo: ``owner/name``.
        number: the pull request, or None when the run was not about one (nothing to do).
        why: where the facts came from, in words for the log.
    """

    repo: str
    number: int | None
    why: str


def read_event(path: str | Path) -> dict[str, Any]:
    """The webhook payload GitHub wrote for this workflow run.

    Raises:
        TargetError: the file cannot be read as a JSON object.
    """
    try:
        event = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TargetError(f"the event file {str(path)!r} is unreadable: {exc}") from exc
    if not isinstance(event, dict):
        raise TargetError(f"the event file {str(path)!r} does not hold a JSON object")
    return event


def find_target(
    event: Mapping[str, Any],
    *,
    repo: str | None = None,
    pr: int | None = None,
    default_repo: str = "",
    pulls_for_commit: PullsForCommit | None = None,
) -> Target:
    """Decide the repository and pull request from the event, unless the workflow overrides.

    Args:
        event: the trusted event payload ({} when there is none).
        repo, pr: ``--repo``/``--pr``, which always win.
        default_repo: GITHUB_REPOSITORY, used when neither ``repo`` nor the event names one.
        pulls_for_commit: looks up the pull requests of a commit; needed for a fork's
            ``workflow_run``, whose payload lists no pull request.

    Raises:
        TargetError: the repository or the pull request cannot be told apart from the facts.
    """
    repo = repo or (event.get("repository") or {}).get("full_name") or default_repo
    if not repo or not _REPO.fullmatch(repo):
        raise TargetError(
            f"--repo must be owner/name, got {repo!r}; pass --repo or run in GitHub Actions"
        )
    if pr is not None:
        if pr <= 0:
            raise TargetError(f"--pr must be a positive number, got {pr}")
        return Target(repo, pr, "--pr")
    run = event.get("workflow_run")
    if isinstance(run, Mapping):
        return _from_workflow_run(repo, event, run, pulls_for_commit)
    found = pull_request_from_event(event)
    if found is not None:
        return Target(repo, found.number, "the event's pull request")
    raise TargetError(
        "no pull request to comment on: run `mltest comment` from a workflow_run workflow "
        "(it reads GITHUB_EVENT_PATH) or pass --pr NUMBER"
    )


def _from_workflow_run(
    repo: str,
    event: Mapping[str, Any],
    run: Mapping[str, Any],
    pulls_for_commit: PullsForCommit | None,
) -> Target:
    head_sha = str(run.get("head_sha") or "")
    # GitHub fills pull_requests by branch name; keep only PRs of this repository whose head
    # is the repository the run came from, so a fork's branch named like ours cannot borrow
    # our pull request.
    base_id = (event.get("repository") or {}).get("id")
    head_id = (run.get("head_repository") or {}).get("id")
    numbers = sorted(
        {
            int(p["number"])
            for p in run.get("pull_requests") or []
            if ((p.get("base") or {}).get("repo") or {}).get("id") == base_id
            and ((p.get("head") or {}).get("repo") or {}).get("id") == head_id
        }
    )
    why = f"workflow run {run.get('id')} of {head_sha[:7]}"
    if not numbers:
        if run.get("event") not in PR_EVENTS:
            return Target(repo, None, f"{why} was triggered by {run.get('event')!r}")
        numbers = _open_pulls_of(repo, head_sha, pulls_for_commit)
        why += " (pull request found by its head commit)"
    if len(numbers) > 1:
        raise TargetError(
            f"{why} belongs to several pull requests ({', '.join(map(str, numbers))}); "
            "pass --pr NUMBER to choose one"
        )
    return Target(repo, numbers[0], why)


def _open_pulls_of(repo: str, sha: str, pulls_for_commit: PullsForCommit | None) -> list[int]:
    """Open PRs into ``repo`` whose head is ``sha``: how a fork's run finds its PR."""
    if not _SHA.fullmatch(sha) or pulls_for_commit is None:
        raise TargetError(
            f"the workflow_run event names no pull request (a fork's run) and head commit "
            f"{sha!r} cannot be looked up; pass --pr NUMBER"
        )
    numbers = sorted(
        {
            int(p["number"])
            for p in pulls_for_commit(repo, sha)
            if p.get("state") == "open"
            and (p.get("head") or {}).get("sha") == sha
            and ((p.get("base") or {}).get("repo") or {}).get("full_name") == repo
        }
    )
    if not numbers:
        raise TargetError(
            f"no open pull request in {repo} has head commit {sha[:12]} (closed, or pushed "
            "again since); pass --pr NUMBER to comment anyway"
        )
    return numbers


class PullsApi(GitHubApi):
    """GitHubApi plus the one call only ``mltest comment`` needs."""

    def pulls_for_commit(self, repo: str, sha: str) -> list[dict[str, Any]]:
        """GitHub's pull requests whose commits include ``sha`` (first 100 are plenty)."""
        return self._request("GET", f"/repos/{repo}/commits/{sha}/pulls?per_page=100").json()
