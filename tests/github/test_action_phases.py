"""The action's docker-mode phases and `baselines: update`, run in-process against the
loopback GitHub: the suite phase publishes nothing and exits with the verdict; the publish
phase trusts a report only when it agrees with how the suite's container ended."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

from mltest.github.commands import action_main
from tests.github.conftest import JOB_TOKEN
from tests.github.test_actions import read_outputs
from tests.github.test_publish import REPO, action_env

EXAMPLE = Path(__file__).parents[2] / "examples" / "tabular"


def example_env(github, tmp_path, monkeypatch, **inputs):
    """The tabular example copied into a workspace, the action's env pointing at it."""
    workspace = tmp_path / "workspace"
    shutil.copytree(EXAMPLE, workspace, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.chdir(workspace)
    env = action_env(
        github,
        tmp_path,
        MLTEST_CONFIG="mltest.yaml",
        MLTEST_REPORT_DIR=str(workspace / "mltest-report"),
        GITHUB_WORKSPACE=str(workspace),
        **inputs,
    )
    return workspace, env


def test_the_suite_phase_publishes_nothing_and_the_publish_phase_does(
    github, tmp_path, monkeypatch
):
    workspace, env = example_env(github, tmp_path, monkeypatch)
    suite_env = {k: v for k, v in env.items() if k not in ("MLTEST_GITHUB_TOKEN", "GITHUB_OUTPUT")}
    suite_env.pop("GITHUB_STEP_SUMMARY")
    assert action_main(suite_env, io.StringIO(), phase="suite") == 0
    assert github.requests == [] and not (tmp_path / "summary.md").exists()

    stream = io.StringIO()
    code = action_main({**env, "MLTEST_SUITE_EXIT_CODE": "0"}, stream, phase="publish")
    assert code == 0
    assert read_outputs(tmp_path / "output")["result"] == "pass"
    [comment] = github.issue_comments(REPO, 2)
    assert "all checks passed" in comment["body"]
    assert JOB_TOKEN not in stream.getvalue()


def test_a_report_that_disagrees_with_the_suite_containers_exit_code_is_an_error(
    github, tmp_path, monkeypatch
):
    workspace, env = example_env(github, tmp_path, monkeypatch)
    assert action_main({**env, "GITHUB_OUTPUT": ""}, io.StringIO(), phase="suite") == 0
    # e.g. the container was OOM-killed after a forged report.json said pass
    code = action_main({**env, "MLTEST_SUITE_EXIT_CODE": "137"}, io.StringIO(), phase="publish")
    assert code == 2
    assert read_outputs(tmp_path / "output")["result"] == "error"
    [comment] = github.issue_comments(REPO, 2)
    assert "exited with code 137" in comment["body"]


def test_publish_without_a_report_is_an_error_with_outputs(github, tmp_path):
    env = action_env(github, tmp_path, MLTEST_SUITE_EXIT_CODE="125")
    stream = io.StringIO()
    assert action_main(env, stream, phase="publish") == 2
    assert read_outputs(tmp_path / "output")["result"] == "error"
    assert "exited with code 125" in stream.getvalue()


def test_baselines_update_records_on_the_runner_and_says_how_to_commit(
    github, tmp_path, monkeypatch
):
    workspace, env = example_env(
        github, tmp_path, monkeypatch, MLTEST_BASELINES="update", MLTEST_COMMENT_ID="gpu-suite"
    )
    shutil.rmtree(workspace / ".mltest")  # a new environment: nothing recorded yet
    assert action_main(env, io.StringIO()) == 0

    outputs = read_outputs(tmp_path / "output")
    assert outputs["baseline-dir"] == str((workspace / ".mltest").resolve())
    assert outputs["baseline-artifact"] == "mltest-baselines-gpu-suite"
    recorded = json.loads((workspace / ".mltest" / "baselines.json").read_text())
    assert {"memorization", "sanity", "key_examples"} <= set(recorded["checks"])
    summary = (tmp_path / "summary.md").read_text()
    assert "Baselines recorded on this runner" in summary
    assert (
        f"gh run download 99 --repo {REPO} --name mltest-baselines-gpu-suite --dir .mltest"
        in summary
    )
    assert "+++ b/.mltest/baselines.json" in summary  # the patch of the text files


def test_compare_mode_uploads_nothing(github, tmp_path, monkeypatch):
    workspace, env = example_env(github, tmp_path, monkeypatch)
    assert action_main(env, io.StringIO()) == 0
    outputs = read_outputs(tmp_path / "output")
    assert outputs["baseline-dir"] == "" and outputs["baseline-artifact"] == ""


def test_a_compare_run_hands_no_folder_to_the_upload_step_whatever_the_report_says(
    github, tmp_path, monkeypatch
):
    # In docker mode the report is read back from a folder the model code could write: one
    # that claims recorded baselines in .git must not point the upload step there.
    workspace, env = example_env(github, tmp_path, monkeypatch)
    (workspace / ".git").mkdir()
    assert action_main({**env, "GITHUB_OUTPUT": ""}, io.StringIO(), phase="suite") == 0
    path = workspace / "mltest-report" / "report.json"
    data = json.loads(path.read_text())
    data["metadata"].update(baseline_dir=str(workspace / ".git"), baseline_files=["config"])
    path.write_text(json.dumps(data))
    assert action_main({**env, "MLTEST_SUITE_EXIT_CODE": "0"}, io.StringIO(), phase="publish") == 0
    outputs = read_outputs(tmp_path / "output")
    assert outputs["baseline-dir"] == "" and outputs["baseline-artifact"] == ""
    # and even a recording run never names a folder inside .git
    update = {**env, "MLTEST_SUITE_EXIT_CODE": "0", "MLTEST_BASELINES": "update"}
    (tmp_path / "output").write_text("")
    assert action_main(update, io.StringIO(), phase="publish") == 0
    assert read_outputs(tmp_path / "output")["baseline-dir"] == ""
