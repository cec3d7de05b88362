"""`mltest comment`: the trusted workflow_run half of the fork-safe pattern."""

from __future__ import annotations

import io

import pytest

from mltest.cli import main
from mltest.github.commands import comment_main
from mltest.github.comment import marker
from mltest.report import Status
from tests.github.conftest import JOB_TOKEN, event_file, make_report

REPO = "Codertocat/Hello-World"


def saved(tmp_path, report):
    folder = tmp_path / report.suite
    report.write_json(folder / "report.json")
    return folder


def run(args, github, token=JOB_TOKEN, capsys=None):
    import argparse

    from mltest.github.commands import add_comment_arguments

    parser = argparse.ArgumentParser()
    add_comment_arguments(parser)
    stream = io.StringIO()
    env = {"GITHUB_TOKEN": token, "GITHUB_API_URL": github.url} if token else {}
    return comment_main(parser.parse_args(args), env, stream), stream.getvalue()


def test_merges_matrix_reports_into_one_comment_and_updates_it(github, tmp_path):
    tab = saved(tmp_path, make_report("tabular"))
    img = saved(tmp_path, make_report("images", Status.FAIL))
    args = [
        "--report",
        str(tab),
        "--report",
        str(img / "report.json"),
        "--repo",
        REPO,
        "--pr",
        "2",
        "--suite",
        "tabular",
        "--suite",
        "images",
        "--run-url",
        "https://github.com/x/actions/runs/5",
    ]

    code, log = run(args, github)
    code2, _ = run(args, github)

    assert (code, code2) == (0, 0)
    [comment] = github.issue_comments(REPO, 2)
    assert comment["body"].startswith(marker("images+tabular"))
    assert "(2 suites)" in comment["body"] and "actions/runs/5" in comment["body"]
    assert comment["html_url"] in log


def test_unwritable_pull_request_exits_1_with_a_warning(github, tmp_path):
    github.read_only_repos.add(REPO)
    code, log = run(
        ["--report", str(saved(tmp_path, make_report())), "--repo", REPO, "--pr", "2",
         "--comment-id", "tabular"],
        github,
    )
    assert code == 1
    assert "::warning" in log


@pytest.mark.parametrize(
    ("args", "token", "message"),
    [
        (["--report", "nowhere", "--repo", REPO, "--pr", "2"], JOB_TOKEN, "nowhere"),
        (["--report", "R", "--repo", "noslash", "--pr", "2"], JOB_TOKEN, "--repo must be"),
        (["--report", "R", "--repo", REPO, "--pr", "2"], "", "GITHUB_TOKEN"),
    ],
)
def test_bad_arguments_exit_2(github, tmp_path, capsys, args, token, message):
    args = [str(saved(tmp_path, make_report())) if a == "R" else a for a in args]
    args += ["--comment-id", "tabular"]
    code, _ = run(args, github, token)
    assert code == 2
    assert message in capsys.readouterr().err
    assert github.requests == []


