"""Publishing from inside a run: summary, annotations, comment and outputs, for each event
kind and each way the comment can fail. The verdict never changes because of GitHub."""

from __future__ import annotations

import io
import json

import pytest

from mltest.github.actions import Actions
from mltest.github.commands import action_main
from mltest.github.context import GitHubContext, PullRequest
from mltest.github.publish import publish_action
from mltest.github.settings import ActionSettings, CommentMode
from mltest.report import Status
from tests.github.conftest import JOB_TOKEN, event_file, make_fork, make_report
from tests.github.test_actions import read_outputs

REPO = "Codertocat/Hello-World"
SAME_REPO_PR = PullRequest(2, "headsha", False)


@pytest.fixture
def runner_files(tmp_path):
    return {"GITHUB_OUTPUT": str(tmp_path / "output"), "GITHUB_STEP_SUMMARY": str(tmp_path / "sum")}


def publish(
    github,
    make_api,
    runner_files,
    report,
    *,
    pr=SAME_REPO_PR,
    comment=CommentMode.ALWAYS,
):
    stream = io.StringIO()
    ctx = GitHubContext(repository=REPO, api_url=github.url, run_id="7", pull_request=pr)
    settings = ActionSettings(comment=comment, token=JOB_TOKEN)
    published = publish_action(
        report, "/r/report.json", ctx, settings, Actions(runner_files, stream), make_api
    )
    return published, stream.getvalue()


def test_failing_report_comments_annotates_and_sets_outputs(
    github, make_api, runner_files, tmp_path
):
    published, log = publish(github, make_api, runner_files, make_report(status=Status.FAIL))

    assert published.comment.action == "created"
    assert "::error title=mltest tabular%3A memorization fail::took 40 epochs" in log
    outputs = read_outputs(tmp_path / "output")
    assert outputs == {
        "result": "fail",
        "passed": "1",
        "failed": "1",
        "errors": "0",
        "report-path": "/r/report.json",
        "comment-url": published.comment.url,
        "baseline-dir": "",
        "baseline-artifact": "",
    }
    assert "checks failed" in (tmp_path / "sum").read_text()


def test_fork_403_is_a_warning_and_the_summary_is_still_written(
    github, make_api, runner_files, tmp_path
):
    github.read_only_repos.add(REPO)

    published, log = publish(
        github, make_api, runner_files, make_report(), pr=PullRequest(2, "headsha", True)
    )

    assert published.comment.action == "failed"
    assert "::warning title=mltest%3A PR comment not posted::" in log
    assert "workflow_run" in log and "HTTP 403" in log
    assert JOB_TOKEN not in log
    assert read_outputs(tmp_path / "output")["result"] == "pass"
    assert "all checks passed" in (tmp_path / "sum").read_text()


def test_on_failure_mode_does_not_create_a_comment_for_a_pass(github, make_api, runner_files):
    published, _ = publish(
        github, make_api, runner_files, make_report(), comment=CommentMode.ON_FAILURE
    )
    assert published.comment.action == "skipped"
    assert github.calls("POST") == []


@pytest.mark.parametrize("comment", [CommentMode.OFF, CommentMode.ALWAYS])
def test_no_pull_request_or_comment_off_makes_no_api_call(
    github, make_api, runner_files, tmp_path, comment
):
    pr = None if comment is CommentMode.ALWAYS else PullRequest(2, "s", False)
    published, log = publish(github, make_api, runner_files, make_report(), pr=pr, comment=comment)
    assert published.comment is None
    assert github.requests == []
    assert "::error" not in log and "::warning" not in log
    assert read_outputs(tmp_path / "output")["comment-url"] == ""


# --- the whole action step in-process: inputs -> run_suite -> publish -> exit code -----------


