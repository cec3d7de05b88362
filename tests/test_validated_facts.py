"""The verdict is computed from validated facts: a corrupt baseline or golden is exit 2 naming
the file and key, NaN predictions fail the check that sees them, and a run in which no check
ran and passed is never a pass. Real projects, real files, real worker processes.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from mltest.checks.regression.golden import encode_golden, read_golden
from mltest.cli import main
from mltest.errors import BaselineError
from mltest.supervisor import run_suite
from tests.hostile import hostile_suite
from tests.suites import copy_example, edited_example

KEY = "cpu-torch2.13-32-true"


def run_cli(config: Path, report_dir: Path, *extra: str) -> int:
    return main(["run", "--config", str(config), "--report-dir", str(report_dir), *extra])


def report_of(report_dir: Path) -> dict:
    return json.loads((report_dir / "report.json").read_text())


def edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2))  # json writes NaN, Infinity as bare tokens


# --- baselines and goldens --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "why"),
    [(math.nan, "is nan; a baseline number must be finite"),
     (math.inf, "is inf; a baseline number must be finite"),
     (1e300, "not a number from 0 to 1,000,000")],
    ids=["NaN", "Infinity", "1e300"],
)  # fmt: skip
def test_a_non_finite_or_out_of_range_baseline_is_exit_2_naming_file_and_key(
    tmp_path, value, why
):
    # "memorized in 14 epochs; baseline nan" used to pass: no count is ever above NaN.
    config = copy_example("tabular", tmp_path)
    baselines = config.parent / ".mltest" / "baselines.json"
    edit_json(baselines, lambda d: d["checks"]["memorization"][KEY].update(median=value))
    assert run_cli(config, tmp_path / "r", "--check", "memorization") == 2
    report = report_of(tmp_path / "r")
    [error] = report["errors"]
    assert str(baselines) in error and f"`checks.memorization.{KEY}.median`" in error
    assert why in error and "restore it from git" in error
    assert all(c["status"] == "skipped" for c in report["checks"])  # decided nothing


@pytest.mark.slow
def test_a_golden_noise_that_would_excuse_any_change_is_exit_2(tmp_path):
    # A real change to the model under test (half the learning rate) fails regression; a
    # noise of 1e300 in the golden's JSON widened the tolerance until it passed.
    config = edited_example("tabular", tmp_path, yaml_edits=[("lr: 0.01", "lr: 0.005")])
    meta = config.parent / ".mltest" / "golden" / "regression" / f"{KEY}.json"
    edit_json(meta, lambda d: d["noise"].update(output=1e300))
    assert run_cli(config, tmp_path / "r", "--check", "regression") == 2
    regression = next(c for c in report_of(tmp_path / "r")["checks"] if c["name"] == "regression")
    assert regression["status"] == "error"
    assert f"{meta}: `noise.output` is 1e+300" in regression["summary"]


def record(tmp_path: Path, name: str, outputs: dict, noise: dict | None = None):
    """A golden record as `baseline update` writes it: its .safetensors and .json files."""
    tensors, meta = encode_golden(outputs, {"noise": noise or {}})
    paths = tmp_path / f"{name}.safetensors", tmp_path / f"{name}.json"
    paths[0].write_bytes(tensors)
    paths[1].write_bytes(meta)
    return paths


def test_a_golden_with_a_non_finite_number_is_refused_naming_the_key(tmp_path):
    tensors, meta = record(tmp_path, "a", {"output": np.ones((4, 3), np.float32)})
    edit_json(meta, lambda d: d["noise"].update(output=math.inf))
    with pytest.raises(BaselineError, match=r"`noise.output` is inf; the measured noise"):
        read_golden(tensors, meta, "mltest baseline update")


def test_a_golden_whose_two_files_come_from_different_recordings_is_refused(tmp_path):
    # A kill between writing the JSON and the tensors of a record leaves this mix behind.
    old = record(tmp_path, "old", {"output": np.ones((4, 3), np.float32)})
    new = record(tmp_path, "new", {"output": np.full((4, 3), 1.0 + 1e-7, np.float32)})
    assert read_golden(*new, "cmd") is not None
    with pytest.raises(BaselineError, match="come from different recordings"):
        read_golden(old[0], new[1], "cmd")


@pytest.mark.slow
def test_a_golden_tensor_file_that_baselines_json_did_not_record_is_exit_2(tmp_path):
    # A record from before the golden's JSON held the hash (made here by dropping it):
    # baselines.json's `outputs_hash` still ties it to its tensors. A change within the
    # tolerance passed before.
    from safetensors.numpy import load_file, save_file

    config = copy_example("tabular", tmp_path)
    tensors = config.parent / ".mltest" / "golden" / "regression" / f"{KEY}.safetensors"
    meta = tensors.with_suffix(".json")
    recorded = json.loads(meta.read_text())
    recorded.pop("outputs_hash", None)
    meta.write_text(json.dumps(recorded, indent=2))
    arrays = load_file(str(tensors))
    arrays["output"][0, 0] += 1e-7
    save_file(arrays, str(tensors))
    assert run_cli(config, tmp_path / "r", "--check", "regression") == 2
    regression = next(c for c in report_of(tmp_path / "r")["checks"] if c["name"] == "regression")
    assert "does not hold the outputs baselines.json recorded" in regression["summary"]


# --- NaN predictions ---------------------------------------------------------------------------

NAN_FOR_CLASS_0 = """

