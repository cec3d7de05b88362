"""The sticky comment against a loopback GitHub: create, update, keep suites apart, leave
other people's comments alone, page through long threads, survive 5xx, stay within limits."""

from __future__ import annotations

import pytest

from mltest.github.api import ACTIONS_BOT_LOGIN
from mltest.github.comment import (
    COMMENT_LIMIT,
    comment_body,
    default_comment_id,
    marker,
    upsert_comment,
    validate_comment_id,
)
from mltest.report import Status
from tests.github.conftest import JOB_TOKEN, USER_TOKEN, make_report

REPO = "Codertocat/Hello-World"


def post(make_api, report, *, token=JOB_TOKEN, comment_id=None, number=2, create=True):
    comment_id = comment_id or default_comment_id([report])
    body = comment_body([report], comment_id=comment_id, run_url="https://github.com/r/1")
    with make_api(token) as api:
        return upsert_comment(api, REPO, number, comment_id, body, create=create)


def test_first_run_creates_second_run_updates_the_same_comment(github, make_api):
    first = post(make_api, make_report(status=Status.FAIL))
    second = post(make_api, make_report(status=Status.PASS))

    assert (first.action, second.action) == ("created", "updated")
    assert first.url == second.url
    [comment] = github.issue_comments(REPO, 2)
    assert comment["body"].startswith(marker("tabular"))
    assert "all checks passed" in comment["body"]
    assert comment["user"]["login"] == ACTIONS_BOT_LOGIN
    assert [r.method for r in github.calls() if r.method != "GET"] == ["POST", "PATCH"]


def test_two_suites_keep_two_comments(github, make_api):
    post(make_api, make_report("tabular"))
    post(make_api, make_report("images"))
    post(make_api, make_report("images", Status.FAIL))

    bodies = sorted(c["body"].splitlines()[0] for c in github.issue_comments(REPO, 2))
    assert bodies == [marker("images"), marker("tabular")]


def test_comment_by_another_user_with_the_same_marker_is_not_touched(github, make_api):
    impostor = github.add_comment(REPO, 2, marker("tabular") + "\nquoted by a human", "someone")

    outcome = post(make_api, make_report())

    assert outcome.action == "created"
    assert github.comments[impostor["id"]]["body"].endswith("quoted by a human")
    assert len(github.issue_comments(REPO, 2)) == 2


def test_personal_token_finds_its_own_comment_through_get_user(github, make_api):
    github.add_comment(REPO, 2, marker("tabular") + "\nold", ACTIONS_BOT_LOGIN)
    mine = github.add_comment(REPO, 2, marker("tabular") + "\nold", "octocat")

    outcome = post(make_api, make_report(), token=USER_TOKEN)

    assert outcome.action == "updated"
    assert github.comments[mine["id"]]["body"] != marker("tabular") + "\nold"
    assert [r.status for r in github.calls() if r.path == "/user"] == [200]


def test_finds_the_comment_on_the_second_of_two_pages(github, make_api):
    for i in range(119):
        github.add_comment(REPO, 2, f"chatter {i}", "someone")
    sticky = github.add_comment(REPO, 2, marker("tabular") + "\nold", ACTIONS_BOT_LOGIN)

    outcome = post(make_api, make_report())

    assert outcome.action == "updated"
    assert github.comments[sticky["id"]]["body"] != marker("tabular") + "\nold"
    pages = [r.query.get("page", ["1"])[0] for r in github.calls("GET") if "comments" in r.path]
    assert pages == ["1", "2"]
    assert len(github.issue_comments(REPO, 2)) == 120


def test_server_error_is_retried_then_succeeds(github, make_api, sleeps):
    github.fail_next("POST", r".*/comments", 502, times=2)

    outcome = post(make_api, make_report())

    assert outcome.action == "created"
    assert sleeps == [0.5, 1.0]  # exponential backoff from backoff_s
    assert len(github.issue_comments(REPO, 2)) == 1


