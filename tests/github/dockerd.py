"""A Docker engine of the test's own: dockerd on a private socket, as root (apt-installed when
missing), stopped by its pid afterwards. Used by the docker-mode tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def need_root_tool(command: str, apt_package: str) -> None:
    if shutil.which(command):
        return
    if os.geteuid() != 0:
        pytest.skip(f"{command} is missing and installing it needs root")
    subprocess.run(["apt-get", "update", "-q"], capture_output=True)
    result = subprocess.run(
        ["apt-get", "install", "-y", "-q", apt_package], capture_output=True, text=True
    )
    if result.returncode != 0 or not shutil.which(command):
        pytest.skip(f"could not apt-get install {apt_package}: {result.stderr[-500:]}")


@contextmanager
def running_dockerd() -> Iterator[dict[str, str]]:
    """The environment (DOCKER_HOST) of a dockerd started for the caller."""
    need_root_tool("dockerd", "docker.io")
    if not shutil.which("docker"):
        pytest.skip("the docker CLI is missing")
    root = Path(tempfile.mkdtemp(prefix="dk", dir="/tmp"))  # short: unix socket path limit
    sock = f"unix://{root}/docker.sock"
    log = (root / "dockerd.log").open("w")
    daemon = subprocess.Popen(
        [
            "dockerd",
            "--data-root",
            str(root / "data"),
            "--exec-root",
            str(root / "exec"),
            "-H",
            sock,
            "--pidfile",
            str(root / "docker.pid"),
            "--iptables=false",
            "--ip6tables=false",
            "--bridge=none",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    env = {**os.environ, "DOCKER_HOST": sock}
    try:
        for _ in range(60):
            if subprocess.run(["docker", "info"], env=env, capture_output=True).returncode == 0:
                break
            if daemon.poll() is not None:
                pytest.skip(f"dockerd exited: {(root / 'dockerd.log').read_text()[-800:]}")
            time.sleep(0.5)
        else:
            pytest.skip("dockerd did not answer within 30 s")
        yield env
    finally:
        daemon.terminate()
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
        log.close()
        # dockerd can leave its exec-root mounts (network namespaces) behind: unmount them.
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
        for mount in sorted((m for m in mounts if m.startswith(str(root))), reverse=True):
            subprocess.run(["umount", mount], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
