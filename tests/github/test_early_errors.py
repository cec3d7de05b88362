"""Every error before the suite runs reaches the pull request: the step is run as the runner
runs it (tests/github/runner_step.py) against the loopback GitHub, with a real pull_request
event, on a PR whose sticky comment still shows an earlier ✅. Each early error updates that
same comment to an error verdict (no second comment), writes the job summary and the outputs,
exits as fail-on says, and never prints the token.

Errors found by action/run.sh itself are published by the runner's own `python3 -S -E`
(standard library only), as on a runner where the mltest image could not be pulled.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mltest.github.commands import action_main
from mltest.github.comment import comment_body, marker
from tests.github.conftest import EVENTS, JOB_TOKEN, make_report
from tests.github.fake_github import BOT_LOGIN
from tests.github.runner_step import ROOT, host_venv, start_step, step_environment
from tests.github.test_actions import read_outputs
from tests.github.test_publish import REPO, action_env

EXAMPLE_CONFIG = ROOT / "examples" / "tabular" / "mltest.yaml"  # `suite: tabular`


def earlier_pass(github, comment_id: str = "tabular") -> dict:
    """The ✅ comment an earlier, passing run left on PR #2."""
    body = comment_body([make_report("tabular")], comment_id=comment_id)
    assert "✅" in body
    return github.add_comment(REPO, 2, body, BOT_LOGIN)


