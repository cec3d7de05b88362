"""Console output: one line per check as it finishes, a closing verdict; colour only on a TTY."""

from __future__ import annotations

from mltest.report import CheckResult, Report, Status, Verdict

_COLOURS = {Status.PASS: "32", Status.FAIL: "31", Status.ERROR: "35", Status.SKIPPED: "33"}
_VERDICT_COLOURS = {Verdict.PASS: "32", Verdict.FAIL: "31", Verdict.ERROR: "35"}


def _paint(text: str, code: str, colour: bool) -> str:
    return f"\033[{code}m{text}\033[0m" if colour else text


def check_line(result: CheckResult, *, colour: bool) -> str:
    """`PASS  memorization  memorized in 12 epochs ... (3.1 s)` plus notices and hints."""
    label = _paint(f"{result.status.value.upper():<7}", _COLOURS[result.status], colour)
    lines = [f"{label} {result.name:<13} {result.summary} ({result.duration_s:.1f} s)"]
    lines += [f"        notice: {notice}" for notice in result.notices]
    if result.status in (Status.FAIL, Status.ERROR) and result.hint:
        lines.append(f"        what to do: {result.hint}")
    return "\n".join(lines)


def closing(report: Report, report_dir: str, *, colour: bool) -> str:
    """The suite errors, the counts and the verdict, and where the report files are."""
    lines = [f"error: {error}" for error in report.errors]
    tally = ", ".join(f"{n} {s}" for s, n in report.counts.items() if n) or "no checks ran"
    verdict = _paint(report.verdict.value.upper(), _VERDICT_COLOURS[report.verdict], colour)
    lines.append(f"mltest {report.suite}: {verdict} ({tally}); report in {report_dir}/")
    return "\n".join(lines)
