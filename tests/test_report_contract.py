"""report.json is the contract between the checks and the publishers: pin its shape."""

from __future__ import annotations

import json
import math
import shutil

import pytest

from mltest.report import SCHEMA_VERSION, Report, Status, Verdict
from tests.sample_reports import mixed_report

TOP_KEYS = {
    "schema_version", "suite", "verdict", "exit_code", "counts", "checks", "errors", "metadata",
    "complete", "cancelled",
}
CHECK_KEYS = {
    "name", "kind", "status", "summary", "details", "hint", "notices", "metrics", "cases",
    "duration_s",
}


def test_report_json_keys_are_pinned(tmp_path):
    data = mixed_report().to_dict()
    assert set(data) == TOP_KEYS
    assert data["schema_version"] == SCHEMA_VERSION == 2
    for check in data["checks"]:
        assert set(check) == CHECK_KEYS
        assert check["status"] in {"pass", "fail", "error", "skipped"}
    assert data["counts"] == {"pass": 1, "fail": 1, "error": 1, "skipped": 1}


def test_round_trip_through_a_file_keeps_everything(tmp_path):
    report = mixed_report()
    report.write_json(tmp_path / "r" / "report.json")
    again = Report.read_json(tmp_path / "r" / "report.json")
    assert again.to_dict() == report.to_dict()


def test_a_report_of_another_schema_version_is_refused(tmp_path):
    data = mixed_report().to_dict()
    data["schema_version"] = 99
    with pytest.raises(ValueError, match="schema_version 99 is not supported"):
        Report.from_dict(json.loads(json.dumps(data)))


@pytest.mark.parametrize(
    ("statuses", "errors", "verdict"),
    [
        ([Status.PASS, Status.SKIPPED], [], Verdict.PASS),
        ([Status.PASS, Status.FAIL], [], Verdict.FAIL),
        ([Status.FAIL, Status.ERROR], [], Verdict.ERROR),
        ([], ["bad config"], Verdict.ERROR),
        # Nothing ran and passed: the run proves nothing, so it cannot be a pass.
        ([], [], Verdict.ERROR),
        ([Status.SKIPPED, Status.SKIPPED], [], Verdict.ERROR),
    ],
)
def test_verdict_and_exit_code(statuses, errors, verdict):
    report = mixed_report()
    for check, status in zip(report.checks, statuses, strict=False):
        check.status = status
    report.checks = report.checks[: len(statuses)]
    report.errors = errors
    assert report.verdict is verdict
    assert report.to_dict()["exit_code"] == {"pass": 0, "fail": 1, "error": 2}[verdict.value]


@pytest.mark.parametrize(
    ("complete", "cancelled"), [(False, False), (True, True), (False, True)]
)
def test_an_unfinished_or_cancelled_run_is_an_error_even_when_every_check_passed(
    complete, cancelled
):
    report = Report(suite="s", checks=[], complete=complete, cancelled=cancelled)
    report.checks = [c for c in mixed_report().checks if c.status is Status.PASS]
    assert report.verdict is Verdict.ERROR
    assert report.to_dict()["exit_code"] == 2


def test_a_version_1_report_reads_as_complete():
    data = mixed_report().to_dict()
    data["schema_version"] = 1
    del data["complete"], data["cancelled"]
    again = Report.from_dict(data)
    assert again.complete and not again.cancelled


def test_report_json_is_strict_json_with_non_finite_numbers_as_strings(tmp_path):
    # An honest NaN loss: RFC 8259 has no NaN, so jq, JavaScript and Go would refuse the file.
    report = mixed_report()
    report.checks[0].metrics = {
        "losses": [1.0, math.nan, math.inf, -math.inf],
        "deep": {"value": math.nan},
    }
    report.write_json(tmp_path / "report.json")
    text = (tmp_path / "report.json").read_text()

    def refuse(name):
        raise ValueError(f"bare {name} in report.json")

    data = json.loads(text, parse_constant=refuse)
    metrics = data["checks"][0]["metrics"]
    assert metrics["losses"] == [1.0, "NaN", "Infinity", "-Infinity"]
    assert metrics["deep"] == {"value": "NaN"}
    node = shutil.which("node")
    if node:  # JavaScript's own parser, where one is installed
        import subprocess

        check = "JSON.parse(require('fs').readFileSync(process.argv[1], 'utf8'))"
        subprocess.run([node, "-e", check, str(tmp_path / "report.json")], check=True)


def test_a_result_is_bounded_before_it_reaches_the_report():
    from mltest.report import LIMITS, CheckResult

    nested: dict = {}
    deep = nested
    for _ in range(600):
        deep["x"] = {}
        deep = deep["x"]
    result = CheckResult(
        "sanity", "sanity", Status.ERROR, "x" * 65_000, details="y" * 1_000_000,
        notices=["n"] * 500, metrics={"deep": nested},
    ).bounded()
    assert len(result.summary) <= LIMITS.text and "more characters left out" in result.summary
    assert len(result.details) <= LIMITS.details
    assert len(result.notices) == LIMITS.notices + 2
    assert result.metrics == {} and "nested more than 16 levels" in result.notices[-1]
    assert result.status is Status.ERROR
    json.dumps(Report(suite="s", checks=[result]).to_dict())  # no RecursionError


def test_a_cut_of_cases_keeps_every_failure_and_says_so():
    from mltest.report import LIMITS, Case, CheckResult

    over = LIMITS.cases + 1_000  # a key-examples table of that many rows, failures at the end
    cases = [Case(f"ok{i}", Status.PASS) for i in range(over - 300)]
    cases += [Case(f"bad{i}", Status.FAIL, "expected 1, got 2") for i in range(300)]
    result = CheckResult("key_examples", "key_examples", Status.FAIL, "s", cases=cases).bounded()
    assert len(result.cases) == LIMITS.cases
    assert [c.name for c in result.cases if c.status is Status.FAIL] == [
        f"bad{i}" for i in range(300)
    ]
    assert [c.name for c in result.cases[:3]] == ["ok0", "ok1", "ok2"]  # table order kept
    assert result.notices[-1] == (
        f"1000 of {over} cases left out of the report, all passing (every failure and error "
        "is listed)"
    )
    failing = [Case(f"bad{i}", Status.FAIL) for i in range(over)]
    cut = CheckResult("k", "k", Status.FAIL, "s", cases=failing).bounded()
    assert cut.notices[-1] == f"1000 of {over} cases left out of the report, 1000 of them failing"
    kept = CheckResult("k", "k", Status.FAIL, "s", cases=cases[: LIMITS.cases]).bounded()
    assert kept.notices == [] and len(kept.cases) == LIMITS.cases
