"""report.json is the contract between the checks and the publishers: pin its shape."""

from __future__ import annotations

import json

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
        ([], [], Verdict.PASS),
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
