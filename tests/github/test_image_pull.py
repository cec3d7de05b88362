"""Getting the image in docker mode: the registry login, the pull policy and what a failed pull
says, with action/run.sh run as the action's step runs it, a real Docker engine started here
and a fake registry on 127.0.0.1 (tests/github/fake_registry.py).

The registry serves a tiny busybox image whose entrypoint only echoes its arguments, so a
successful step runs both containers ("suite", then "publish") in well under a second.
"""

from __future__ import annotations

import base64
import json
import shutil
import socket
import struct
import subprocess
from pathlib import Path

import pytest

from tests.github.conftest import EVENTS, JOB_TOKEN
from tests.github.dockerd import need_root_tool, running_dockerd
from tests.github.fake_registry import FakeRegistry
from tests.github.runner_step import ROOT, step_environment
from tests.github.test_actions import read_outputs
from tests.github.test_early_errors import EXAMPLE_CONFIG, assert_turned_to_error, earlier_pass
from tests.github.test_publish import REPO

STRANGER_PASSWORD = "stranger-registry-password"


def _static_busybox() -> Path:
    """A busybox that runs in an image with nothing else in it (no libc)."""
    need_root_tool("busybox", "busybox-static")
    path = Path("/bin/busybox")
    data = path.read_bytes()
    # ELF64: program headers at e_phoff (0x20), e_phentsize (0x36), e_phnum (0x38); a
    # PT_INTERP (3) header means a dynamic loader is needed.
    phoff = struct.unpack_from("<Q", data, 0x20)[0]
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    types = [struct.unpack_from("<I", data, phoff + i * phentsize)[0] for i in range(phnum)]
    if 3 in types:
        pytest.skip("/bin/busybox is dynamically linked: apt-get install busybox-static")
    return path


@pytest.fixture(scope="module")
def engine():
    with running_dockerd() as env:
        yield env


@pytest.fixture(scope="module")
def registry():
    users = {"octocat": JOB_TOKEN, "stranger": STRANGER_PASSWORD}
    with FakeRegistry(_static_busybox(), users=users, owner="octocat") as fake:
        yield fake