@pytest.mark.parametrize(
    ("status", "headers", "message", "expected_wait"),
    [
        (403, {"Retry-After": "7"}, "You have exceeded a secondary rate limit", 7.0),
        (429, {"Retry-After": "3"}, "Too many requests", 3.0),
        (403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "0"}, "API rate limit", 1.0),
    ],
    ids=["secondary-403", "429", "primary-reset-past"],
)
def test_rate_limits_wait_as_github_says(
    github, make_api, sleeps, status, headers, message, expected_wait
):
    github.fail_next("GET", r".*/comments", status, headers=headers, body={"message": message})

    assert post(make_api, make_report()).action == "created"
    assert sleeps == [expected_wait]


def test_rate_limit_longer_than_max_wait_fails_at_once(github, make_api, sleeps):
    from mltest.github.api import GitHubApiError

    github.fail_next(
        "GET", r".*/comments", 429, headers={"Retry-After": "3600"}, body={"message": "slow down"}
    )

    with pytest.raises(GitHubApiError, match="rate limited for 3600 s"):
        post(make_api, make_report())
    assert sleeps == []


def test_publishing_never_waits_past_the_runs_deadline(github, make_api, sleeps):
    # A Retry-After the client would honour on its own is not waited for when the run's time
    # (input max-time, or the publishing budget) ends first: publishing ends too.
    import time

    from mltest.github.api import GitHubApiError

    github.fail_next(
        "GET", r".*/comments", 503, headers={"Retry-After": "20"}, body={"message": "busy"}
    )
    report = make_report()
    body = comment_body([report], comment_id="tabular")
    with make_api(JOB_TOKEN) as api:
        api.deadline = time.monotonic() + 5
        with pytest.raises(GitHubApiError, match="only while the run's time lasts"):
            upsert_comment(api, REPO, 2, "tabular", body)
        api.deadline = time.monotonic() - 1
        with pytest.raises(GitHubApiError, match="the time for publishing ran out"):
            upsert_comment(api, REPO, 2, "tabular", body)
    assert sleeps == []


def test_permission_403_is_not_retried(github, make_api, sleeps):
    from mltest.github.api import GitHubApiError

    github.read_only_repos.add(REPO)

    with pytest.raises(GitHubApiError) as info:
        post(make_api, make_report())
    assert info.value.status == 403
    assert "Resource not accessible by integration" in str(info.value)
    assert sleeps == []
    assert JOB_TOKEN not in str(info.value)


def test_on_failure_mode_updates_but_never_creates(github, make_api):
    assert post(make_api, make_report(), create=False).action == "skipped"
    assert github.issue_comments(REPO, 2) == []


def test_oversized_report_is_shortened_within_the_limit(github, make_api):
    huge = "\n".join(f"| row {i} | {'x' * 60} |" for i in range(5000))  # ~350,000 characters

    outcome = post(make_api, make_report(status=Status.FAIL, details=huge))

    [comment] = github.issue_comments(REPO, 2)
    assert outcome.action == "created"
    assert len(comment["body"]) <= COMMENT_LIMIT
    assert "shortened" in comment["body"]
    assert "https://github.com/r/1" in comment["body"]


def test_merged_comment_shows_every_suite(github, make_api):
    reports = [make_report("tabular"), make_report("images", Status.FAIL)]
    body = comment_body(reports, comment_id="all", run_url=None)

    assert body.startswith(marker("all"))
    assert "mltest: fail (2 suites)" in body
    assert "| tabular |" in body and "| images |" in body
    assert len(body) <= COMMENT_LIMIT


def test_hard_cut_keeps_the_limit_and_closes_details():
    from mltest.github.comment import fit

    body = "<details>\n" + "y" * 70_000
    cut = fit(body, COMMENT_LIMIT, "https://run")
    assert len(cut) <= COMMENT_LIMIT
    assert cut.count("</details>") == 1
    assert "https://run" in cut


@pytest.mark.parametrize("bad", ["", "a b", "x-->y", "-lead", "<!--", "a" * 101])
def test_comment_id_must_fit_in_the_marker(bad):
    with pytest.raises(ValueError, match="comment-id must be"):
        validate_comment_id(bad)


def test_default_comment_id_is_a_slug_of_the_suites():
    reports = [make_report("My Suite"), make_report("b")]
    assert default_comment_id(reports) == "My-Suite+b"
    validate_comment_id(default_comment_id(reports))
