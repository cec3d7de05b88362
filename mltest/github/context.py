"""What the workflow run is about: repository, event, pull request, run link.

Read once from the environment GitHub Actions sets (and the event payload it points to), so
the rest of the code takes plain values and tests can build a context by hand.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mltest.errors import MltestError

DEFAULT_API_URL = "https://api.github.com"
DEFAULT_SERVER_URL = "https://github.com"


class ContextError(MltestError):
    """The GitHub Actions environment is missing something mltest needs, or is malformed."""


@dataclass(frozen=True)
class PullRequest:
    """The pull request a run is about.

    Attributes:
        number: the PR number (also its issue number, which the comments API takes).
        head_sha: the commit the PR's author pushed (not the merge commit in GITHUB_SHA).
        is_fork: the head branch lives in another repository, so the job token is read-only.
    """

    number: int
    head_sha: str
    is_fork: bool


@dataclass(frozen=True)
class GitHubContext:
    """The facts about the current workflow run that publishing needs.

    Attributes:
        repository: ``owner/name`` of the repository the workflow runs in.
        api_url: REST API root (differs on GitHub Enterprise Server).
        server_url: web root, for links to the run.
        event_name: ``pull_request``, ``push``, ``workflow_dispatch``...
        sha: GITHUB_SHA (for PRs, the merge commit).
        run_id: the workflow run's id, for the link to the run.
        run_attempt: which attempt of the run this is.
        pull_request: the PR when the event is about one, else None.
        workspace: GITHUB_WORKSPACE, the checkout's folder ("" outside Actions).
    """

    repository: str
    api_url: str = DEFAULT_API_URL
    server_url: str = DEFAULT_SERVER_URL
    event_name: str = ""
    sha: str = ""
    run_id: str = ""
    run_attempt: str = ""
    pull_request: PullRequest | None = None
    workspace: str = ""

    @property
    def run_url(self) -> str | None:
        """Link to the workflow run (and attempt) in the web UI, when the run id is known."""
        if not self.run_id:
            return None
        url = f"{self.server_url}/{self.repository}/actions/runs/{self.run_id}"
        if self.run_attempt and self.run_attempt != "1":
            url += f"/attempts/{self.run_attempt}"
        return url

    @property
    def commit_sha(self) -> str:
        """The commit a reader of the PR recognises: the PR head, else GITHUB_SHA."""
        return self.pull_request.head_sha if self.pull_request else self.sha

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> GitHubContext:
        """Build the context from the variables GitHub Actions sets.

        Raises:
            ContextError: GITHUB_REPOSITORY is missing, or GITHUB_EVENT_PATH names a file that
                cannot be read as JSON.
        """
        repository = env.get("GITHUB_REPOSITORY", "")
        if "/" not in repository:
            raise ContextError(
                f"GITHUB_REPOSITORY must be 'owner/name', got {repository!r}; "
                "run inside GitHub Actions or set it"
            )
        event: dict = {}
        event_path = env.get("GITHUB_EVENT_PATH", "")
        if event_path:
            try:
                event = json.loads(Path(event_path).read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise ContextError(
                    f"GITHUB_EVENT_PATH {event_path!r} is unreadable: {exc}"
                ) from exc
        return cls(
            repository=repository,
            api_url=(env.get("GITHUB_API_URL") or DEFAULT_API_URL).rstrip("/"),
            server_url=(env.get("GITHUB_SERVER_URL") or DEFAULT_SERVER_URL).rstrip("/"),
            event_name=env.get("GITHUB_EVENT_NAME", ""),
            sha=env.get("GITHUB_SHA", ""),
            run_id=env.get("GITHUB_RUN_ID", ""),
            run_attempt=env.get("GITHUB_RUN_ATTEMPT", ""),
            pull_request=pull_request_from_event(event),
            workspace=env.get("GITHUB_WORKSPACE", ""),
        )


def pull_request_from_event(event: Mapping) -> PullRequest | None:
    """The PR an event payload is about, or None (push, workflow_dispatch, schedule...).

    Handles ``pull_request``/``pull_request_target`` payloads and ``issue_comment`` on a PR.
    """
    pr = event.get("pull_request")
    if isinstance(pr, Mapping) and "number" in pr:
        head = pr.get("head") or {}
        base = pr.get("base") or {}
        head_repo = (head.get("repo") or {}).get("full_name")
        base_repo = (base.get("repo") or {}).get("full_name")
        # A deleted fork leaves head.repo null: still not this repository, still read-only.
        is_fork = head_repo is None or (base_repo is not None and head_repo != base_repo)
        return PullRequest(number=int(pr["number"]), head_sha=head.get("sha", ""), is_fork=is_fork)
    issue = event.get("issue")
    if isinstance(issue, Mapping) and issue.get("pull_request") and "number" in issue:
        return PullRequest(number=int(issue["number"]), head_sha="", is_fork=False)
    return None