class NanForClass0(TabularMLP):
    def predict_step(self, batch, batch_idx, dataloader_idx=0):
        scores = super().predict_step(batch, batch_idx, dataloader_idx)
        picked = scores.argmax(dim=1) == 0
        return torch.where(picked[:, None], torch.full_like(scores, float("nan")), scores)
"""


def nan_model(tmp_path: Path) -> Path:
    config = copy_example("tabular", tmp_path)
    model = config.parent / "model.py"
    model.write_text(model.read_text() + NAN_FOR_CLASS_0)
    config.write_text(config.read_text().replace("model:TabularMLP", "model:NanForClass0"))
    return config


@pytest.mark.slow
def test_nan_predictions_fail_key_examples_instead_of_reading_as_class_0(tmp_path):
    config = nan_model(tmp_path)
    assert run_cli(config, tmp_path / "r", "--check", "key_examples") == 1
    checks = {c["name"]: c for c in report_of(tmp_path / "r")["checks"]}
    assert checks["key_examples"]["status"] == "fail"
    assert "NaN in its own prediction" in checks["key_examples"]["details"]


@pytest.mark.slow
def test_nan_predictions_are_never_recorded_as_golden_outputs(tmp_path):
    config = nan_model(tmp_path)
    report = run_suite(config, tmp_path / "r", update_baselines=True, only=["regression"])
    regression = next(c for c in report.checks if c.name == "regression")
    assert regression.status.value == "fail"
    assert "predict_step returned NaN on the fixed inputs (`output`:" in regression.summary
    assert report.verdict.exit_code == 1


# --- what the plan runs -------------------------------------------------------------------------


def test_a_config_without_checks_is_exit_2_not_all_checks_passed(tmp_path):
    config = copy_example("tabular", tmp_path)
    text = config.read_text()
    config.write_text(text[: text.index("checks:")] + "checks: {}\n")
    assert run_cli(config, tmp_path / "r") == 2
    [error] = report_of(tmp_path / "r")["errors"]
    assert "no check is configured under `checks:`" in error
    assert "all checks passed" not in (tmp_path / "r" / "report.md").read_text()


def test_check_naming_a_check_the_config_does_not_list_is_exit_2(tmp_path):
    config = copy_example("tabular", tmp_path)
    text = config.read_text()
    config.write_text(text[: text.index("  key_examples:")])
    assert run_cli(config, tmp_path / "r", "--check", "key_examples") == 2
    [error] = report_of(tmp_path / "r")["errors"]
    assert "--check key_examples: not configured in" in error


def test_the_worker_cannot_set_run_metadata(tmp_path):
    config = hostile_suite(
        tmp_path,
        """
        _sender().send("facts", facts={"git_sha": "forged", "pr": 999, "torch": "9.9",
                                      "baseline_dir": "/repo/.git", "baseline_files": ["x"]})
        return _passed()
        """,
    )
    report = run_suite(config, tmp_path / "r", only=["sanity"], metadata={"pr": 7})
    meta = report.metadata
    assert meta["pr"] == 7 and meta["git_sha"] != "forged" and meta["torch"] == "9.9"
    assert "baseline_dir" not in meta and "baseline_files" not in meta
