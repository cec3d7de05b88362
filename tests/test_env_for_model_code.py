"""Environment variables for the model code: passed on purpose by name or as `NAME=value`,
credential-like names refused unless allowed, values never printed, and a lookup of a variable
mltest withheld named in a notice. Real worker processes run the tabular example."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mltest.env_request import EnvError, EnvRequest, build_worker_env
from mltest.supervisor import run_suite
from tests.suites import copy_example

ROOT = Path(__file__).resolve().parents[1]

# Appended to the tabular example's model.py: reads variables at import, as project code does,
# and writes down what the worker's environment holds.
READER = """

import os as _os
from pathlib import Path as _Path

DATA_DIR = _os.environ.get("DATA_DIR", "data")
SWITCH = _os.getenv("MY_SWITCH")
HAS_TOKEN = "HF_TOKEN" in _os.environ
_Path(__file__).with_name("worker_env.json").write_text(__import__("json").dumps(dict(_os.environ)))
"""
VALUES = {"DATA_DIR": "/data/value-1", "MY_SWITCH": "value-2", "HF_TOKEN": "hf_value3"}


def _project(tmp_path: Path) -> Path:
    config = copy_example("tabular", tmp_path)
    model = config.parent / "model.py"
    model.write_text(model.read_text() + READER)
    return config


def _report_text(report_dir: Path) -> str:
    return "".join(p.read_text() for p in report_dir.iterdir() if p.is_file())


def test_entries_parse_by_name_or_value_and_refuse_credentials_unless_allowed():
    request = EnvRequest.parse(["DATA_DIR\n# comment\n\n  WANDB_MODE=offline ", "A=x=y"])
    assert request.passed == ("DATA_DIR",)
    assert dict(request.values) == {"WANDB_MODE": "offline", "A": "x=y"}
    assert "offline" not in repr(request)
    with pytest.raises(EnvError, match="HF_TOKEN looks like a credential.*allow-secret-env"):
        EnvRequest.parse(["HF_TOKEN"])
    with pytest.raises(EnvError, match="DB_PASSWORD") as refused:
        EnvRequest.parse(["DB_PASSWORD=hunter2"])
    assert "hunter2" not in str(refused.value)
    assert EnvRequest.parse(["HF_TOKEN"], ["HF_TOKEN"]).passed == ("HF_TOKEN",)
    for never in ("GITHUB_TOKEN", "MLTEST_GITHUB_TOKEN", "GITHUB_ENV", "MLTEST_JOB"):
        with pytest.raises(EnvError, match=f"{never} is never passed"):
            EnvRequest.parse([never], [never])
    # `HF_TOKEN: hf_abc` (YAML habit) is not a name; the message shows only the name-like start
    with pytest.raises(EnvError, match="starting `HF_TOKEN`") as bad:
        EnvRequest.parse(["HF_TOKEN: hf_abc"])
    assert "hf_abc" not in str(bad.value)


def test_withheld_names_leave_out_secrets_and_what_the_worker_gets():
    source = {"PATH": "/bin", "DATA_DIR": "d", "AWS_SECRET_ACCESS_KEY": "s", "MLTEST_ENV": "x",
              "MLTEST_RUNNER_ENV_NAMES": "RUNNER_ONLY GH_TOKEN"}  # fmt: skip
    built = build_worker_env(source, EnvRequest.parse(["MISSING", "SET=1"]))
    assert built.env["SET"] == "1" and "DATA_DIR" not in built.env
    assert built.withheld == ("DATA_DIR", "RUNNER_ONLY")
    assert built.unset == ("MISSING",)


def test_the_model_code_gets_what_was_passed_and_a_withheld_lookup_is_named(tmp_path):
    config = _project(tmp_path)
    environ = {**os.environ, **VALUES, "WANDB_MODE": "offline"}
    report = run_suite(config, tmp_path / "r", only=["sanity"], environ=environ,
                       pass_env=["WANDB_MODE", "LITERAL=a=b", "NOT_SET_ANYWHERE"])  # fmt: skip
    seen = json.loads((config.parent / "worker_env.json").read_text())
    assert seen["WANDB_MODE"] == "offline" and seen["LITERAL"] == "a=b"
    assert not {"DATA_DIR", "MY_SWITCH", "HF_TOKEN"} & set(seen)
    [sanity] = [c for c in report.checks if c.name == "sanity"]
    notices = "\n".join(sanity.notices)
    for name in ("DATA_DIR", "MY_SWITCH"):
        assert f"environment variable {name} (at tabular/model.py:" in notices
        assert f"add a line `{name}` to the action input `env`" in notices
    assert "NOT_SET_ANYWHERE was asked for, but it is not set" in notices
    assert "HF_TOKEN" not in notices  # a credential is never suggested
    assert not any(v in _report_text(tmp_path / "r") for v in VALUES.values())


def test_a_harmless_run_has_no_env_notice(tmp_path):
    # Lightning and torch probe many variables (SLURM_*, LOCAL_RANK...): not the model's reads.
    config = copy_example("tabular", tmp_path)
    environ = {**os.environ, "SLURM_JOB_ID": "1", "LOCAL_WORLD_SIZE": "1", "DATA_DIR": "d"}
    report = run_suite(config, tmp_path / "r", only=["sanity"], environ=environ)
    assert not any("environment variable" in n for c in report.checks for n in c.notices)


def test_a_credential_is_exit_2_naming_it_and_passes_only_when_allowed(tmp_path):
    config = _project(tmp_path)
    env = {**os.environ, **VALUES, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "mltest", "run", "--config", str(config), "--check",
               "sanity", "--report-dir", str(tmp_path / "r")]  # fmt: skip
    refused = subprocess.run([*command, "--env", "HF_TOKEN"], env=env, capture_output=True,
                             text=True, timeout=300)  # fmt: skip
    assert refused.returncode == 2, refused.stdout + refused.stderr
    out = refused.stdout + refused.stderr + _report_text(tmp_path / "r")
    assert "HF_TOKEN looks like a credential" in out and "--allow-secret-env" in out
    assert "hf_value3" not in out and not (config.parent / "worker_env.json").exists()

    allowed = subprocess.run([*command, "--env", "HF_TOKEN", "--allow-secret-env", "HF_TOKEN"],
                             env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    seen = json.loads((config.parent / "worker_env.json").read_text())
    assert seen["HF_TOKEN"] == "hf_value3" and "GITHUB_TOKEN" not in seen
    assert "hf_value3" not in allowed.stdout + allowed.stderr + _report_text(tmp_path / "r")
