"""Parity between action.yml, the script it runs, the settings, the outputs and the docs:
an input added in one place and forgotten in another fails here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from mltest.github.publish import outputs_for
from mltest.github.settings import INPUT_ENV, ActionSettings
from tests.github.conftest import make_report

ROOT = Path(__file__).resolve().parents[2]
ACTION = yaml.safe_load((ROOT / "action.yml").read_text())
STEP = ACTION["runs"]["steps"][0]
RUN_SH = (ROOT / "action" / "run.sh").read_text()
# Inputs only action/run.sh reads (they decide where Python runs, not what it does).
SCRIPT_ONLY = {
    "mode": "MLTEST_MODE",
    "image": "MLTEST_IMAGE",
    "build-args": "MLTEST_BUILD_ARGS",
    "docker-options": "MLTEST_DOCKER_OPTIONS",
    "network": "MLTEST_NETWORK",
    "memory": "MLTEST_MEMORY",
    "shm-size": "MLTEST_SHM_SIZE",
    "pull": "MLTEST_PULL",
    "registry-username": "MLTEST_REGISTRY_USERNAME",
    "registry-password": "MLTEST_REGISTRY_PASSWORD",
}


def test_action_is_composite_with_branding():
    assert ACTION["runs"]["using"] == "composite"
    assert {"icon", "color"} <= ACTION["branding"].keys()


def test_every_input_is_described_and_forwarded_through_env():
    forwarded = {v: k for k, v in STEP["env"].items()}
    for name, spec in ACTION["inputs"].items():
        assert spec.get("description"), f"input {name} has no description"
        if name == "working-directory":
            assert STEP["working-directory"] == "${{ inputs.working-directory }}"
            continue
        variable = forwarded.get(f"${{{{ inputs.{name} }}}}")
        assert variable, f"input {name} is not passed to the step through env"
        assert variable == {**INPUT_ENV, **SCRIPT_ONLY}[name]


def test_no_expression_inside_the_script():
    assert "${{" not in STEP["run"]


def test_docker_mode_passes_every_setting_but_the_token_into_the_suite_container():
    suite_env = RUN_SH.split("context_env=")[1].split("done")[0]
    for variable in INPUT_ENV.values():
        if variable == "MLTEST_GITHUB_TOKEN":
            assert variable not in suite_env
        else:
            assert re.search(rf"\b{variable}\b", suite_env), variable


def test_only_the_publishing_container_gets_the_token_and_the_file_commands():
    suite, publish = RUN_SH.split('"$image" suite')[0], RUN_SH.split('"$image" suite')[1]
    suite_run = "docker run" + suite.split("docker run")[-1]
    for name in ("MLTEST_GITHUB_TOKEN", "GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY", "RUNNER_TEMP"):
        assert name not in suite_run, name
    assert "--env MLTEST_GITHUB_TOKEN" in publish and "--env GITHUB_OUTPUT" in publish
    for option in ("--init", "--cap-drop ALL", "no-new-privileges", "--pids-limit", "--network"):
        assert option in suite_run, option


def test_defaults_match_the_settings():
    defaults = ActionSettings()
    inputs = ACTION["inputs"]
    assert inputs["config"]["default"] == str(defaults.config)
    assert inputs["report-dir"]["default"] == str(defaults.report_dir)
    assert inputs["comment"]["default"] == defaults.comment.value
    assert inputs["fail-on"]["default"] == defaults.fail_on.value
    assert inputs["github-token"]["default"] == "${{ github.token }}"


def test_outputs_are_the_ones_the_entrypoint_writes():
    written = set(outputs_for(make_report(), Path("r.json"), "u")) | set(outputs_for(None, None))
    assert set(ACTION["outputs"]) == written
    for name, spec in ACTION["outputs"].items():
        assert spec["value"] == f"${{{{ steps.mltest.outputs.{name} }}}}"


@pytest.mark.parametrize("doc", ["docs/github-action.md", "README.md"])
def test_every_input_and_output_is_documented(doc):
    path = ROOT / doc
    assert path.exists(), f"{doc} is missing"
    text = path.read_text()
    missing = [n for n in [*ACTION["inputs"], *ACTION["outputs"]] if f"| `{n}` |" not in text]
    assert not missing, f"{doc} has no table row for: {', '.join(missing)}"
