"""The action end to end in docker mode: a Docker engine started here, the image built from
the Dockerfile on a locally made Debian base (no registry is reachable), run by the action
under act against the loopback GitHub.

Slow: about a minute for the base image on first use (cached by content afterwards), plus the
image build and the suite. Needs root (dockerd, debootstrap); they are apt-installed if missing.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.github.conftest import JOB_TOKEN
from tests.github.dockerd import need_root_tool as _need_root_tool
from tests.github.dockerd import running_dockerd
from tests.github.e2e import act_repo, action_checkout, run_act

REPO = "Codertocat/Hello-World"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mltest-e2e"
BASE_PACKAGES = "python3,python3-pip,python3-venv"
WORKFLOW = """\
name: e2e
on: pull_request
jobs:
  e2e:
    runs-on: ubuntu-latest
    steps:
      - run: cp -a "$SRC/." .
      - id: mltest
        uses: ./
        env:
          E2E_SWITCH: from-the-step  # passed by name through input env
          E2E_WITHHELD: runner-only  # not passed: a lookup of it gets a notice
        with:
          env: |
            E2E_SWITCH
            E2E_DATA_DIR=/data/tabular
          mode: docker
          image: build
          build-args: |
            BASE_IMAGE=local/mltest-base
            PIP_FIND_LINKS=/opt/wheels
            PIP_NO_INDEX=1
            PIP_BREAK_SYSTEM_PACKAGES=1
          gpus: ""
          working-directory: examples/tabular
          config: mltest.yaml
      - name: Keep what the model code saw (the recording run below sees a writable workspace)
        if: always()
        run: cp examples/tabular/mltest-report/model-view.json "$OUT_DIR/"
      - id: record
        uses: ./
        with:
          mode: docker
          image: mltest-action:local
          gpus: ""
          working-directory: examples/tabular
          config: mltest.yaml
          baselines: update
          comment: "off"
      - name: Record the outputs
        if: always()
        env:
          OUTPUTS: ${{ toJSON(steps.mltest.outputs) }}
          RECORD: ${{ toJSON(steps.record.outputs) }}
        run: |
          printf '%s' "$OUTPUTS" > "$OUT_DIR/outputs.json"
          printf '%s' "$RECORD" > "$OUT_DIR/record.json"
"""

# Appended to the example's model: what the model code can see and do inside the container.
MODEL_VIEW = """

def _look_around():
    import json, os, pathlib, socket
    here = pathlib.Path(__file__).parent
    view = {"env": dict(os.environ), "withheld": os.environ.get("E2E_WITHHELD")}
    shm = os.statvfs("/dev/shm")
    view["shm_bytes"] = shm.f_blocks * shm.f_frsize
    try:
        (here / "written-by-model").write_text("x")
        view["workspace"] = "writable"
    except OSError as exc:
        view["workspace"] = type(exc).__name__
    try:
        socket.create_connection(("1.1.1.1", 53), timeout=2).close()
        view["network"] = "reachable"
    except OSError as exc:
        view["network"] = type(exc).__name__
    (here / "mltest-report").mkdir(exist_ok=True)
    (here / "mltest-report" / "model-view.json").write_text(json.dumps(view))


