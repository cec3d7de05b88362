"""A run whose environment (torch minor, device, precision) has no baseline while another has
one is not a model bug: memorization ends as an error (exit 2) that names both environments
and how to record this one on the runner, not as a failure blaming the model code."""

from __future__ import annotations

import json

from mltest.checks.memorization.decide import decide
from mltest.checks.memorization.seed_run import SeedRun
from mltest.checks.memorization.settings import Settings
from mltest.report import Status
from mltest.supervisor import run_suite
from tests.suites import copy_example

OLD = "cpu-torch2.12-32-true"


def _move_baseline(config, check: str, to: str) -> str:
    path = config.parent / ".mltest" / "baselines.json"
    data = json.loads(path.read_text())
    [(key, entry)] = data["checks"][check].items()
    data["checks"][check] = {to: entry}
    path.write_text(json.dumps(data))
    return key


def test_memorization_recorded_for_another_torch_is_exit_2_naming_both(tmp_path):
    config = copy_example("tabular", tmp_path)
    now = _move_baseline(config, "memorization", OLD)
    report = run_suite(config, tmp_path / "r", only=["memorization"])
    [result] = [c for c in report.checks if c.name == "memorization"]
    assert result.status is Status.ERROR and report.verdict.exit_code == 2, result.summary
    assert f"recorded for {OLD}, this run is {now}" in result.summary
    assert "mltest baseline update --config" in result.hint and "baselines: update" in result.hint


def test_no_baseline_anywhere_stays_a_failure_and_a_broken_model_still_fails():
    runs = [SeedRun(seed=s, epochs=14) for s in (0, 1, 2)]
    status, summary, *_ = decide(runs, None, Settings(), "cpu-torch2.13-32-true", [], "CMD")
    assert status is Status.FAIL and "no baseline is recorded" in summary
    status, summary, *_ = decide(runs, None, Settings(), "cpu-torch2.13-32-true", [OLD], "CMD")
    assert status is Status.ERROR and f"recorded for {OLD}" in summary
    # a model that does not memorize fails whatever the environment
    stuck = [SeedRun(seed=s, initial_loss=1.0, final_loss=0.7) for s in (0, 1, 2)]
    status, *_ = decide(stuck, None, Settings(), "cpu-torch2.13-32-true", [OLD], "CMD")
    assert status is Status.FAIL
