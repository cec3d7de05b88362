"""Renderers against golden files, and the size limit as a property.

Regenerate the golden files after an intended change with:
    MLTEST_REGENERATE=1 python -m pytest tests/test_render.py
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from mltest.render.console import check_line, closing
from mltest.render.junit import render_junit
from mltest.render.markdown import render_markdown
from mltest.report import Report
from tests.sample_reports import big_report, mixed_report

GOLDEN = Path(__file__).parent / "golden"


def matches_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("MLTEST_REGENERATE"):
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path} is missing: run MLTEST_REGENERATE=1 pytest {__file__}"
    assert text == path.read_text(encoding="utf-8"), (
        f"{name} changed; if intended, run MLTEST_REGENERATE=1 python -m pytest {__file__}"
    )


def test_markdown_matches_golden():
    matches_golden("report.md", render_markdown(mixed_report(), run_url="https://example/run/1"))


def test_junit_matches_golden():
    matches_golden("junit.xml", render_junit(mixed_report()))


def test_junit_counts_are_what_reporters_read():
    suite = ET.fromstring(render_junit(mixed_report())).find("testsuite")
    assert suite.get("tests") == "7"  # 4 checks + 3 seed cases
    assert (suite.get("failures"), suite.get("errors"), suite.get("skipped")) == ("1", "1", "1")
    failure = suite.find("testcase[@name='memorization']/failure")
    assert "slower than the baseline" in failure.get("message")


def test_markdown_opens_failed_details_and_shows_what_to_do():
    body = render_markdown(mixed_report())
    assert body.startswith("## 💥 mltest: the suite could not run completely — `demo`")
    assert "<details open><summary>memorization details</summary>" in body
    assert "**What to do:** Something makes learning slower." in body
    assert "> ℹ️ **sanity:** golden outputs were recorded on cuda" in body
    assert "all 6 trainable parameters changed \\| 0 frozen moved" in body  # pipes escaped


def test_console_lines_are_plain_without_a_tty():
    report = mixed_report()
    line = check_line(report.checks[0], colour=False)
    assert line.startswith("FAIL    memorization  memorized in 27 epochs")
    assert "what to do:" in line and "\033[" not in line
    assert "\033[31m" in check_line(report.checks[0], colour=True)
    assert "mltest demo: ERROR (1 pass, 1 fail, 1 error, 1 skipped)" in closing(
        report, "out", colour=False
    )


@settings(max_examples=40, deadline=None)
@given(
    checks=st.integers(min_value=1, max_value=12),
    detail_chars=st.integers(min_value=0, max_value=40_000),
    limit=st.integers(min_value=3_000, max_value=70_000),
)
def test_markdown_never_exceeds_the_limit_and_says_when_it_shortened(checks, detail_chars, limit):
    report = big_report(checks, detail_chars)
    full = render_markdown(report, max_chars=10**9, run_url="https://example/run/2")
    body = render_markdown(report, max_chars=limit, run_url="https://example/run/2")
    assert len(body) <= limit
    if len(full) <= limit:
        assert body == full
    else:
        assert "shortened to fit GitHub's size limit" in body
        assert "[the run](https://example/run/2)" in body
        assert body.count("```") % 2 == 0  # no code fence left open
        for check in report.checks:  # the table of verdicts always survives
            assert f"| {check.name} |" in body


def test_failing_comment_with_charts_matches_golden():
    report = Report.read_json(Path(__file__).parent / "reports" / "tabular-failing.json")
    matches_golden("failing-comment.md", render_markdown(report, run_url="https://example/run/3"))


def test_failures_with_one_likely_cause_are_grouped_once():
    from mltest.report import CheckResult, Status

    cause = "nondeterministic prediction"
    report = Report(
        suite="s",
        checks=[
            CheckResult("sanity", "sanity", Status.FAIL, "a", metrics={"causes": [cause]}),
            CheckResult("regression", "regression", Status.FAIL, "b", metrics={"causes": [cause]}),
            CheckResult("memorization", "memorization", Status.PASS, "c"),
        ],
    )
    text = render_markdown(report)
    assert "**Likely causes:**" in text
    assert f"- {cause}: `sanity`, `regression`" in text
    assert "Likely causes" not in render_markdown(mixed_report())  # none named: no section
