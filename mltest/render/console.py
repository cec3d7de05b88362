"""Console output: one line per check as it finishes, a closing verdict; colour only on a TTY.

Report strings come from the process that ran the pull request's code: each is printed on one
line without control characters, so it can neither colour the terminal nor start a line that
GitHub Actions reads as a workflow command (``::set-output``, ``::add-mask::``...).
"""

from __future__ import annotations

import re

from mltest.report import CheckResult, Report, Status, Verdict

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

_COLOURS = {Status.PASS: "32", Status.FAIL: "31", Status.ERROR: "35", Status.SKIPPED: "33"}
_VERDICT_COLOURS = {Verdict.PASS: "32", Verdict.FAIL: "31", Verdict.ERROR: "35"}


def _paint(text: str, code: str, colour: bool) -> str:
    return f"\033[{code}m{text}\033[0m" if colour else text


def plain(text: object) -> str:
    """Untrusted text as one printable line: whitespace collapsed, control characters dropped."""
    return _CONTROL.sub("", " ".join(str(text).split()))


def check_line(result: CheckResult, *, colour: bool) -> str:
    """`PASS  memorization  memorized in 12 epochs ... (3.1 s)` plus notices and hints."""
    label = _paint(f"{result.status.value.upper():<7}", _COLOURS[result.status], colour)
    seconds = result.duration_s if isinstance(result.duration_s, int | float) else 0.0
    lines = [f"{label} {plain(result.name):<13} {plain(result.summary)} ({seconds:.1f} s)"]
    lines += [f"        notice: {plain(notice)}" for notice in result.notices]
    if result.status in (Status.FAIL, Status.ERROR) and result.hint:
        lines.append(f"        what to do: {plain(result.hint)}")
    return "\n".join(lines)


def closing(report: Report, report_dir: str, *, colour: bool) -> str:
    """The suite errors, the counts and the verdict, and where the report files are."""
    lines = [f"error: {plain(error)}" for error in report.errors]
    if report.cancelled:
        lines.append("the run was cancelled before every check finished; results are partial")
    elif not report.complete:
        lines.append("the run did not finish (killed or crashed); results are partial")
    tally = ", ".join(f"{n} {s}" for s, n in report.counts.items() if n) or "no checks ran"
    verdict = _paint(report.verdict.value.upper(), _VERDICT_COLOURS[report.verdict], colour)
    lines.append(f"mltest {plain(report.suite)}: {verdict} ({tally}); report in {report_dir}/")
    return "\n".join(lines)
