"""The action's `env` and `allow-secret-env` inputs: a refused entry is an error verdict in the
comment (naming the variable, never its value), and docker mode copies only the names asked
for into the suite's container, by name (`--env NAME`), never a credential it was not allowed.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
from pathlib import Path

from mltest.github.commands import action_main
from tests.github.test_action_phases import example_env
from tests.github.test_actions import read_outputs
from tests.github.test_publish import REPO, action_env

ROOT = Path(__file__).resolve().parents[2]


def test_a_credential_in_env_is_an_error_in_the_comment_naming_it(github, tmp_path, monkeypatch):
    workspace, env = example_env(
        github, tmp_path, monkeypatch, MLTEST_ENV="DATA_DIR\nHF_TOKEN", HF_TOKEN="hf_value"
    )
    stream = io.StringIO()
    assert action_main(env, stream) == 2
    assert read_outputs(tmp_path / "output")["result"] == "error"
    [comment] = github.issue_comments(REPO, 2)
    assert "HF_TOKEN looks like a credential" in comment["body"]
    assert "allow-secret-env" in comment["body"]
    assert "hf_value" not in comment["body"] + stream.getvalue()


FAKE_DOCKER = """#!/bin/sh
# Records each call's arguments (one per line, a blank line after) instead of running docker.
printf '%s\\n' "$@" >>"$DOCKER_LOG"
echo >>"$DOCKER_LOG"
"""


def _run_script(tmp_path: Path, code: int = 0, **env: str) -> list[list[str]]:
    """action/run.sh in docker mode with a `docker` that records its calls; `code`: the
    script's expected exit code."""
    bin_dir, workspace = tmp_path / "bin", tmp_path / "workspace"
    tmp_path.mkdir(exist_ok=True)
    bin_dir.mkdir()
    workspace.mkdir()
    (bin_dir / "docker").write_text(FAKE_DOCKER)
    (bin_dir / "docker").chmod(0o755)
    log = tmp_path / "docker.log"
    base = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "GITHUB_ACTION_PATH": str(ROOT),
        "GITHUB_WORKSPACE": str(workspace),
        "RUNNER_TEMP": str(tmp_path),
        "DOCKER_LOG": str(log),
        "MLTEST_IMAGE": "local/mltest",
        "MLTEST_GPUS": "",
    }
    script = str(ROOT / "action" / "run.sh")
    done = subprocess.run(["bash", script], cwd=workspace, env={**base, **env},
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == code, done.stdout + done.stderr
    text = log.read_text().strip("\n") if log.exists() else ""
    calls = [call.split("\n") for call in text.split("\n\n")] if text else []
    # `image inspect` asks whether the image is on the runner (this fake says yes): no run.
    calls = [call for call in calls if call[:2] != ["image", "inspect"]]
    return calls or [done.stdout.splitlines()]


def test_docker_mode_copies_the_named_variables_into_the_suite_container_only_by_name(tmp_path):
    suite, publish = _run_script(
        tmp_path,
        MLTEST_ENV="DATA_DIR\n  WANDB_MODE=offline\nHF_TOKEN\nAWS_SECRET_ACCESS_KEY\nGITHUB_TOKEN\n"
        "MLTEST_GITHUB_TOKEN\n--privileged",
        MLTEST_ALLOW_SECRET_ENV="HF_TOKEN GITHUB_TOKEN MLTEST_GITHUB_TOKEN",
        DATA_DIR="/data/value1",
        HF_TOKEN="hf_value2",
        AWS_SECRET_ACCESS_KEY="value3",
        GITHUB_TOKEN="ghs_value4",
        MLTEST_GITHUB_TOKEN="ghs_value5",
    )
    passed = {suite[i + 1] for i, arg in enumerate(suite) if arg == "--env"}
    assert {"DATA_DIR", "HF_TOKEN", "MLTEST_ENV", "MLTEST_RUNNER_ENV_NAMES"} <= passed
    assert not {"AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN", "MLTEST_GITHUB_TOKEN"} & passed
    assert "--privileged" not in suite and suite[-2:] == ["local/mltest", "suite"]
    assert not any("value" in arg for arg in suite + publish)  # values only through the env


def test_the_comment_shows_the_pr_head_commit_from_the_event(github, tmp_path):
    # A config error: no model runs, and the comment still names the pushed commit.
    env = action_env(github, tmp_path, GITHUB_SHA="f" * 40)  # the merge commit of a PR run
    head = json.loads(Path(env["GITHUB_EVENT_PATH"]).read_text())["pull_request"]["head"]["sha"]
    assert action_main(env, io.StringIO()) == 2
    [comment] = github.issue_comments(REPO, 2)
    assert f"commit `{head[:7]}`" in comment["body"] and "fffffff" not in comment["body"]


def _option(call: list[str], name: str) -> list[str]:
    return [call[i + 1] for i, arg in enumerate(call) if arg == name]


def test_the_suite_container_gets_a_dev_shm_for_dataloader_workers(tmp_path):
    (suite, publish) = _run_script(tmp_path / "default")
    assert _option(suite, "--shm-size") == ["2g"] and _option(publish, "--shm-size") == []
    (suite, _) = _run_script(tmp_path / "set", MLTEST_SHM_SIZE="512m")
    assert _option(suite, "--shm-size") == ["512m"]
    [output] = _run_script(tmp_path / "bad", code=2, MLTEST_SHM_SIZE="2 gb")
    assert any("input shm-size (MLTEST_SHM_SIZE) must be a size" in line for line in output)


def test_a_dataloader_worker_out_of_shared_memory_names_the_input():
    from mltest.worker import _advice

    died = RuntimeError(
        "DataLoader worker (pid 12) is killed by signal: Bus error. It is possible that "
        "dataloader's workers are out of shared memory. Please try to raise your shared "
        "memory limit."
    )
    assert "action input `shm-size`" in _advice(died)
