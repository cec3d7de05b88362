"""The no-flap rule, the intervals behind it and the words a person reads: pure values.

A limit fails only when the result is past it and the confidence interval says so too; past
the limit but not significant is reported and passes. McNemar's exact interval and the
Clopper-Pearson interval match published values; the bootstrap is seeded per slice, and a
rerun of the same predictions gives a difference of exactly zero.
"""

from __future__ import annotations

import math

import pytest
import torch

from mltest.checks.evaluation import stats
from mltest.checks.evaluation.cells import (
    Cell,
    Comparison,
    Outcome,
    allowance,
    amount,
    comparison_text,
    judge_bound,
    judge_drop,
    judge_gap,
    judge_margin,
)
from mltest.checks.evaluation.metrics import Predictions, metric_function
from mltest.checks.evaluation.settings import Settings

FAIL, NOT_SIG, PASS = Outcome.FAIL, Outcome.NOT_SIGNIFICANT, Outcome.PASS


@pytest.mark.parametrize(
    "delta, low, high, allowed, higher, expected",
    [
        (-0.018, -0.039, 0.002, 0.01, True, NOT_SIG),  # past the limit, interval holds 0
        (-0.018, -0.030, -0.006, 0.01, True, FAIL),  # past the limit and significant
        (-0.018, -0.030, -0.006, 0.02, True, PASS),  # significant but within the limit
        (0.0, 0.0, 0.0, 0.0, True, PASS),  # a rerun
        (0.05, 0.02, 0.08, 0.02, False, FAIL),  # an error metric that rose: a drop
        (-0.05, -0.08, -0.02, 0.02, False, PASS),  # an error metric that fell
        (math.nan, math.nan, math.nan, 0.02, True, Outcome.NEW),  # undefined on the slice
    ],
)
def test_a_drop_fails_only_when_past_its_allowance_and_significant(
    delta, low, high, allowed, higher, expected
):
    assert judge_drop(delta, low, high, allowed, higher) is expected


def test_floors_margins_and_gaps_follow_the_same_rule():
    assert judge_bound("at_least", 0.8, 0.75, 0.55, 0.90) is NOT_SIG  # small slice
    assert judge_bound("at_least", 0.8, 0.75, 0.70, 0.79) is FAIL
    assert judge_bound("at_most", 0.3, 0.35, 0.31, 0.40) is FAIL
    assert judge_bound("at_most", 0.3, 0.35, 0.25, 0.40) is NOT_SIG
    assert judge_margin(0.05, 0.01, 0.12, 0.10, True) is NOT_SIG
    assert judge_margin(0.05, 0.01, 0.08, 0.10, True) is FAIL
    assert judge_gap(0.2, 0.12, 0.3, 0.1) is FAIL
    assert judge_gap(0.2, 0.05, 0.3, 0.1) is NOT_SIG
    assert judge_gap(0.05, 0.0, 0.3, 0.1) is PASS


def test_allowances_are_in_the_metrics_units_or_a_share_of_the_reference():
    assert allowance(0.02, 0.5, reference=0.9) == 0.02
    assert allowance("5%", 0.5, reference=-0.4) == pytest.approx(0.02)
    assert allowance(None, "10%", reference=0.3) == pytest.approx(0.03)


def test_the_report_says_a_drop_is_not_significant_in_points_with_its_interval():
    cell = Cell("val", "region=south", "accuracy", 48, 0.894, 0.8, 0.96, True, True)
    comp = Comparison("previous", 0.912, -0.018, -0.039, 0.002, True, 0.01, NOT_SIG)
    text = comparison_text(cell, comp, 0.95)
    assert "−1.8 points vs the previous result (0.912), 95% CI [−3.9, +0.2]" in text
    assert text.endswith(": not significant")
    assert amount(0.031, bounded=False) == "+0.031"


def test_clopper_pearson_and_mcnemar_match_published_values():
    # R: binom.test(3, 10)$conf.int -> 0.06673951 0.65245285
    low, high = stats.clopper_pearson(3, 10, 0.95)
    assert (low, high) == (pytest.approx(0.0667395, abs=1e-6), pytest.approx(0.6524529, abs=1e-6))
    assert stats.clopper_pearson(0, 10, 0.95)[0] == 0.0
    # 12 examples only the reference gets right, 2 only the candidate: -10 points of 100, and
    # McNemar's exact test rejects (p = 0.013), so the interval lies below zero.
    ref = torch.tensor([True] * 12 + [False] * 2 + [True] * 80 + [False] * 6)
    cand = torch.tensor([False] * 12 + [True] * 2 + [True] * 80 + [False] * 6)
    delta, low, high = stats.mcnemar(cand, ref, 0.95)
    assert delta == pytest.approx(-0.10) and high < 0 < 0.14 + low
    same, *interval = stats.mcnemar(ref, ref, 0.95)
    assert same == 0 and interval == [0.0, 0.0]


def test_the_bootstrap_is_seeded_per_slice_and_a_rerun_differs_by_exactly_zero():
    rows = torch.arange(50)
    first = stats.resample_indices(rows, 100, 0, "val/all")
    assert torch.equal(first, stats.resample_indices(rows, 100, 0, "val/all"))
    assert not torch.equal(first, stats.resample_indices(rows, 100, 0, "val/other"))
    settings = Settings.model_validate({"task": "multiclass"})
    accuracy = metric_function(settings.metric_info("accuracy"), "multiclass", 3, None, None)
    gen = torch.Generator().manual_seed(1)
    target = torch.randint(0, 3, (50,), generator=gen)
    preds = Predictions(labels=torch.randint(0, 3, (50,), generator=gen))
    boot = stats.bootstrap(accuracy, preds, target, first)
    loop = torch.tensor([accuracy(preds[r], target[r]) for r in first], dtype=torch.float64)
    assert torch.allclose(boot, loop)  # torchmetrics' batched form gives the same values
    assert stats.interval(boot - boot, 0.95) == (0.0, 0.0)
