"""What the comment shows first: the verdict, then one line per failing check with its cause
and what to do, then the table, then notices, charts and details; and the commit is the one
the author pushed (the PR head from the event), not the merge commit a PR run checks out."""

from __future__ import annotations

from pathlib import Path

from mltest.render.markdown import render_markdown
from mltest.report import CheckResult, Report, Status

REPORTS = Path(__file__).parent / "reports"


def test_each_failing_checks_cause_and_fix_come_before_the_table_and_the_charts():
    report = Report.read_json(REPORTS / "tabular-failing.json")
    sanity = next(c for c in report.checks if c.name == "sanity")
    sanity.status, sanity.summary = Status.FAIL, "`net.3.weight` did not change in the step"
    sanity.hint = "Check that `net.3` is used in forward and that its output is not detached."
    body = render_markdown(report, run_url="https://example/run/3")
    headline = body.index("## ❌ mltest: checks failed")
    line = body.index("- ❌ **sanity** — `net.3.weight` did not change in the step. **What to")
    memorization = body.index("- ❌ **memorization** — memorized in 82 epochs")
    table = body.index("| check | status | summary |")
    charts = body.index("```mermaid")
    assert headline < memorization < line < table < charts  # in the checks' order, then table
    assert body.count("**What to do:**") == sum(c.status is Status.FAIL for c in report.checks)


def test_a_passing_report_has_no_lines_to_fix():
    report = Report(suite="demo", checks=[CheckResult("sanity", "sanity", Status.PASS, "ok")])
    body = render_markdown(report)
    assert "What to do" not in body and "- ✅" not in body


def test_the_commit_shown_is_the_pr_head_not_the_merge_commit():
    checks = [CheckResult("sanity", "sanity", Status.PASS, "ok")]
    merge, head = "a" * 40, "b" * 40
    pr_run = Report(suite="demo", checks=checks, metadata={"git_sha": merge, "head_sha": head})
    assert "commit `bbbbbbb`" in render_markdown(pr_run)
    assert "aaaaaaa" not in render_markdown(pr_run)
    local = Report(suite="demo", checks=checks, metadata={"git_sha": merge})  # mltest run
    assert "commit `aaaaaaa`" in render_markdown(local)
