"""The evaluation gate's charts read only the report: the headline metric per slice against
the previous result, the pinned reference and the limit, and the history of recorded results;
metrics of any shape or content give a chart or none, never an exception."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mltest.render.charts import charts_for
from mltest.render.markdown import render_markdown
from mltest.report import CheckResult, Report, Status
from tests.test_render_safety import hostile, numbers


def cell(slice_name, value, previous, pinned, outcome="pass", limit=0.8):
    def ref(v):
        return {"reference": v, "delta": value - v, "low": 0.0, "high": 0.0, "paired": True,
                "allowance": 0.02, "outcome": outcome}  # fmt: skip

    return {"dataset": "val", "slice": slice_name, "metric": "accuracy", "n": 50,
            "value": value, "low": value - 0.05, "high": value + 0.05, "outcome": outcome,
            "bound": {"kind": "at_least", "limit": limit, "outcome": "pass"},
            "previous": ref(previous), "pinned": ref(pinned), "trivial": None}  # fmt: skip


METRICS = {
    "headline": {"dataset": "val", "metric": "accuracy"},
    "cells": [cell("region=south", 0.70, 0.90, 0.91, "fail"), cell("all", 0.88, 0.90, 0.91)],
    "history": [{"recorded": "2025-01-01", "value": 0.91}, {"recorded": "2025-02-01",
                                                            "value": 0.90}],  # fmt: skip
}


def test_the_slices_chart_draws_this_run_against_previous_pinned_and_the_limit():
    slices, history = charts_for(CheckResult("evaluation", "evaluation", Status.FAIL, "",
                                             metrics=METRICS))  # fmt: skip
    assert slices.x == ["❌ region=south", "all"]
    assert [s.name for s in slices.series] == ["this run", "previous result",
                                               "pinned reference", "limit"]  # fmt: skip
    assert slices.series[0].values == [0.70, 0.88] and slices.series[2].values == [0.91, 0.91]
    assert history.x == ["1: 2025-01-01", "2: 2025-02-01", "this run"]
    assert history.series[0].values == [0.91, 0.90, 0.88]
    assert history.series[1].name == "pinned reference 0.91"


def test_the_comment_opens_a_failing_gate_with_its_charts():
    check = CheckResult("evaluation", "evaluation", Status.FAIL, "accuracy dropped",
                        details="table", metrics=METRICS)  # fmt: skip
    body = render_markdown(Report(suite="s", checks=[check]))
    assert "<details open><summary>evaluation details</summary>" in body
    assert body.count("```mermaid") == 2


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=hostile,
    value=numbers,
    reference=numbers,
    history=st.lists(st.fixed_dictionaries({"recorded": hostile, "value": numbers}), max_size=4),
    odd=st.sampled_from([None, [], "x", {"a": 1}, [1, 2], {"dataset": 3}]),
)
def test_metrics_of_any_content_draw_a_chart_or_none(name, value, reference, history, odd):
    c = cell(name, 0.5, 0.5, 0.5)
    c["value"], c["previous"]["reference"] = value, reference
    for metrics in (
        {**METRICS, "cells": [c], "history": history},
        {**METRICS, "cells": odd, "history": odd},
        {"headline": odd, "cells": [c, odd]},
    ):
        for chart in charts_for(CheckResult("e", "evaluation", Status.FAIL, "", metrics=metrics)):
            chart.markdown()
