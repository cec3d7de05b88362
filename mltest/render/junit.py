"""JUnit XML: one testsuite, one testcase per check and per sub-case, for common reporters.

ElementTree escapes markup, but not characters XML 1.0 forbids (most control characters), which
would leave a document no reporter can read; report strings are untrusted, so those go.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from mltest.report import Report, Status

_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
STOPPED = {
    True: ("run cancelled", "the run was cancelled before every check finished"),
    False: ("run did not finish", "the run ended before every check finished (killed or crashed)"),
}


def _seconds(value: object) -> str:
    number = value if isinstance(value, int | float) and not isinstance(value, bool) else 0.0
    return f"{number:.3f}"


def _xml(value: object) -> str:
    return _NOT_XML.sub("\ufffd", str(value))


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
    if report.cancelled or not report.complete:
        name, message = STOPPED[report.cancelled]
        cases.append(("suite", name, Status.ERROR, message, "", 0.0))

    suite = ET.Element(
        "testsuite",
        name=_xml(f"mltest.{report.suite}"),
        tests=str(len(cases)),
        failures=str(sum(c[2] is Status.FAIL for c in cases)),
        errors=str(sum(c[2] is Status.ERROR for c in cases)),
        skipped=str(sum(c[2] is Status.SKIPPED for c in cases)),
        time=_seconds(dict(report.metadata or {}).get("duration_s")),
    )
    for classname, name, status, message, details, seconds in cases:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=_xml(f"mltest.{classname}"),
            name=_xml(name),
            time=_seconds(seconds),
        )
        message, text = _xml(message), _xml(details or message)
        if status is Status.FAIL:
            ET.SubElement(case, "failure", message=message).text = text
        elif status is Status.ERROR:
            ET.SubElement(case, "error", message=message).text = text
        elif status is Status.SKIPPED:
            ET.SubElement(case, "skipped", message=message)
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
