"""The linters CI runs, as tests: ruff, actionlint, zizmor, hadolint, shellcheck.

They come with the `dev` extra (`pip install -e ".[dev]"`); a missing one fails with that hint
rather than skipping, so CI can never pass without linting.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

LINTERS = {
    "ruff": ["ruff", "check", "."],
    # actionlint must run inside the git repository to check `uses: ./` against action.yml.
    "actionlint": ["actionlint"],
    "zizmor": ["zizmor", "--offline", "."],
    "hadolint": ["hadolint", "Dockerfile"],
    # -x: follow run.sh's `source` of image.sh, which is also checked on its own.
    "shellcheck": ["shellcheck", "-x", "action/run.sh", "action/image.sh"],
}


@pytest.mark.parametrize("name", LINTERS)
def test_linter_is_clean(name):
    command = LINTERS[name]
    if shutil.which(command[0]) is None:
        pytest.fail(f"{command[0]} is not installed: pip install -e '.[dev]'")
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (
        f"{' '.join(command)} found problems:\n{result.stdout}\n{result.stderr}"
    )
