"""The run's context from real webhook payloads (@octokit/webhooks-examples)."""

from __future__ import annotations

import pytest

from mltest.github.context import ContextError, GitHubContext
from tests.github.conftest import event_file, make_fork


def env_for(event_path, event_name="pull_request", **extra):
    return {
        "GITHUB_REPOSITORY": "Codertocat/Hello-World",
        "GITHUB_EVENT_NAME": event_name,
        "GITHUB_EVENT_PATH": str(event_path),
        "GITHUB_RUN_ID": "42",
        "GITHUB_SHA": "mergesha",
        **extra,
    }


@pytest.mark.parametrize("name", ["pull_request.opened.json", "pull_request.synchronize.json"])
def test_pull_request_events_give_number_and_head_sha(tmp_path, name):
    ctx = GitHubContext.from_env(env_for(event_file(tmp_path, name)))
    assert ctx.pull_request is not None
    assert ctx.pull_request.number > 0
    assert not ctx.pull_request.is_fork
    assert ctx.commit_sha == ctx.pull_request.head_sha != "mergesha"


def test_pull_request_from_a_fork_is_flagged(tmp_path):
    ctx = GitHubContext.from_env(
        env_for(event_file(tmp_path, "pull_request.opened.json", make_fork))
    )
    assert ctx.pull_request.is_fork


@pytest.mark.parametrize(
    ("name", "event"), [("push.json", "push"), ("workflow_dispatch.json", "workflow_dispatch")]
)
def test_events_without_a_pull_request(tmp_path, name, event):
    ctx = GitHubContext.from_env(env_for(event_file(tmp_path, name), event))
    assert ctx.pull_request is None
    assert ctx.commit_sha == "mergesha"


def test_enterprise_urls_and_run_link(tmp_path):
    ctx = GitHubContext.from_env(
        env_for(
            event_file(tmp_path, "push.json"),
            GITHUB_API_URL="https://ghe.example/api/v3/",
            GITHUB_SERVER_URL="https://ghe.example",
            GITHUB_RUN_ATTEMPT="2",
        )
    )
    assert ctx.api_url == "https://ghe.example/api/v3"
    assert ctx.run_url == "https://ghe.example/Codertocat/Hello-World/actions/runs/42/attempts/2"


def test_missing_repository_and_unreadable_event_are_named(tmp_path):
    with pytest.raises(ContextError, match="GITHUB_REPOSITORY"):
        GitHubContext.from_env({})
    with pytest.raises(ContextError, match="GITHUB_EVENT_PATH"):
        GitHubContext.from_env(env_for(tmp_path / "missing.json"))