_look_around()
"""


def _debian_mirror() -> str:
    """The mirror apt on this machine already uses (the only one reachable here)."""
    for path in sorted(Path("/etc/apt").rglob("*")):
        if path.is_file() and path.suffix in (".list", ".sources"):
            for line in path.read_text().splitlines():
                if line.lstrip().startswith("#"):
                    continue
                for word in line.replace("URIs:", " ").split():
                    if word.startswith("http") and "security" not in word:
                        return word
    return "http://deb.debian.org/debian"


def _base_tarball() -> Path:
    """A minimal Debian bookworm with python3, as a tarball cached by its recipe."""
    mirror = _debian_mirror()
    key = hashlib.sha256(f"bookworm|minbase|{BASE_PACKAGES}|{mirror}".encode()).hexdigest()[:16]
    tarball = CACHE / f"base-{key}.tar"
    if tarball.exists():
        return tarball
    _need_root_tool("debootstrap", "debootstrap")
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rootfs", dir=CACHE) as rootfs:
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={BASE_PACKAGES}",
                "bookworm",
                rootfs,
                mirror,
            ],
            check=True,
            capture_output=True,
        )
        partial = tarball.with_suffix(".partial")
        subprocess.run(["tar", "-C", rootfs, "-cf", str(partial), "."], check=True)
        partial.replace(tarball)
    return tarball


def _wheels() -> Path:
    """Wheels for the image's pip install: the project's dependencies, torch pinned to the
    CPU build installed here (an unpinned torch would fetch the CUDA build)."""
    deps = [r for r in importlib.metadata.requires("mltest-action") or [] if "extra ==" not in r]
    torch = f"torch=={importlib.metadata.version('torch')}"
    wanted = sorted([torch, *[d for d in deps if not d.startswith("torch")], "setuptools>=68"])
    key = hashlib.sha256("|".join(wanted).encode()).hexdigest()[:16]
    folder = CACHE / f"wheels-{key}"
    if not (folder / ".complete").exists():
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                "--only-binary=:all:",
                "-d",
                str(folder),
                *wanted,
            ],
            check=True,
            capture_output=True,
        )
        (folder / ".complete").touch()
    return folder


@pytest.fixture
def docker_engine():
    """A dockerd of our own on a private socket; stopped by its pid afterwards."""
    with running_dockerd() as env:
        yield env


@pytest.mark.slow
def test_docker_mode_under_act(github, tmp_path, docker_engine):
    started = time.monotonic()
    base = _base_tarball()
    wheels = _wheels()
    with base.open("rb") as fh:
        subprocess.run(
            ["docker", "import", "-", "local/mltest-base"],
            stdin=fh,
            env=docker_engine,
            check=True,
            capture_output=True,
        )
    src = action_checkout(tmp_path / "src", ["tabular"])
    model = src / "examples" / "tabular" / "model.py"
    model.write_text(model.read_text() + MODEL_VIEW)
    for wheel in wheels.glob("*.whl"):
        os.link(wheel, src / "docker" / "wheels" / wheel.name)  # hard links: no copy
    repo = act_repo(tmp_path / "repo", WORKFLOW)
    out = tmp_path / "out"
    out.mkdir()

    result = run_act(
        repo,
        {
            "SRC": str(src),
            "OUT_DIR": str(out),
            "GITHUB_API_URL": github.url,
            "DOCKER_HOST": docker_engine["DOCKER_HOST"],
            "DOCKER_BUILDKIT": "0",
        },
        {"GITHUB_TOKEN": JOB_TOKEN},
    )
    log = result.stdout + result.stderr

    assert result.returncode == 0, log[-5000:]
    outputs = json.loads((out / "outputs.json").read_text())
    assert outputs["result"] == "pass" and int(outputs["passed"]) >= 1
    assert "mltest: building mltest-action:local" in log
    assert "Summary - ## ✅ mltest: all checks passed — `tabular`" in log
    assert JOB_TOKEN not in log
    [comment] = github.issue_comments(REPO, 2)
    assert outputs["comment-url"] == comment["html_url"]
    # the container that ran the model code: no token, no runner files, read-only, offline
    view = json.loads((out / "model-view.json").read_text())
    assert JOB_TOKEN not in json.dumps(view["env"])
    assert not {"GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY", "MLTEST_GITHUB_TOKEN"} & set(view["env"])
    assert view["workspace"] == "OSError" and view["network"] != "reachable"
    # input env: by name from the step's env, and as NAME=value; input shm-size's default
    assert view["env"]["E2E_SWITCH"] == "from-the-step"
    assert view["env"]["E2E_DATA_DIR"] == "/data/tabular"
    assert view["withheld"] is None and "runner-only" not in comment["body"]
    assert "environment variable E2E_WITHHELD (at tabular/model.py:" in comment["body"]
    assert view["shm_bytes"] == 2 * 1024**3
    # baselines: update hands the recorded folder to the upload step in docker mode too
    record = json.loads((out / "record.json").read_text())
    assert record["result"] == "pass", log[-5000:]
    assert record["baseline-dir"].endswith("examples/tabular/.mltest")
    assert record["baseline-artifact"] == "mltest-baselines-tabular"

    # The wheels only this test build needs are in no layer of the image (Dockerfile's build
    # stage); `COPY docker/wheels/ /opt/wheels/` then `rm` would leave ~240 MB in one.
    history = subprocess.run(
        ["docker", "history", "--no-trunc", "--format", "{{.Size}}\t{{.CreatedBy}}",
         "mltest-action:local"],
        env=docker_engine, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "/opt/wheels" not in history and "PIP_FIND_LINKS" not in history, history
    size = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Size}}", "mltest-action:local"],
        env=docker_engine, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    print(f"mltest-action:local is {size} bytes; its layers:\n{history}")

    _cancel_in_docker_mode_like_the_runner(github, tmp_path, docker_engine)
    print(f"docker e2e took {time.monotonic() - started:.0f} s")


SLOW = """

