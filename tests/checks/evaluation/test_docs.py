"""The gate's documentation keeps up: every setting is on its page, its commands are in the
README, and the documented nightly workflow passes the linters CI runs on workflows."""

from __future__ import annotations

import shutil
import subprocess
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from mltest.checks.evaluation.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
PAGE = (ROOT / "docs" / "checks" / "evaluation.md").read_text(encoding="utf-8")
WORKFLOW = ROOT / "docs" / "workflows" / "mltest-nightly.yml"


def _keys(model: type[BaseModel]) -> set[str]:
    found = set()
    for name, field in model.model_fields.items():
        found.add(field.alias or name)
        for arg in [field.annotation, *typing.get_args(field.annotation)]:
            for inner in [arg, *typing.get_args(arg)]:
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    found |= _keys(inner)
    return found


def test_every_setting_is_documented():
    missing = sorted(k for k in _keys(Settings) if f"`{k}" not in PAGE and f"{k}:" not in PAGE)
    assert not missing, f"docs/checks/evaluation.md does not mention {missing}"


def test_the_readme_names_the_gate_and_its_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for text in ("docs/checks/evaluation.md", "--pin", "mltest hard-examples",
                 "examples/house_prices", "mltest-nightly.yml"):  # fmt: skip
        assert text in readme, text


@pytest.mark.parametrize("linter", ["actionlint", "zizmor"])
def test_the_nightly_workflow_passes_the_workflow_linters(linter, tmp_path):
    if shutil.which(linter) is None:
        pytest.fail(f"{linter} is not installed: pip install -e '.[dev]'")
    if linter == "actionlint":  # the documented runner labels: [self-hosted, gpu]
        labels = tmp_path / "actionlint.yaml"
        labels.write_text("self-hosted-runner:\n  labels: [gpu]\n")
        command = ["actionlint", "-config-file", str(labels), str(WORKFLOW)]
    else:
        command = ["zizmor", "--offline", str(WORKFLOW)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "cron:" in WORKFLOW.read_text()
