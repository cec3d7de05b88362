"""Charts in the comment: what each check's metrics draw, Mermaid-safe labels, thinning, and
the size limits (charts are the first thing to go)."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mltest.checks.memorization import Target
from mltest.checks.memorization.report import chart_metrics, median_curve
from mltest.checks.memorization.seed_run import SeedRun
from mltest.checks.regression.compare import abs_diff_histogram
from mltest.github.actions import SUMMARY_LIMIT_BYTES
from mltest.github.comment import COMMENT_LIMIT, comment_body
from mltest.github.publish import summary_markdown
from mltest.render import mermaid
from mltest.render.charts import POINTS, charts_for
from mltest.render.markdown import render_markdown
from mltest.report import CheckResult, Report, Status

REPORT = Path(__file__).parent / "reports" / "tabular-failing.json"


def failing() -> Report:
    return Report.read_json(REPORT)


def check(report: Report, kind: str) -> CheckResult:
    return next(c for c in report.checks if c.kind == kind)


def series_names(chart) -> list[str]:
    return [s.name for s in chart.series]


# --- labels ------------------------------------------------------------------------------------

SYNTAX = set('"`<>&#@{}[];\\') | {"\n", "\r"}


@settings(max_examples=300, deadline=None)
@given(text=st.text(), limit=st.integers(2, 60))
def test_a_label_holds_no_mermaid_or_markdown_syntax(text, limit):
    out = mermaid.label(text, limit)
    assert 1 <= len(out) <= limit
    assert not SYNTAX & set(out)
    assert "%%" not in out
    assert all(unicodedata.category(c) not in {"Cc", "Cf", "Zl", "Zp"} for c in out)


def test_a_label_reads_like_the_text():
    assert mermaid.label("robustness") == "robustness"
    assert mermaid.label('say "hi" @bob #12 <b>') == "say ʺhiʺ ＠bob ＃12 ‹b›"
    assert mermaid.label("%%{init: x}%%") == "%(init: x)%"
    assert mermaid.label("a\n\n  b\u202e") == "a b"
    assert mermaid.label("x" * 50, 10) == "x" * 9 + "…"


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.5, "0.5"), (-0.0, "0"), (12.0, "12"), (1e-7, "0"), (1234.5678, "1234.568")],
)
def test_numbers_are_written_as_mermaids_lexer_reads_them(value, text):
    assert mermaid.number(value, 3) == text


def test_band_categories_that_escape_alike_stay_apart():
    chart = mermaid.Chart("t", "x", "y", ["a<", "a‹", "a<"], [mermaid.Series("s", [1, 2, 3])])
    assert '["a‹", "a‹ (2)", "a‹ (3)"]' in chart.mermaid()


# --- memorization --------------------------------------------------------------------------------


def test_learning_curves_draw_every_seed_the_target_and_the_baseline_median():
    curves, history = charts_for(check(failing(), "memorization"))
    assert series_names(curves) == [
        "seed 0", "seed 1", "seed 2", "target: loss < 0.05", "baseline median",
    ]  # fmt: skip
    assert curves.linear_x and curves.x[0] == 0 and curves.x[-1] == 86  # init, last epoch
    assert all(v == 0.05 for v in curves.series[3].values)
    baseline = curves.series[4].values
    assert baseline[0] > 1 and baseline[-1] < 0.05  # the baseline memorized long before
    assert "```mermaid" in curves.mermaid() and "xychart-beta" in curves.mermaid()
    assert "🟦 seed 0 · 🟩 seed 1 · 🟪 seed 2 · 🟥 target: loss < 0.05" in curves.legend()
    assert series_names(history)[1:] == ["this run: 82 epochs", "fails above 17.5 epochs"]
    assert history.x == ["rec. 1", "rec. 2", "rec. 3", "baseline", "this run"]
    assert history.series[0].values == [14, 13, 16, 14, 82]
    assert history.series[1].colour == mermaid.RED


def test_long_curves_are_thinned_and_the_chart_stays_small():
    metrics = {"curves": {str(s): [1 / (e + 1) for e in range(10_000)] for s in range(3)},
               "target_value": 0.0001, "target_quantity": "loss"}  # fmt: skip
    (chart,) = charts_for(CheckResult("m", "memorization", Status.FAIL, "", metrics=metrics))
    assert len(chart.x) <= POINTS and chart.x[-1] == 9_999
    assert all(len(s.values) == len(chart.x) for s in chart.series)
    assert len(chart.markdown()) < 6_000


def test_a_metric_target_draws_the_metric_and_a_diverged_seed_is_not_drawn_as_a_spike():
    metrics = {"curves": {"0": [0.1, 0.5, 0.9], "1": [0.1, float("nan"), float("inf")]},
               "target_value": 0.9, "target_quantity": "acc"}  # fmt: skip
    (chart,) = charts_for(CheckResult("m", "memorization", Status.FAIL, "", metrics=metrics))
    assert chart.title.startswith("acc per epoch")
    assert series_names(chart)[-1] == "target: acc ≥ 0.9"
    assert chart.series[1].values == [0.1, 0.1, 0.1]  # carried, not clipped to the top


@pytest.mark.parametrize(
    ("target", "legend"),
    [
        (Target(loss_below=0.05), "target: loss < 0.05"),
        (Target(metric="acc", at_least=0.9), "target: acc ≥ 0.9"),
        (Target(metric="gap", at_most=0.4), "target: gap ≤ 0.4"),
    ],
)
def test_the_target_line_reads_as_the_target_s_own_bound(target, legend):
    run = SeedRun(0, epochs=2, initial_loss=1.0, losses=[0.5, 0.05], quantity=target.quantity,
                  initial_metric=0.8, metric_values=[0.5, 0.3])  # fmt: skip
    metrics = chart_metrics([run], target, None)
    chart = charts_for(CheckResult("m", "memorization", Status.PASS, "", metrics=metrics))[0]
    assert series_names(chart)[-1] == legend


def test_median_curve_runs_to_the_median_epoch_count_with_stopped_seeds_held():
    target = Target(loss_below=0.1)
    runs = [
        SeedRun(0, epochs=2, initial_loss=1.0, losses=[0.5, 0.05]),
        SeedRun(1, epochs=3, initial_loss=1.0, losses=[0.6, 0.3, 0.08]),
        SeedRun(2, epochs=4, initial_loss=1.2, losses=[0.7, 0.4, 0.2, 0.09]),
    ]
    assert median_curve(runs, target) == [[0, 1.0], [1, 0.6], [2, 0.3], [3, 0.08]]
    assert len(median_curve([SeedRun(0, epochs=500, initial_loss=1, losses=[1.0] * 500)],
                            target, points=50)) <= 51  # fmt: skip
    assert median_curve([SeedRun(0, initial_loss=1.0, losses=[0.9])], target) == []


# --- key examples and regression ---------------------------------------------------------------


def test_key_examples_draw_pass_rate_against_the_allowed_rate_and_mark_new_failures():
    (chart,) = charts_for(check(failing(), "key_examples"))
    assert chart.x == ["clear", "monotonic", "⚠ robustness · 1 new"]
    assert [round(v) for v in chart.series[0].values] == [100, 100, 89]
    assert [round(v) for v in chart.series[1].values] == [100, 100, 90]
    assert "1 example(s) that passed in the baseline fail now" in chart.note


def test_many_tags_keep_the_worst():
    tags = {f"t{i}": {"rate": 0.0, "allowed": 0.0, "new_failures": 0} for i in range(40)}
    tags["t33"] = {"rate": 0.5, "allowed": 0.1, "new_failures": 2}
    (chart,) = charts_for(CheckResult("k", "key_examples", Status.FAIL, "", metrics={"tags": tags}))
    assert len(chart.x) == 16 and "⚠ t33 · 2 new" in chart.x
    assert "16 of 40 tags drawn" in chart.note


def test_abs_differences_are_counted_by_decade_with_those_beyond_tolerance():
    diff = np.array([0, 0, 2e-9, 3e-6, 5e-6, 2e-3, 0.5, np.inf], dtype=np.float32)
    moved = np.array([0, 0, 0, 0, 0, 1, 1, 1], dtype=bool)
    h = abs_diff_histogram(diff, moved, bins=5)
    assert h["decades"] == [-5, -4, -3, -2, -1]  # 2e-9 folded into the smallest bin
    assert h["counts"] == [3, 0, 1, 0, 1] and h["moved"] == [0, 0, 1, 0, 1]
    assert (h["zero"], h["nonfinite"]) == (2, 1)


def test_regression_histogram_marks_atol_and_draws_only_outputs_that_moved():
    metrics = {
        "outputs": {
            "logits": {"moved": 3, "histogram": {"decades": [-6, -5, -4], "counts": [5, 2, 3],
                                                 "moved": [0, 0, 3], "zero": 7, "nonfinite": 0}},
            "still": {"moved": 0, "histogram": None},
        },
        "tolerances": {"logits": {"atol": 1e-5, "rtol": 1e-4}},
    }  # fmt: skip
    (chart,) = charts_for(CheckResult("r", "regression", Status.FAIL, "", metrics=metrics))
    assert chart.x == ["0", "1e-6", "1e-5 (atol)", "1e-4"]
    assert chart.series[0].values == [7, 5, 2, 3] and chart.series[1].values == [0, 0, 0, 3]
    assert series_names(chart)[1] == "of which beyond tolerance (atol 1e-05, rtol 0.0001)"


@pytest.mark.parametrize(
    "metrics",
    [{}, {"curves": "x"}, {"curves": {"0": ["a"]}}, {"tags": [1]}, {"outputs": {"o": 3}},
     {"baseline_epochs": 1e308, "median_epochs": float("inf"), "baseline_history": [1e308]},
     {"outputs": {"o": {"moved": 1,
                        "histogram": {"decades": [1e308], "counts": [1], "moved": [1]}}}}],
)  # fmt: skip
@pytest.mark.parametrize("kind", ["memorization", "key_examples", "regression"])
def test_metrics_of_the_wrong_shape_draw_nothing_rather_than_fail(kind, metrics):
    charts_for(CheckResult("c", kind, Status.FAIL, "", metrics=metrics))


# --- in the comment ----------------------------------------------------------------------------


def test_charts_open_with_a_failing_check_and_stay_collapsed_for_a_passing_one():
    report = failing()
    body = render_markdown(report)
    sections = re.split(r"(?=<details(?: open)?><summary>\w+ details)", body)[1:]
    opened = {re.search(r"<summary>(\w+) details", s).group(1): s.startswith("<details open>")
              for s in sections}  # fmt: skip
    assert opened == {"memorization": True, "sanity": False, "regression": True,
                      "key_examples": True}  # fmt: skip
    assert body.count("```mermaid") == 4
    for c in report.checks:  # a passing check's charts: collapsed
        c.status = Status.PASS
    assert "<details open>" not in render_markdown(report)
    assert render_markdown(report).count("```mermaid") == 4


def big_chart_report(copies: int = 24) -> Report:
    """Charts of passing and failing checks, and long details, far over the comment limit."""
    checks = []
    for i in range(copies):
        report = failing()
        for c in report.checks:
            c.name = f"{c.name}-{i}"
            c.status = Status.PASS if i % 2 else c.status
            c.details += "\n\n" + "long text " * 100
        checks += report.checks
    return Report(suite="big", checks=checks)


def test_charts_go_first_passing_checks_before_failing_ones_and_the_comment_says_so():
    report = big_chart_report(6)
    full = render_markdown(report, max_chars=10**9)
    assert len(full) > COMMENT_LIMIT and full.count("```mermaid") == 6 * 4
    body = comment_body([report], comment_id="big", run_url="https://x/run/9")
    assert len(body) <= COMMENT_LIMIT
    assert "_Charts left out to fit GitHub's size limit; see [the run](https://x/run/9)._" in body
    left = body.count("Charts left out")
    drawn = body.count("```mermaid")
    assert left and drawn and drawn + left < 6 * 4
    assert "shortened to fit" not in body  # the charts alone made room
    for c in report.checks:
        assert f"| {c.name} |" in body  # the table of verdicts survives
    sections = re.findall(r"<details( open)?><summary>[\w-]+ details</summary>(.*?)\n</details>",
                          body, re.S)  # fmt: skip
    failing_drawn = [("```mermaid" in text) for opened, text in sections if opened]
    passing_drawn = [("```mermaid" in text) for opened, text in sections if not opened]
    assert any(failing_drawn) and not any(passing_drawn)  # passing checks' charts went first


def test_charts_are_dropped_before_any_details_are_cut():
    report = big_chart_report()
    no_charts = render_markdown(report, max_chars=10**9).count("```mermaid")
    # Just too long with charts; fits without them: details stay whole.
    limit = len(render_markdown(report, max_chars=10**9)) - 2_000
    body = render_markdown(report, max_chars=limit)
    assert len(body) <= limit and "Charts left out" in body and no_charts
    assert "shortened to fit" not in body and "(shortened)" not in body


def test_the_job_summary_keeps_every_chart_within_one_mebibyte():
    report = big_chart_report()
    summary = summary_markdown(report, "https://x/run/9")
    assert len(summary.encode()) + 1 <= SUMMARY_LIMIT_BYTES
    assert summary.count("```mermaid") == 24 * 4 and "Charts left out" not in summary


# --- from a real run ---------------------------------------------------------------------------


@pytest.mark.slow
def test_a_real_baseline_update_records_the_median_curve_the_next_run_draws(tmp_path):
    from mltest.supervisor import run_suite
    from tests.suites import copy_example

    config = copy_example("tabular", tmp_path)
    run_suite(config, tmp_path / "r", update_baselines=True, only=["memorization"])
    config.write_text(config.read_text().replace("lr: 0.01", "lr: 0.005"))
    result = run_suite(config, tmp_path / "r2", only=["memorization"]).checks[0]

    m = result.metrics
    assert (m["target_quantity"], m["target_value"]) == ("loss", 0.05)
    for seed, epochs in zip(m["seeds"], m["epochs"], strict=True):
        assert len(m["curves"][str(seed)]) == epochs + 1  # from the fresh init on
        assert m["curves"][str(seed)][1:] == m["loss_curves"][str(seed)]
    assert m["baseline_curve"][0][0] == 0 and m["baseline_curve"][-1][0] == 14
    curves, history = charts_for(result)
    assert series_names(curves)[-1] == "baseline median"
    assert history.series[0].values[-2:] == [14, m["median_epochs"]]


def test_an_axis_near_the_float_maximum_stays_finite():
    # Found by the safety fuzz: padding 1.7e308 overflowed to inf, which Mermaid cannot read.
    import math

    from mltest.render.mermaid import nice_range

    low, high = nice_range([0.0, 1.7e308])
    assert math.isfinite(low) and math.isfinite(high) and high >= 1e15
