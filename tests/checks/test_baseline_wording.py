"""No failure's advice starts with updating the baseline: each decision that can name the
update command is driven to every failure it reports, and its hint is held to the rule in
`tests/checks/wording.py` (what to check first; the update records the behaviour as correct).
The real broken variants of the check tests apply the same rule to what they produce."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mltest.checks.key_examples.settings import Settings as KeySettings
from mltest.checks.key_examples.verdict import TagStat
from mltest.checks.key_examples.verdict import decide as key_decide
from mltest.checks.memorization import Settings
from mltest.checks.memorization.decide import decide
from mltest.checks.memorization.hints import Failure
from mltest.checks.memorization.seed_run import SeedRun
from mltest.checks.regression import report as regression_report
from mltest.checks.regression.compare import compare_outputs
from mltest.checks.sanity.baseline import compare_baseline
from mltest.checks.sanity.obs import ParamObs
from mltest.checks.sanity.probes import units
from mltest.report import Report, Status
from tests.checks.wording import UPDATE, assert_protects_baseline
from tests.reports import refresh
from tests.sample_reports import mixed_report

TESTS = Path(__file__).resolve().parents[1]
# The advice of old: an update offered as the fix, a speed-up to record as a gain.
OLD_ADVICE = ("If the change is intended, run", "gain to lock in", "lock the gain",
              "and commit the golden files", "If the new behaviour is right, fix")  # fmt: skip


def _runs(*epochs, **fields):
    return [SeedRun(seed=i, epochs=e, initial_loss=1.0, **fields) for i, e in enumerate(epochs)]


MEMORIZATION = {
    Failure.MET_AT_INIT: (_runs(None, met_before_training=True), {"median": 10}),
    Failure.NONFINITE: (_runs(None, nonfinite="training loss became nan at epoch 3"), None),
    Failure.NOT_REACHED: (_runs(None, None, None), {"median": 10}),
    Failure.SEEDS_MISSING: (_runs(10, 10, None), {"median": 10}),
    Failure.SLOWER: (_runs(20, 20, 20, learning_rates=[0.001]), {"median": 10}),
    Failure.MUCH_FASTER: (_runs(2, 2, 2, learning_rates=[0.1]), {"median": 10}),
}


@pytest.mark.parametrize("failure", list(MEMORIZATION), ids=lambda f: f.value)
def test_each_memorization_failure_has_its_own_advice(failure):
    runs, baseline = MEMORIZATION[failure]
    status, _, hint, _, kind = decide(runs, baseline, Settings(), "cpu", [], UPDATE)
    assert status is Status.FAIL and kind is failure
    assert_protects_baseline(hint)
    others = [decide(r, b, Settings(), "cpu", [], UPDATE)[2] for f, (r, b) in
              MEMORIZATION.items() if f is not failure]  # fmt: skip
    assert hint not in others  # no one list for every failure


def test_regression_failures_say_what_to_check_first():
    rng = np.random.default_rng(0)
    golden = {"scores": rng.random((16, 4)).astype(np.float32)}
    moved = {"scores": np.roll(golden["scores"], 1, axis=1)}
    cases = [
        dict(comparison=compare_outputs(golden, moved), inputs_changed=False),
        dict(comparison=compare_outputs(golden, golden), inputs_changed=True),
        dict(comparison=compare_outputs(golden, {"other": golden["scores"]}), inputs_changed=False),
        dict(comparison=compare_outputs(golden, moved), inputs_changed=False, golden_key="cuda"),
    ]
    for case in cases:
        status, _, hint, _ = regression_report.decide(
            env_now={"key": "cpu"}, env_golden={}, update_command=UPDATE, **case
        )
        assert status is Status.FAIL
        assert_protects_baseline(hint)


def _param(name, moved=True):
    return ParamObs(name, (2,), True, True, "ok", 1.0, 0.1 if moved else 0.0)


def test_sanity_and_key_example_failures_say_what_to_check_first():
    entry = {"parameters": ["a.weight 2 trains"]}
    (frozen,), _ = compare_baseline([_param("a.weight", False)], entry, "cpu", UPDATE)
    (gone,), _ = units.judge([], ["act ReLU dead 0.1"], UPDATE)
    status, _, hint, _ = key_decide(
        [], [TagStat("core", 4, 4, 0.0)], {"passing": []}, "cpu", "cpu",
        KeySettings.model_construct(require_baseline=False), UPDATE,
    )  # fmt: skip
    assert status is Status.FAIL
    for advice in (frozen.hint, gone.hint, hint):
        assert_protects_baseline(advice)


def test_the_stored_reports_and_golden_comments_carry_todays_advice():
    """The fixtures the render tests draw from read as a run words them today: the stored
    tabular report's sentences are what the decisions produce from its own figures
    (`python -m tests.reports.refresh` rewrites them), and no hint in it, in the sample
    report or in a golden comment leads with the baseline update or offers the old advice,
    least of all the regression failure whose only evidence is moved outputs."""
    stored = json.loads(refresh.REPORT.read_text(encoding="utf-8"))
    assert refresh.refreshed(stored) == stored, "run `python -m tests.reports.refresh`"
    report = Report.read_json(refresh.REPORT)
    hints = [c.hint for r in (report, mixed_report()) for c in r.checks if c.hint]
    assert len(hints) >= 5
    for hint in hints:
        assert_protects_baseline(hint)
    moved = next(c for c in report.checks if c.name == "regression")
    assert "moved beyond tolerance" in moved.summary and UPDATE not in moved.summary
    assert moved.hint.startswith("Look at the worst examples")
    for golden in sorted((TESTS / "golden").glob("*.md")):
        text = golden.read_text(encoding="utf-8")
        advice = [line.split("**What to do:**", 1)[1] for line in text.splitlines()
                  if "**What to do:**" in line]  # fmt: skip
        assert advice, golden.name
        for hint in advice:
            assert_protects_baseline(hint.strip())
    for path in [*(TESTS / "golden").iterdir(), refresh.REPORT, TESTS.parent / "README.md",
                 *(TESTS.parent / "docs").rglob("*.md")]:  # fmt: skip
        text = path.read_text(encoding="utf-8")
        assert not [p for p in OLD_ADVICE if p in text], path