def run_step(github, tmp_path: Path, inputs: dict, path: str | None = None):
    """The action's step as the runner starts it; returns (exit code, log, outputs)."""
    workdir = tmp_path / "work"
    workdir.mkdir(exist_ok=True)
    shutil.copy(EXAMPLE_CONFIG, workdir / "mltest.yaml")
    (tmp_path / "output").write_text("")
    env = step_environment(
        {"github-token": JOB_TOKEN, "config": "mltest.yaml", **inputs},
        {
            "RUNNER_TEMP": str(tmp_path),
            "GITHUB_WORKSPACE": str(workdir),
            "GITHUB_REPOSITORY": REPO,
            "GITHUB_EVENT_NAME": "pull_request",
            "GITHUB_EVENT_PATH": str(EVENTS / "pull_request.opened.json"),
            "GITHUB_API_URL": github.url,
            "GITHUB_RUN_ID": "42",
            "GITHUB_OUTPUT": str(tmp_path / "output"),
            "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        },
    )
    if path is not None:
        env["PATH"] = path
    step = start_step(workdir, env, tmp_path / "step.log")
    code = step.wait(timeout=300)
    log = (tmp_path / "step.log").read_text()
    return code, log, read_outputs(tmp_path / "output")


def assert_turned_to_error(github, earlier: dict, *phrases: str) -> dict:
    """The earlier comment, updated in place to an error verdict that says ``phrases``."""
    [comment] = github.issue_comments(REPO, 2)
    assert comment["id"] == earlier["id"]
    assert github.calls("POST") == []
    body = comment["body"]
    assert body.startswith(marker("tabular"))
    assert "💥 mltest: the suite could not run" in body and "✅" not in body
    for phrase in phrases:
        assert phrase in body
    return comment


def no_gpu_tools(tmp_path: Path) -> str:
    """A PATH with what run.sh needs but no nvidia-smi, as on a runner without a driver."""
    if shutil.which("nvidia-smi"):
        pytest.skip("this machine has nvidia-smi")
    return os.environ["PATH"]


def test_a_bad_input_found_by_run_sh_updates_the_comment_to_an_error(github, tmp_path):
    earlier = earlier_pass(github)
    code, log, outputs = run_step(github, tmp_path, {"mode": "vm"})

    assert code == 2, log
    comment = assert_turned_to_error(github, earlier, "bad action input", "input mode")
    assert outputs["result"] == "error" and outputs["errors"] == "1"
    assert outputs["comment-url"] == comment["html_url"]
    assert (
        "input mode (MLTEST_MODE) must be one of docker, host"
        in (tmp_path / "summary.md").read_text()
    )
    assert "::error title=mltest tabular%3A suite error::bad action input" in log
    assert JOB_TOKEN not in log


def test_docker_modes_no_gpu_updates_the_comment_and_respects_the_inputs(github, tmp_path):
    path = no_gpu_tools(tmp_path)
    earlier = earlier_pass(github)
    code, log, outputs = run_step(github, tmp_path, {"mode": "docker", "gpus": "all"}, path)
    assert code == 2, log
    assert_turned_to_error(github, earlier, "no GPU", "nvidia-smi", "gpus: ''")
    assert outputs["result"] == "error"

    # fail-on: nothing passes the step; comment-id picks another comment; off posts none
    inputs = {"mode": "docker", "gpus": "all", "fail-on": "nothing", "comment-id": "gpu-a"}
    code, log, outputs = run_step(github, tmp_path, inputs, path)
    assert code == 0, log
    assert [c for c in github.issue_comments(REPO, 2) if marker("gpu-a") in c["body"]]
    requests_before = len(github.requests)
    code, log, outputs = run_step(github, tmp_path, {**inputs, "comment": "off"}, path)
    assert code == 0 and len(github.requests) == requests_before, log
    assert outputs["result"] == "error"


def test_a_fork_403_or_a_5xx_is_a_warning_and_the_step_still_fails(github, tmp_path):
    earlier = earlier_pass(github)
    github.fail_next("GET", r"/repos/.*/issues/2/comments", 502, headers={"Retry-After": "0"})
    code, log, outputs = run_step(github, tmp_path, {"mode": "vm"})
    assert code == 2, log
    assert_turned_to_error(github, earlier, "input mode")  # retried after the 502

    github.read_only_repos.add(REPO)
    code, log, outputs = run_step(github, tmp_path, {"mode": "cloud"})
    assert code == 2, log
    assert "::warning title=mltest%3A PR comment not posted::" in log and "HTTP 403" in log
    assert outputs["result"] == "error" and outputs["comment-url"] == ""
    assert "got 'cloud'" in (tmp_path / "summary.md").read_text()
    assert JOB_TOKEN not in log


def test_without_python3_on_the_runner_the_error_is_an_annotation_and_says_so(github, tmp_path):
    earlier = earlier_pass(github)
    bare = tmp_path / "bin"
    bare.mkdir()
    os.symlink(shutil.which("bash"), bare / "bash")
    code, log, outputs = run_step(github, tmp_path, {"mode": "vm"}, path=str(bare))
    assert code == 2, log
    assert "::error title=mltest: bad action input::input mode" in log
    assert "python3 (3.10 or newer) is not on the runner's PATH" in log
    assert (tmp_path / "output").read_text() == "result=error\npassed=0\nfailed=0\nerrors=1\n"
    assert github.issue_comments(REPO, 2) == [earlier]  # unchanged, and the log said so


def test_host_modes_no_gpu_updates_the_comment(github, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    earlier = earlier_pass(github)
    host_venv(tmp_path)
    code, log, outputs = run_step(github, tmp_path, {"mode": "host", "gpus": "all"})
    assert code == 2, log
    # The runner's own torch is used, and the log says which.
    assert f"mltest: host mode uses torch {torch.__version__} from " in log, log
    assert_turned_to_error(github, earlier, "no GPU", "none is visible to PyTorch")
    assert (
        outputs["result"] == "error" and "none is visible" in (tmp_path / "summary.md").read_text()
    )
    assert JOB_TOKEN not in log


def test_a_config_error_updates_the_comment(github, tmp_path):
    earlier = earlier_pass(github)
    host_venv(tmp_path)
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "broken.yaml").write_text("suite: tabular\nmodel: nowhere:Model\nchecks: 7\n")
    inputs = {"mode": "host", "gpus": "", "config": "broken.yaml"}
    code, log, outputs = run_step(github, tmp_path, inputs)
    assert code == 2, log
    assert_turned_to_error(github, earlier, "broken.yaml")
    assert outputs["result"] == "error"


def test_the_suite_container_ending_without_a_report_updates_the_comment(
    github, tmp_path, monkeypatch
):
    # Docker mode's publish container, when the suite's container died before writing
    # anything (e.g. killed, or its entrypoint failed): what the second `docker run` runs.
    earlier = earlier_pass(github)
    config = tmp_path / "mltest.yaml"
    shutil.copy(EXAMPLE_CONFIG, config)
    env = action_env(github, tmp_path, MLTEST_CONFIG=str(config), MLTEST_SUITE_EXIT_CODE="137")
    stream = io.StringIO()
    assert action_main(env, stream, phase="publish") == 2
    assert_turned_to_error(github, earlier, "no report", "exited with code 137")
    assert read_outputs(tmp_path / "output")["result"] == "error"
    assert JOB_TOKEN not in stream.getvalue()


def test_no_gpu_inside_the_suite_container_reaches_the_comment_through_the_report(github, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    earlier = earlier_pass(github)
    config = tmp_path / "mltest.yaml"
    shutil.copy(EXAMPLE_CONFIG, config)
    env = action_env(github, tmp_path, MLTEST_CONFIG=str(config), MLTEST_GPUS="all")
    suite_env = {k: v for k, v in env.items() if k not in ("MLTEST_GITHUB_TOKEN", "GITHUB_OUTPUT")}
    suite_env.pop("GITHUB_STEP_SUMMARY")
    assert action_main(suite_env, io.StringIO(), phase="suite") == 2
    assert github.requests == []  # the suite's container has no token and posts nothing
    publish_env = {**env, "MLTEST_SUITE_EXIT_CODE": "2"}
    assert action_main(publish_env, io.StringIO(), phase="publish") == 2
    assert_turned_to_error(github, earlier, "no GPU", "none is visible to PyTorch")


def test_the_early_error_publisher_imports_only_the_standard_library():
    # What run.sh runs on a runner without the image: a third-party import anywhere in it
    # (requests, yaml) would fail there, so the error would never reach the PR.
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]); import mltest.github.early_error; "
        "import entrypoint; "
        "names = {m.split('.')[0] for m in sys.modules if not m.startswith('_')}; "
        "print(sorted(names - set(sys.stdlib_module_names) - {'entrypoint'}))"
    )
    result = subprocess.run(
        [sys.executable, "-S", "-E", "-c", probe, str(ROOT)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "['mltest']"