def action_env(github, tmp_path, event="pull_request.opened.json", edit=None, **inputs):
    return {
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_EVENT_NAME": event.split(".")[0],
        "GITHUB_EVENT_PATH": str(event_file(tmp_path, event, edit)),
        "GITHUB_API_URL": github.url,
        "GITHUB_RUN_ID": "99",
        "GITHUB_OUTPUT": str(tmp_path / "output"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        "MLTEST_GITHUB_TOKEN": JOB_TOKEN,
        "MLTEST_CONFIG": str(tmp_path / "missing.yaml"),
        "MLTEST_REPORT_DIR": str(tmp_path / "report"),
        **inputs,
    }


def test_bad_config_is_an_error_verdict_that_is_still_published(github, tmp_path):
    stream = io.StringIO()
    code = action_main(action_env(github, tmp_path), stream)

    assert code == 2
    outputs = read_outputs(tmp_path / "output")
    assert outputs["result"] == "error"
    assert outputs["report-path"] == str((tmp_path / "report" / "report.json").resolve())
    assert (tmp_path / "report" / "report.json").exists()
    assert "missing.yaml" in (tmp_path / "summary.md").read_text()
    [comment] = github.issue_comments(REPO, 2)
    assert outputs["comment-url"] == comment["html_url"]
    assert "::error title=mltest" in stream.getvalue()
    assert JOB_TOKEN not in stream.getvalue()


def test_fail_on_nothing_keeps_the_job_green(github, tmp_path):
    assert action_main(action_env(github, tmp_path, MLTEST_FAIL_ON="nothing"), io.StringIO()) == 0
    assert read_outputs(tmp_path / "output")["result"] == "error"


def test_push_event_writes_summary_and_outputs_but_no_comment(github, tmp_path):
    stream = io.StringIO()
    code = action_main(action_env(github, tmp_path, "push.json"), stream)
    assert code == 2  # the verdict of the (broken) suite, nothing about the comment
    assert github.requests == []
    assert "::warning" not in stream.getvalue()
    assert (tmp_path / "summary.md").exists()


def test_fork_pull_request_keeps_its_verdict(github, tmp_path):
    github.read_only_repos.add(REPO)
    stream = io.StringIO()
    code = action_main(action_env(github, tmp_path, edit=make_fork), stream)
    assert code == 2
    assert "::warning title=mltest%3A PR comment not posted::" in stream.getvalue()
    assert read_outputs(tmp_path / "output")["comment-url"] == ""


def test_bad_input_stops_before_running_and_says_which(github, tmp_path):
    stream = io.StringIO()
    code = action_main(action_env(github, tmp_path, MLTEST_COMMENT="loud"), stream)
    assert code == 2
    assert "input comment (MLTEST_COMMENT) must be one of always, on-failure, off" in (
        stream.getvalue()
    )
    assert not (tmp_path / "report").exists()
    assert read_outputs(tmp_path / "output")["result"] == "error"


def test_gpu_asked_for_but_absent_fails_early_with_a_clear_message(github, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    stream = io.StringIO()
    code = action_main(action_env(github, tmp_path, MLTEST_GPUS="all"), stream)
    assert code == 2
    assert "A GPU was asked for (input gpus) but none is visible" in stream.getvalue()
    assert not (tmp_path / "report").exists()


def test_example_project_passes_and_comments(github, tmp_path, monkeypatch):
    from pathlib import Path

    example = Path(__file__).parents[2] / "examples" / "tabular"
    monkeypatch.chdir(example)  # the action runs in the working-directory input
    env = action_env(github, tmp_path, MLTEST_CONFIG="mltest.yaml")

    assert action_main(env, io.StringIO()) == 0
    outputs = read_outputs(tmp_path / "output")
    assert outputs["result"] == "pass" and int(outputs["passed"]) >= 1
    [comment] = github.issue_comments(REPO, 2)
    assert "all checks passed" in comment["body"]
    meta = json.loads(Path(outputs["report-path"]).read_text())["metadata"]
    assert meta["pr"] == 2 and meta["event"] == "pull_request"
    assert meta["run_url"].endswith(f"/{REPO}/actions/runs/{env['GITHUB_RUN_ID']}")
