"""Bad input end to end through the CLI: exit code 2, a message naming the culprit, and a report."""

from __future__ import annotations

import json

from mltest.cli import main
from tests.suites import copy_example


def run_cli(config, report_dir, *extra):
    return main(["run", "--config", str(config), "--report-dir", str(report_dir), *extra])


def read_report(report_dir):
    return json.loads((report_dir / "report.json").read_text())


def edit(path, old, new):
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_bad_config_exits_2_and_still_writes_the_report(tmp_path, capsys):
    config = copy_example("tabular", tmp_path)
    edit(config, "max_epochs: 300", "max_epoch: 300")
    assert run_cli(config, tmp_path / "r") == 2
    report = read_report(tmp_path / "r")
    assert report["verdict"] == "error" and report["exit_code"] == 2
    assert "did you mean `max_epochs`" in report["errors"][0]
    assert (tmp_path / "r" / "report.md").exists() and (tmp_path / "r" / "junit.xml").exists()
    assert "unknown key `checks.memorization.max_epoch`" in capsys.readouterr().out


def test_missing_config_file_exits_2(tmp_path, capsys):
    assert run_cli(tmp_path / "missing.yaml", tmp_path / "r") == 2
    assert "config file not found" in read_report(tmp_path / "r")["errors"][0]


def test_a_model_path_that_does_not_import_exits_2_naming_it(tmp_path):
    config = copy_example("tabular", tmp_path)
    edit(config, "class: model:TabularMLP", "class: models:TabularMLP")
    assert run_cli(config, tmp_path / "r") == 2
    error = read_report(tmp_path / "r")["errors"][0]
    assert "`model.class: models:TabularMLP`: no module named `models`" in error


def test_a_misspelt_class_gets_the_nearest_name(tmp_path):
    config = copy_example("tabular", tmp_path)
    edit(config, "class: model:TabularMLP", "class: model:TabularMlp")
    assert run_cli(config, tmp_path / "r") == 2
    assert "did you mean `TabularMLP`" in read_report(tmp_path / "r")["errors"][0]


def test_a_module_that_raises_on_import_is_named(tmp_path):
    config = copy_example("tabular", tmp_path)
    edit(config.parent / "model.py", "import torch\n", "import torch\nraise ValueError('oops')\n")
    assert run_cli(config, tmp_path / "r") == 2
    error = read_report(tmp_path / "r")["errors"][0]
    assert "importing `model` raised ValueError: oops (at model.py:5 in <module>)" in error


def test_bad_init_args_are_named(tmp_path):
    config = copy_example("tabular", tmp_path)
    edit(config, "init_args: {lr: 0.01}", "init_args: {learning_rate: 0.01}")
    assert run_cli(config, tmp_path / "r") == 2
    # Found while validating, before anything trains: a suite error naming the key.
    error = read_report(tmp_path / "r")["errors"][0]
    assert "`model.class: model:TabularMLP`" in error
    assert "init_args {'learning_rate': 0.01} raised TypeError" in error


def test_a_model_that_raises_in_training_step_is_an_error_naming_the_line(tmp_path):
    config = copy_example("tabular", tmp_path)
    model = config.parent / "model.py"
    step = "        x, y = batch\n"
    edit(model, step, step + "        raise RuntimeError('boom')\n")
    assert run_cli(config, tmp_path / "r") == 2
    result = read_report(tmp_path / "r")["checks"][0]
    assert result["status"] == "error"
    assert "raised RuntimeError: boom (at model.py:26 in training_step)" in result["summary"]
    assert "Traceback" in result["details"] or "RuntimeError" in result["details"]


def test_a_check_over_its_time_budget_is_an_error_and_the_report_is_written(tmp_path):
    config = copy_example("tabular", tmp_path)
    edit(config, "max_epochs: 300", "max_epochs: 300\n    time_budget_s: 0.001")
    assert run_cli(config, tmp_path / "r") == 2
    result = read_report(tmp_path / "r")["checks"][0]
    assert result["status"] == "error"
    assert "time budget of 0.001 s (checks.memorization.time_budget_s)" in result["summary"]


def test_an_unknown_check_name_on_the_command_line_exits_2(tmp_path):
    config = copy_example("tabular", tmp_path)
    assert run_cli(config, tmp_path / "r", "--check", "memorisation") == 2
    assert "--check memorisation: no such check" in read_report(tmp_path / "r")["errors"][0]


def test_a_corrupt_baseline_file_is_named(tmp_path):
    config = copy_example("tabular", tmp_path)
    (config.parent / ".mltest" / "baselines.json").write_text("{not json")
    assert run_cli(config, tmp_path / "r") == 2
    # Refused before any worker starts: a corrupt baseline never decides a check.
    [error] = read_report(tmp_path / "r")["errors"]
    assert "baselines.json: not valid JSON" in error
    assert "restore it from git" in error