@pytest.fixture
def step(tmp_path, engine, registry, github):
    """Runs the action's step (action/run.sh) on a pull_request event against the loopback
    GitHub with the given inputs; returns (code, log, the step's outputs). Each run starts
    without the image and with no requests seen."""
    home, temp, workspace = tmp_path / "home", tmp_path / "runner-temp", tmp_path / "ws"
    for folder in (home, temp, workspace):
        folder.mkdir()
    outputs, summary = tmp_path / "output", tmp_path / "summary"
    # A suite named `tabular`: an early error lands in that suite's sticky comment.
    shutil.copy(EXAMPLE_CONFIG, workspace / "mltest.yaml")

    def run(inputs: dict[str, str], keep_image: bool = False, **env: str):
        if not keep_image:
            forget(engine, inputs.get("image", ""))
        registry.clear()
        outputs.write_text("")
        summary.write_text("")
        context = {
            "HOME": str(home),
            "RUNNER_TEMP": str(temp),
            "GITHUB_WORKSPACE": str(workspace),
            "GITHUB_OUTPUT": str(outputs),
            "GITHUB_STEP_SUMMARY": str(summary),
            "GITHUB_ACTOR": "octocat",
            "GITHUB_REPOSITORY": REPO,
            "GITHUB_EVENT_NAME": "pull_request",
            "GITHUB_EVENT_PATH": str(EVENTS / "pull_request.opened.json"),
            "GITHUB_API_URL": github.url,
            "DOCKER_HOST": engine["DOCKER_HOST"],
            **env,
        }
        step_env = step_environment({"gpus": "", "github-token": JOB_TOKEN, **inputs}, context)
        result = subprocess.run(
            ["bash", str(ROOT / "action" / "run.sh")],
            cwd=workspace,
            env=step_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        log = result.stdout + result.stderr
        # Credentials never stay behind: not in the runner user's ~/.docker, not in RUNNER_TEMP.
        assert not (home / ".docker").exists(), log
        assert list(temp.iterdir()) == [], log
        return result.returncode, log, read_outputs(outputs)

    return run


def forget(engine: dict[str, str], image: str) -> None:
    if image:
        subprocess.run(["docker", "rmi", "-f", image], env=engine, capture_output=True)


def _secrets_only_masked(log: str) -> None:
    """The job's token and the registry password appear only in ::add-mask:: lines, which the
    runner consumes and never shows."""
    for line in log.splitlines():
        if line.startswith("::add-mask::"):
            continue
        assert JOB_TOKEN not in line and STRANGER_PASSWORD not in line, line


def test_a_private_image_on_the_github_registry_pulls_with_the_jobs_token(step, registry):
    image = registry.image("private/tiny")

    # The registry is GHCR's stand-in: the job's token (github-token) is what logs in.
    code, log, outputs = step({"image": image}, MLTEST_GITHUB_REGISTRY=registry.host)

    assert code == 0, log
    assert f"mltest: logging in to {registry.host} with the job's token" in log
    assert "fake mltest image ran: suite" in log and "fake mltest image ran: publish" in log
    assert {user for _, _, user in registry.manifest_requests()} == {"octocat"}
    _secrets_only_masked(log)

    # A job whose token cannot read the package: denied, and how to grant it.
    code, log, outputs = step(
        {"image": image, "github-token": STRANGER_PASSWORD},
        MLTEST_GITHUB_REGISTRY=registry.host,
        GITHUB_ACTOR="stranger",
    )
    assert code == 2 and outputs["result"] == "error", log
    assert (
        f"could not pull {image}: no access (denied to the job's token (input github-token, "
        "user stranger)): the image is private, the credentials cannot read it, or it does not "
        "exist. To fix: in the GHCR package's settings, Manage Actions access, add this "
        "repository with the Read role"
    ) in log
    _secrets_only_masked(log)

    # The same image on another registry (no credentials for it): a 401, said as such.
    code, log, outputs = step({"image": image})
    assert code == 2, log
    assert f"could not pull {image}: {registry.host} needs a login (401 unauthorized)" in log
    assert outputs["result"] == "error"


def test_a_login_the_job_already_made_wins_over_the_jobs_token(step, registry, tmp_path):
    # e.g. docker/login-action earlier in the job, with a token that reads this package
    own = tmp_path / "own-docker-config"
    own.mkdir()
    auth = base64.b64encode(f"octocat:{JOB_TOKEN}".encode()).decode()
    config = json.dumps({"auths": {registry.host: {"auth": auth}}})
    (own / "config.json").write_text(config)

    code, log, _ = step(
        {"image": registry.image("private/tiny"), "github-token": "ghs_cannot_read_it"},
        MLTEST_GITHUB_REGISTRY=registry.host,
        DOCKER_CONFIG=str(own),
    )

    assert code == 0, log
    assert f"mltest: using the runner's Docker login for {registry.host}" in log
    assert {user for _, _, user in registry.manifest_requests()} == {"octocat"}
    assert (own / "config.json").read_text() == config and "ghs_cannot_read_it" not in log


@pytest.mark.parametrize(
    ("repository", "inputs", "cause"),
    [
        (
            "private/tiny",
            {"registry-username": "stranger", "registry-password": STRANGER_PASSWORD},
            "no access (denied to registry-username stranger): the image is private",
        ),
        ("busy/tiny", {}, "the pull rate limit of {host} is reached (429 toomanyrequests)"),
        ("public/tiny:v2", {}, "there is no such tag or digest (manifest unknown)"),
    ],
    ids=["denied", "rate-limited", "no-such-tag"],
)
def test_a_failed_pull_is_exit_2_naming_the_image_and_the_cause(
    step, registry, github, repository, inputs, cause
):
    image = f"{registry.host}/{repository}" + ("" if ":" in repository else ":v1")
    earlier = earlier_pass(github)

    code, log, outputs = step({"image": image, **inputs})

    assert code == 2, log
    error = f"could not pull {image}: " + cause.format(host=registry.host)
    assert "::error " in log and error in log
    # The PR's sticky comment no longer shows the earlier pass next to a red check.
    assert_turned_to_error(github, earlier, f"could not pull {image}")
    assert "Error response from daemon" in log  # docker's own words are still shown
    assert outputs["result"] == "error"
    _secrets_only_masked(log)


def test_an_unreachable_registry_is_named_as_a_network_problem(step):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    image = f"127.0.0.1:{port}/public/tiny:v1"

    code, log, _ = step({"image": image})

    assert code == 2, log
    assert f"could not pull {image}: 127.0.0.1:{port} cannot be reached from this runner" in log


def test_a_wrong_registry_password_stops_at_the_login(step, registry):
    image = registry.image("private/tiny")

    code, log, outputs = step(
        {"image": image, "registry-username": "octocat", "registry-password": "wrong-one"}
    )

    assert code == 2, log
    assert (
        f"could not log in to {registry.host} as octocat: {registry.host} refused the "
        "credentials of registry-username octocat (401 unauthorized)"
    ) in log
    assert "::add-mask::wrong-one" in log and log.count("wrong-one") == 1
    assert registry.manifest_requests() == []
    assert outputs["result"] == "error"


def test_pull_policy_never_missing_always(step, registry, engine):
    image = registry.image("public/tiny")

    code, log, outputs = step({"image": image, "pull": "never"})
    assert code == 2, log
    assert f"image {image} is not on this runner and input pull is never. Pre-pull it" in log
    assert registry.requests == [] and outputs["result"] == "error"

    code, log, _ = step({"image": image, "pull": "missing"})  # absent: pulled
    assert code == 0 and len(registry.manifest_requests()) >= 1, log

    for policy in ("never", "missing"):  # present: used as it is, the registry never asked
        code, log, _ = step({"image": image, "pull": policy}, keep_image=True)
        assert code == 0 and registry.requests == [], log
        assert f"mltest: using {image}, already on this runner (pull: {policy})" in log

    code, log, _ = step({"image": image, "pull": "always"}, keep_image=True)
    assert code == 0 and len(registry.manifest_requests()) >= 1, log

    code, log, _ = step({"image": image, "pull": "sometimes"})
    assert code == 2 and "input pull (MLTEST_PULL) must be one of always, missing, never" in log


def test_an_image_pinned_by_digest(step, registry):
    image = f"{registry.host}/public/tiny@{registry.digest}"

    code, log, _ = step({"image": image})
    assert code == 0 and "fake mltest image ran: suite" in log, log
    # (the engine may take the manifest from its cache by digest: the pull asks at least /v2/)
    assert f"mltest: pulling {image}" in log and registry.requests, log

    code, log, _ = step({"image": image[:-1]})  # a digest one hex digit short
    assert code == 2 and "names a digest that is not sha256:<64 lowercase hex digits>" in log


def test_image_build_logs_in_to_the_base_images_registry_and_names_a_failed_build(step, registry):
    base = registry.image("private/tiny")
    inputs = {"image": "build", "build-args": f"BASE_IMAGE={base}"}

    # No credentials for the base image's registry: the build's FROM is refused.
    code, log, outputs = step(inputs, DOCKER_BUILDKIT="0")
    assert code == 2 and outputs["result"] == "error", log
    assert (
        "could not build mltest-action:local from the action's Dockerfile (base image "
        f"{base}): {registry.host} needs a login (401 unauthorized)"
    ) in log

    # With them, FROM pulls the base (the tiny image has no shell, so the first RUN fails:
    # docker's own last error line is the cause).
    code, log, _ = step(
        {**inputs, "registry-username": "octocat", "registry-password": JOB_TOKEN},
        DOCKER_BUILDKIT="0",
    )
    assert code == 2, log
    assert {user for _, _, user in registry.manifest_requests()} == {"octocat"}
    assert f"(base image {base}): docker said: " in log
    _secrets_only_masked(log)
