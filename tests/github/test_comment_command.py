"""`mltest comment`: the trusted workflow_run half of the fork-safe pattern."""

from __future__ import annotations

import io

import pytest

from mltest.cli import main
from mltest.github.commands import comment_main
from mltest.github.comment import marker
from mltest.report import Status
from tests.github.conftest import JOB_TOKEN, make_report

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
        ["--report", str(saved(tmp_path, make_report())), "--repo", REPO, "--pr", "2"], github
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
    code, _ = run(args, github, token)
    assert code == 2
    assert message in capsys.readouterr().err
    assert github.requests == []


def test_the_cli_routes_to_the_command(github, tmp_path, monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", JOB_TOKEN)
    monkeypatch.setenv("GITHUB_API_URL", github.url)
    folder = saved(tmp_path, make_report())
    assert main(["comment", "--report", str(folder), "--repo", REPO, "--pr", "3"]) == 0
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
    args = ["comment", "--report", str(folder), "--repo", REPO, "--pr", "4"]
    result = subprocess.run(
        [sys.executable, "-c", guard, *args], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert len(github.issue_comments(REPO, 4)) == 1
