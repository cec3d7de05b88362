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


def test_hard_examples_become_key_example_rows_and_a_missing_report_is_exit_2(tmp_path):
    import json

    from mltest.render.hard_examples import propose
    from tests.test_cli import mltest

    metrics = {**METRICS, "cells": [{"slice": "all", "metric": "mae", "value": 0.25}],
               "hard_examples": [
                   {"dataset": "val", "index": 3, "id": None, "slices": ["district=C"],
                    "loss": 2.0, "target": 1.5, "prediction": 0.1, "input": [0.5, 1.0]},
                   {"dataset": "val", "index": 9, "id": None, "slices": [], "loss": 1.0,
                    "target": 0.2, "prediction": 0.9, "input": None}]}  # fmt: skip
    report = Report(suite="s", checks=[CheckResult("evaluation", "evaluation", Status.PASS, "",
                                                   metrics=metrics)])  # fmt: skip
    done = propose(report, tmp_path / "hard.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "hard.jsonl").read_text().splitlines()]
    assert (done.rows, done.by_reference, done.wrong_now) == (2, 1, 2)
    assert rows[0] == {"id": "hard-val-3", "kind": "mft", "input": [0.5, 1.0], "expected": 1.5,
                       "tolerance": 0.25, "tags": ["hard", "val", "district=C"]}  # fmt: skip
    assert rows[1]["input"] == {"dataset": "val", "index": 9}
    out = mltest("hard-examples", "--report", str(tmp_path / "nowhere"))
    assert out.returncode == 2 and "nowhere" in out.stderr