from pathlib import Path as _Path
import time as _time


class Slow(TabularMLP):
    def training_step(self, batch, batch_idx):
        (_Path(__file__).parent / "mltest-report" / "training.started").touch()
        _time.sleep(0.2)
        return super().training_step(batch, batch_idx)
"""


def _cancel_in_docker_mode_like_the_runner(github, tmp_path, docker_engine):
    """The image built above, run by the action's step as the runner starts it, then
    cancelled as the runner does: the suite's container ends, the comment says cancelled."""
    from tests.github.conftest import EVENTS
    from tests.github.runner_step import cancel_like_the_runner, start_step, step_environment
    from tests.suites import copy_example

    config = copy_example("tabular", tmp_path / "cancel")
    project = config.parent
    (project / "model.py").write_text((project / "model.py").read_text() + SLOW)
    config.write_text(config.read_text().replace("model:TabularMLP", "model:Slow"))
    (project / "mltest-report").mkdir()
    outputs = tmp_path / "cancel-output"
    outputs.write_text("")
    env = step_environment(
        {"mode": "docker", "image": "mltest-action:local", "gpus": "",
         "github-token": JOB_TOKEN, "config": "mltest.yaml", "comment-id": "cancelled"},
        {"DOCKER_HOST": docker_engine["DOCKER_HOST"], "RUNNER_TEMP": str(tmp_path),
         "GITHUB_WORKSPACE": str(project), "GITHUB_REPOSITORY": REPO,
         "GITHUB_EVENT_NAME": "pull_request", "GITHUB_API_URL": github.url,
         "GITHUB_EVENT_PATH": str(EVENTS / "pull_request.opened.json"),
         "GITHUB_OUTPUT": str(outputs)},
    )  # fmt: skip
    step = start_step(project, env, tmp_path / "cancel.log")
    deadline = time.monotonic() + 300
    while not (project / "mltest-report" / "training.started").exists():
        assert step.poll() is None, (tmp_path / "cancel.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "training never started"
        time.sleep(0.2)
    needed, took = cancel_like_the_runner(step)
    log = (tmp_path / "cancel.log").read_text()
    running = subprocess.run(["docker", "ps", "-q"], env=docker_engine, capture_output=True,
                             text=True, check=True).stdout.split()  # fmt: skip
    assert running == [], log[-3000:]
    assert took < 10, log[-3000:]
    report = json.loads((project / "mltest-report" / "report.json").read_text())
    assert report["cancelled"] and report["complete"], log[-3000:]
    cancelled = [c for c in github.issue_comments(REPO, 2) if "comment-id=cancelled" in c["body"]]
    assert cancelled and "the run was cancelled" in cancelled[0]["body"], log[-3000:]
    print(f"docker mode: {needed.name} ended the step in {took:.1f} s")
