"""Fixtures for the GitHub side: the loopback GitHub, a fast-retrying client, reports."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from mltest.github.api import GitHubApi, RetryPolicy
from mltest.github.stdlib_http import StdlibSession
from mltest.report import Case, CheckResult, Report, Status
from tests.github.fake_github import FakeGitHub

EVENTS = Path(__file__).parent / "data" / "events"
JOB_TOKEN = "ghs_jobtoken"  # behaves like the job's GITHUB_TOKEN (no GET /user)
USER_TOKEN = "ghp_usertoken"  # a personal token of `octocat`


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        yield fake
    assert fake.validation_errors == [], "requests or responses GitHub's OpenAPI rejects"


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture(params=["requests", "stdlib"])
def make_api(github: FakeGitHub, sleeps: list[float], request):
    """A GitHubApi factory with the publish signature, recording waits instead of sleeping;
    once over `requests` and once over the standard library's HTTP (what the runner's own
    python3 publishes early errors with): the same retries, pages and errors over both."""

    def factory(token: str, api_url: str = "") -> GitHubApi:
        retry = RetryPolicy(attempts=4, backoff_s=0.5, max_wait_s=30, sleep=sleeps.append)
        session = StdlibSession() if request.param == "stdlib" else None
        return GitHubApi(token, api_url or github.url, retry, session=session)

    return factory


def make_report(suite: str = "tabular", status: Status = Status.PASS, details: str = "") -> Report:
    """A small report as the runner writes it, without training anything."""
    checks = [
        CheckResult(
            name="memorization",
            kind="memorization",
            status=status,
            summary="memorized in 14 epochs" if status is Status.PASS else "took 40 epochs",
            details=details or "| seed | epochs |\n|---|---|\n| 0 | 14 |",
            hint="" if status is Status.PASS else "run `mltest baseline update`",
            cases=[Case("seed 0", status)],
        ),
        CheckResult(name="sanity", kind="sanity", status=Status.PASS, summary="all good"),
    ]
    return Report(suite=suite, checks=checks, metadata={"git_sha": "abc123"})


def event_file(tmp_path: Path, name: str, edit=None) -> Path:
    """A real webhook payload from @octokit/webhooks-examples, optionally edited."""
    payload = json.loads((EVENTS / name).read_text())
    if edit:
        edit(payload)
    path = tmp_path / f"event-{name}"
    path.write_text(json.dumps(payload))
    return path


def make_fork(payload: dict) -> None:
    """Turn a same-repo PR payload into one from a fork, as GitHub sends it."""
    head = payload["pull_request"]["head"]
    head["repo"] = {
        **head["repo"],
        "full_name": "forker/Hello-World",
        "name": "Hello-World",
        "owner": {**head["repo"]["owner"], "login": "forker"},
        "fork": True,
    }
    head["label"] = "forker:changes"
    head["user"] = {**head["user"], "login": "forker"}