def test_the_cli_routes_to_the_command(github, tmp_path, monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", JOB_TOKEN)
    monkeypatch.setenv("GITHUB_API_URL", github.url)
    folder = saved(tmp_path, make_report())
    args = ["comment", "--report", str(folder), "--repo", REPO, "--pr", "3", "--suite", "tabular"]
    assert main(args) == 0
    assert len(github.issue_comments(REPO, 3)) == 1


def test_comment_command_needs_neither_torch_nor_the_training_stack(github, tmp_path):
    """The trusted workflow_run job installs mltest with --no-deps plus requests only."""
    import subprocess
    import sys

    folder = saved(tmp_path, make_report())
    guard = (
        "import builtins, sys\n"
        "real = builtins.__import__\n"
        "def guard(name, *a, **k):\n"
        "    if name.split('.')[0] in {'torch', 'pytorch_lightning', 'lightning', 'pandas',\n"
        "                              'numpy', 'pydantic', 'yaml', 'safetensors'}:\n"
        "        raise ImportError('blocked ' + name)\n"
        "    return real(name, *a, **k)\n"
        "builtins.__import__ = guard\n"
        "from mltest.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "GITHUB_TOKEN": JOB_TOKEN, "GITHUB_API_URL": github.url}
    args = ["comment", "--report", str(folder), "--repo", REPO, "--pr", "4", "--comment-id", "t"]
    result = subprocess.run(
        [sys.executable, "-c", guard, *args], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert len(github.issue_comments(REPO, 4)) == 1


# --- the workflow_run pattern: where the comment goes is not the report's to say -------------

HEAD_SHA = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
REPO_ID = 186853002


def pr_run(payload):
    """The vendored workflow_run example made coherent: a run of PR #2 of Codertocat/Hello-World."""
    payload["repository"].update(full_name=REPO, id=REPO_ID)
    run_ = payload["workflow_run"]
    run_.update(event="pull_request", head_sha=HEAD_SHA)
    run_["head_repository"].update(full_name=REPO, id=REPO_ID)


def fork_run(payload):
    """A run of a fork's PR: GitHub lists no pull request in the payload."""
    pr_run(payload)
    payload["workflow_run"]["pull_requests"] = []
    payload["workflow_run"]["head_repository"].update(full_name="forker/Hello-World", id=999)


def post_from_event(github, tmp_path, edit, *extra, report=None):
    event = event_file(tmp_path, "workflow_run.completed.json", edit)
    folder = saved(tmp_path, report or make_report())
    return run(["--report", str(folder), "--event-path", str(event), "--suite", "tabular", *extra],
               github)


def test_workflow_run_event_names_the_pull_request_not_the_report(github, tmp_path):
    report = make_report()
    report.metadata.update(pr=99, repository="victim/elsewhere")  # untrusted: ignored

    code, log = post_from_event(github, tmp_path, pr_run, report=report)

    assert code == 0, log
    [comment] = github.issue_comments(REPO, 2)
    assert comment["body"].startswith(marker("tabular"))
    assert github.issue_comments(REPO, 99) == []
    assert "Codertocat/Hello-World#2" in log


def test_fork_run_finds_its_pull_request_by_head_commit(github, tmp_path):
    github.add_pull(REPO, 5, HEAD_SHA, head_repo="forker/Hello-World", state="closed")
    github.add_pull(REPO, 7, HEAD_SHA, head_repo="forker/Hello-World")

    code, log = post_from_event(github, tmp_path, fork_run)

    assert code == 0, log
    assert len(github.issue_comments(REPO, 7)) == 1
    assert github.issue_comments(REPO, 5) == []
    assert [r.path for r in github.calls("GET")][0] == f"/repos/{REPO}/commits/{HEAD_SHA}/pulls"


def test_fork_branch_named_like_ours_does_not_borrow_our_pull_request(github, tmp_path):
    def confused(payload):  # GitHub matched our PR #2 by branch name only
        fork_run(payload)
        payload["workflow_run"]["pull_requests"] = [
            {"number": 2, "head": {"repo": {"id": REPO_ID}}, "base": {"repo": {"id": REPO_ID}}}
        ]

    github.add_pull(REPO, 8, HEAD_SHA, head_repo="forker/Hello-World")

    code, log = post_from_event(github, tmp_path, confused)

    assert code == 0, log
    assert github.issue_comments(REPO, 2) == []
    assert len(github.issue_comments(REPO, 8)) == 1


def test_fork_run_without_an_open_pull_request_says_to_pass_pr(github, tmp_path, capsys):
    code, _ = post_from_event(github, tmp_path, fork_run)

    assert code == 2
    err = capsys.readouterr().err
    assert "no open pull request" in err and "--pr" in err
    assert github.calls("POST") == []


def test_explicit_pr_overrides_the_event(github, tmp_path):
    code, _ = post_from_event(github, tmp_path, fork_run, "--pr", "4")

    assert code == 0
    assert len(github.issue_comments(REPO, 4)) == 1
    assert not [r for r in github.requests if "/commits/" in r.path]


def test_run_of_a_push_has_nothing_to_comment_on(github, tmp_path):
    def push_run(payload):
        fork_run(payload)
        payload["workflow_run"]["event"] = "push"

    code, log = post_from_event(github, tmp_path, push_run)

    assert code == 0
    assert "nothing to comment on" in log
    assert github.requests == []


def test_event_path_defaults_to_github_event_path(github, tmp_path):
    event = event_file(tmp_path, "workflow_run.completed.json", pr_run)
    folder = saved(tmp_path, make_report())
    import argparse

    from mltest.github.commands import add_comment_arguments

    parser = argparse.ArgumentParser()
    add_comment_arguments(parser)
    env = {"GITHUB_TOKEN": JOB_TOKEN, "GITHUB_API_URL": github.url,
           "GITHUB_EVENT_PATH": str(event)}  # fmt: skip
    args = parser.parse_args(["--report", str(folder), "--comment-id", "tabular"])
    assert comment_main(args, env, io.StringIO()) == 0
    assert len(github.issue_comments(REPO, 2)) == 1


@pytest.mark.parametrize(
    ("extra", "suite", "message"),
    [
        ([], "tabular", "say which comment to update"),
        (["--suite", "tabular"], "images", "'images' are not in --suite (tabular)"),
        (["--suite", "images"], "tabular", "cannot choose which comment"),
    ],
)
def test_a_report_cannot_choose_the_comment(github, tmp_path, capsys, extra, suite, message):
    github.add_comment(REPO, 2, marker(suite) + "\nanother suite's comment", "github-actions[bot]")
    event = event_file(tmp_path, "workflow_run.completed.json", pr_run)
    folder = saved(tmp_path, make_report(suite))

    code, _ = run(["--report", str(folder), "--event-path", str(event), *extra], github)

    assert code == 2
    assert message in capsys.readouterr().err
    assert github.requests == []
