"""The action in host mode, started and cancelled the way the GitHub runner does it
(tests/github/runner_step.py), against the loopback GitHub.

The step's `exec` chain leaves no process above the suite holding the token, the token is
wiped from the supervisor's own environment before any model code runs (even a root runner's
model code, which can read every /proc/<pid>/environ, finds it nowhere), and the runner's
SIGINT reaches the suite: a final report flagged cancelled, a comment that says so, outputs,
and nothing left running, well before the runner would escalate to SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from tests.github.conftest import EVENTS, JOB_TOKEN
from tests.github.runner_step import (
    cancel_like_the_runner,
    host_venv,
    start_step,
    step_environment,
)
from tests.github.test_actions import read_outputs
from tests.suites import copy_example

REPO = "Codertocat/Hello-World"

# Appended to the example's model: training that goes on until cancelled, and a look at every
# process above the model code for the token (as root, every environ file is readable).
SLOW_AND_NOSY = """

import os as _os
import time as _time
from pathlib import Path as _Path


class Slow(TabularMLP):
    def training_step(self, batch, batch_idx):
        here = _Path(__file__).parent
        if not (here / "training.started").exists():
            holders, pid = [], _os.getpid()
            token = (here / "token.txt").read_text().encode()
            while pid > 1:
                try:
                    if token in _Path(f"/proc/{pid}/environ").read_bytes():
                        holders.append(pid)
                    pid = int(_Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
                except OSError:
                    break
            (here / "token-holders.json").write_text(__import__("json").dumps(holders))
            (here / "training.started").write_text(str(_os.getpid()))
        _time.sleep(0.2)
        return super().training_step(batch, batch_idx)
"""


def left_running(folder: Path) -> list[int]:
    """Processes whose working directory lies in `folder`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cwd = os.readlink(entry / "cwd")
            except OSError:
                continue
            if cwd.startswith(str(folder)):
                found.append(int(entry.name))
    return found


@pytest.mark.slow
def test_host_mode_cancelled_like_the_runner_reports_cancelled_and_leaks_no_token(
    github, tmp_path
):
    config = copy_example("tabular", tmp_path / "workspace")
    project = config.parent
    model = project / "model.py"
    model.write_text(model.read_text() + SLOW_AND_NOSY)
    config.write_text(config.read_text().replace("model:TabularMLP", "model:Slow"))
    (project / "token.txt").write_text(JOB_TOKEN)
    runner_temp = tmp_path / "runner-temp"
    host_venv(runner_temp)
    files = {name: tmp_path / name for name in ("output", "summary", "env")}
    for path in files.values():
        path.write_text("")
    env = step_environment(
        {"mode": "host", "gpus": "", "github-token": JOB_TOKEN, "config": "mltest.yaml"},
        {
            "RUNNER_TEMP": str(runner_temp),
            "GITHUB_WORKSPACE": str(project),
            "GITHUB_REPOSITORY": REPO,
            "GITHUB_EVENT_NAME": "pull_request",
            "GITHUB_EVENT_PATH": str(EVENTS / "pull_request.opened.json"),
            "GITHUB_API_URL": github.url,
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_RUN_ID": "99",
            "GITHUB_OUTPUT": str(files["output"]),
            "GITHUB_STEP_SUMMARY": str(files["summary"]),
            "GITHUB_ENV": str(files["env"]),
        },
    )
    step = start_step(project, env, tmp_path / "step.log")
    deadline = time.monotonic() + 180
    while not (project / "training.started").exists():
        assert step.poll() is None, (tmp_path / "step.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "training never started"
        time.sleep(0.1)

    needed, took = cancel_like_the_runner(step)
    log = (tmp_path / "step.log").read_text()

    # Nothing above (or in) the model code held the token.
    assert json.loads((project / "token-holders.json").read_text()) == []
    assert JOB_TOKEN not in log
    # The step ended before the runner's SIGKILL (SIGINT alone, unless the machine is slow
    # enough for SIGTERM 7.5 s later, which the suite holds too), with a final report.
    assert needed in (signal.SIGINT, signal.SIGTERM) and took < 10, log[-3000:]
    assert step.returncode == 2
    report = json.loads((project / "mltest-report" / "report.json").read_text())
    assert report["complete"] and report["cancelled"] and report["verdict"] == "error"
    [comment] = github.issue_comments(REPO, 2)
    assert "the run was cancelled" in comment["body"]
    assert read_outputs(files["output"])["result"] == "error"
    assert "the run was cancelled" in files["summary"].read_text()
    assert left_running(tmp_path) == []
