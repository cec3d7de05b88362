"""The action's step started and cancelled the way the GitHub runner does it.

The runner writes the step's `run:` text to a script, starts `bash --noprofile --norc -eo
pipefail SCRIPT` with the step's `env:` (each `${{ inputs.X }}` evaluated) in its
`working-directory`, and cancels a job by signalling that one process (not its group): SIGINT,
then SIGTERM 7.5 s later, then SIGKILL 2.5 s after that (actions/runner, ProcessInvoker).
`act` kills the step with SIGKILL at once, so it cannot show what a real cancel does; this
harness starts and signals the step exactly as the runner does.

Host mode's virtualenv is prepared in RUNNER_TEMP: its `python` runs this checkout's mltest
(`pip install` of the action is skipped), so the process chain is the real one
(step shell -> run.sh -> the supervisor, by `exec`).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
ACTION = yaml.safe_load((ROOT / "action.yml").read_text())
CANCEL_STEPS = ((signal.SIGINT, 7.5), (signal.SIGTERM, 2.5), (signal.SIGKILL, 5.0))


def step_environment(inputs: dict[str, str], github: dict[str, str]) -> dict[str, str]:
    """The step's environment: the runner's context variables plus action.yml's `env:`, with
    each `${{ inputs.NAME }}` replaced by `inputs` or the input's default."""
    step = ACTION["runs"]["steps"][0]
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "GITHUB_ACTION_PATH": str(ROOT),
        "PYTHONPATH": str(ROOT),
        **github,
    }
    for name, value in step["env"].items():
        match = re.fullmatch(r"\$\{\{ inputs\.([\w-]+) \}\}", value)
        assert match, f"{name}: {value}"
        default = str(ACTION["inputs"][match[1]].get("default", ""))
        env[name] = inputs.get(match[1], "" if default.startswith("${{") else default)
    return env


def host_venv(runner_temp: Path) -> None:
    """RUNNER_TEMP/mltest-venv whose python is this interpreter running this checkout."""
    bin_dir = runner_temp / "mltest-venv" / "bin"
    bin_dir.mkdir(parents=True)
    shim = bin_dir / "python"
    shim.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then exit 0; fi  # the checkout is the install\n'
        f'exec "{sys.executable}" "$@"\n'
    )
    shim.chmod(0o755)


def start_step(workdir: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    """The step's process, as the runner starts it."""
    step = ACTION["runs"]["steps"][0]
    script = log.with_suffix(".sh")
    script.write_text(step["run"] + "\n")
    with log.open("wb") as out:
        return subprocess.Popen(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def cancel_like_the_runner(step: subprocess.Popen) -> tuple[signal.Signals, float]:
    """Signal the step's process as the runner does on cancel; return the last signal that
    was needed and the seconds from the first one to the step's end."""
    started = time.monotonic()
    for sig, wait_s in CANCEL_STEPS:
        os.kill(step.pid, sig)
        try:
            step.wait(wait_s)
            return sig, time.monotonic() - started
        except subprocess.TimeoutExpired:
            continue
    raise AssertionError("the step survived SIGKILL")
