"""Facts about a run that the supervisor records without running user code: versions, git,
the suite's name even when its config does not validate, and the worker's reported facts."""

from __future__ import annotations

import datetime
import math
import platform
import re
import subprocess
from pathlib import Path
from typing import Any

from mltest import __version__

# What the worker may tell about its environment (mltest.engine.environment_facts); anything
# else it sends is dropped, so it can never set the git sha, the PR or a baseline folder.
WORKER_FACT_KEYS = frozenset(
    {"torch", "lightning", "cuda", "cudnn", "device", "precision", "determinism"}
)


def suite_name_from_file(config_path: Path) -> str:
    """The `suite:` value read from the raw file, without parsing YAML.

    Used while the config cannot (yet) be validated, so that a broken config still reports
    under its suite's name and updates that suite's PR comment, not a new one.
    """
    try:
        raw = config_path.read_bytes()[:1_000_000].decode("utf-8", errors="replace")
    except OSError:
        return "mltest"
    match = re.search(r"^suite[ \t]*:[ \t]*(['\"]?)([^'\"#\n]+?)\1[ \t]*(#.*)?$", raw, re.M)
    return match.group(2).strip() if match else "mltest"


def worker_facts(facts: Any) -> dict[str, Any]:
    """The worker's facts (versions, device), kept only as short scalars under the keys of
    `WORKER_FACT_KEYS`: run metadata (git sha, PR, baseline folder) comes from the supervisor."""
    if not isinstance(facts, dict):
        return {}
    kept = {}
    for key, value in facts.items():
        if key in WORKER_FACT_KEYS:
            finite = not isinstance(value, float) or math.isfinite(value)
            if isinstance(value, str):
                kept[key] = value[:200]
            elif (value is None or isinstance(value, (bool, int, float))) and finite:
                kept[key] = value
    return kept


def run_metadata(config_path: Path) -> dict[str, Any]:
    return {
        "mltest": __version__,
        "config": str(config_path),
        "started_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        **_git(config_path.resolve().parent),
    }


def _git(directory: Path) -> dict[str, Any]:
    """Commit and branch when the config lives in a git checkout; nothing otherwise."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args], cwd=directory, capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    return {"git_sha": git("rev-parse", "HEAD"), "git_branch": git("branch", "--show-current")}
