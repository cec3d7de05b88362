"""JUnit XML: one testsuite, one testcase per check and per sub-case, for common reporters."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from mltest.report import Report, Status


def render_junit(report: Report) -> str:
    """The report as a JUnit XML document (a string)."""
    cases = []
    for check in report.checks:
        cases.append((check.name, check.name, check.status, check.summary, check.details,
                      check.duration_s))
        for case in check.cases:
            cases.append((f"{check.name}", case.name, case.status, case.message, "", 0.0))
    for index, error in enumerate(report.errors):
        cases.append(("suite", f"suite error {index + 1}", Status.ERROR, error, "", 0.0))

    suite = ET.Element(
        "testsuite",
        name=f"mltest.{report.suite}",
        tests=str(len(cases)),
        failures=str(sum(c[2] is Status.FAIL for c in cases)),
        errors=str(sum(c[2] is Status.ERROR for c in cases)),
        skipped=str(sum(c[2] is Status.SKIPPED for c in cases)),
        time=f"{report.metadata.get('duration_s', 0.0):.3f}",
    )
    for classname, name, status, message, details, seconds in cases:
        case = ET.SubElement(
            suite, "testcase", classname=f"mltest.{classname}", name=name, time=f"{seconds:.3f}"
        )
        if status is Status.FAIL:
            ET.SubElement(case, "failure", message=message).text = details or message
        elif status is Status.ERROR:
            ET.SubElement(case, "error", message=message).text = details or message
        elif status is Status.SKIPPED:
            ET.SubElement(case, "skipped", message=message)
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
