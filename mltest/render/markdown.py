"""The Markdown body used for the PR comment, the job summary and report.md.

Every string taken from the report passes through `mltest.render.safe` on its way in: the
report comes from the process that ran the pull request's code.
"""

from __future__ import annotations

from mltest.render import safe
from mltest.render.charts import charts_for
from mltest.report import CheckResult, Report, Status, Verdict

GITHUB_COMMENT_LIMIT = 65_536

ICONS = {Status.PASS: "✅", Status.FAIL: "❌", Status.ERROR: "💥", Status.SKIPPED: "⏭️"}
HEADLINES = {
    Verdict.PASS: "✅ mltest: all checks passed",
    Verdict.FAIL: "❌ mltest: checks failed",
    Verdict.ERROR: "💥 mltest: the suite could not run completely",
}
CANCELLED = "💥 mltest: the run was cancelled"
UNFINISHED = "💥 mltest: the run did not finish"
SHORTENED = (
    "\n\n_Details were shortened to fit GitHub's size limit; the full report is in {where}._"
)
CHARTS_LEFT_OUT = "_Charts left out to fit GitHub's size limit; see {where}._"


def render_markdown(
    report: Report,
    *,
    run_url: str | None = None,
    max_chars: int = GITHUB_COMMENT_LIMIT,
) -> str:
    """What a PR author reads first comes first: the verdict, one line per check that did not
    pass with its cause and what to do, likely causes shared by several checks, then the table
    of checks, then notices and collapsible details with charts.

    When the body would be longer than `max_chars`, charts go first (passing checks' before
    failing ones', each section saying so), then each check's details are cut (largest first)
    and the body says so, pointing at the run for the full report.
    """
    details = [str(c.details or "") for c in report.checks]  # by position: names may repeat
    charts: list[str | None] = [chart_markdown(c) for c in report.checks]  # None: left out
    body = _compose(report, details, charts, run_url, shortened=False)
    for i in sorted(
        (i for i, text in enumerate(charts) if text),
        key=lambda i: (report.checks[i].status in _OPEN, -len(charts[i] or "")),
    ):
        if len(body) <= max_chars:
            break
        charts[i] = None
        body = _compose(report, details, charts, run_url, shortened=False)
    # Each round at least halves one check's details, and details cut to the placeholder leave
    # the rotation, so the loop ends whatever the report holds (a 65,000-character summary
    # included); what still does not fit is cut at the end.
    shrinkable = [bool(text) for text in details]
    while len(body) > max_chars and any(shrinkable):
        longest = max(
            (i for i, ok in enumerate(shrinkable) if ok), key=lambda i: len(details[i])
        )
        excess = len(body) - max_chars + len(SHORTENED) + 200
        keep = max(0, len(details[longest]) - max(excess, len(details[longest]) // 2))
        details[longest] = _cut(details[longest], keep)
        shrinkable[longest] = keep > 0
        body = _compose(report, details, charts, run_url, shortened=True)
    if len(body) > max_chars:
        return truncate(body, max_chars, "\n\n_(truncated)_\n")
    return body


def chart_markdown(check: CheckResult) -> str:
    """The check's charts (Mermaid, legend, data table), or '' when its metrics make none."""
    return "\n\n".join(chart.markdown() for chart in charts_for(check))


def truncate(body: str, max_chars: int, note: str) -> str:
    """Cut ``body`` at a line end so that it and ``note`` fit in ``max_chars``.

    A fenced block or ``<details>`` the cut leaves open is closed first, so the note (and
    anything after the body) renders as text, outside them.
    """
    cut = body[: max(0, max_chars - len(note) - 200)]
    cut = cut[: cut.rfind("\n") + 1]  # a whole line: never half a tag or a fence
    closing = safe.open_fence(cut)
    if closing:
        cut += closing + "\n"
    lines = cut.splitlines()
    unclosed = sum(x.startswith("<details") for x in lines) - lines.count("</details>")
    cut += "\n</details>\n" * max(unclosed, 0)
    return (cut + note)[:max_chars]


def headline(report: Report) -> str:
    """The verdict in words; a cancelled or unfinished run says so rather than a generic error."""
    if report.cancelled:
        return CANCELLED
    if not report.complete:
        return UNFINISHED
    return HEADLINES[report.verdict]


def _compose(
    report: Report,
    details: list[str],
    charts: list[str | None],
    run_url: str | None,
    shortened: bool,
) -> str:
    counts = report.counts
    suite = safe.code(report.suite)
    parts = [f"## {headline(report)}" + (f" — {suite}" if suite else ""), ""]
    tally = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    parts.append(f"{tally or 'no checks ran'}{_context_line(report, run_url)}")
    parts.append("")
    if report.cancelled or not report.complete:
        parts += [f"> {_STOPPED[report.cancelled]}", ""]
    for error in report.errors:
        parts += _error(error)
    parts += _to_fix(report)
    parts += _causes(report)
    if report.checks:
        parts += ["| check | status | summary |", "|---|---|---|"]
        for check in report.checks:
            icon = ICONS[check.status]
            parts.append(
                f"| {safe.cell(check.name)} | {icon} {check.status.value} "
                f"| {safe.cell(check.summary)} |"
            )
        parts.append("")
    for check, text, chart in zip(report.checks, details, charts, strict=True):
        parts += _section(check, text, chart, run_url)
    if shortened:
        parts.append(SHORTENED.format(where=_where(run_url)))
    return "\n".join(parts).rstrip() + "\n"


def _to_fix(report: Report) -> list[str]:
    """One line per check that failed or errored: its summary (what broke, where) and its hint
    (what to do), before the table and long before any chart."""
    lines = []
    for check in report.checks:
        if check.status not in _OPEN:
            continue
        summary = str(check.summary).strip()
        stop = "" if summary.endswith((".", "!", "?")) or not check.hint else "."
        line = f"- {ICONS[check.status]} **{safe.inline(check.name)}** — {safe.inline(summary)}"
        if check.hint:
            line += f"{stop} **What to do:** {safe.inline(check.hint)}"
        lines.append(line)
    return [*lines, ""] if lines else []


def _causes(report: Report) -> list[str]:
    """Failures grouped by likely cause (the checks' `metrics["causes"]`), so one bug seen by
    two checks reads as one diagnosis; nothing when no failing check names a cause."""
    seen: dict[str, list[str]] = {}
    for check in report.checks:
        causes = check.metrics.get("causes") if check.status is Status.FAIL else None
        if isinstance(causes, list):
            for cause in causes:
                if isinstance(cause, str) and cause:
                    seen.setdefault(cause, []).append(check.name)
    if not seen:
        return []
    lines = ["**Likely causes:**", ""]
    for cause, names in seen.items():
        lines.append(f"- {safe.inline(cause)}: {', '.join(safe.code(n) for n in names)}")
    return [*lines, ""]


_STOPPED = {
    True: "The run was cancelled before every check finished; the results below are partial.",
    False: "The run ended before every check finished (it was killed or crashed); the results "
    "below are partial.",
}


def _error(error: str) -> list[str]:
    """A suite error: its first line quoted, and all of it verbatim when it has more lines."""
    text = str(error).strip()
    first = text.splitlines()[0] if text else ""
    lines = [f"> **Error:** {safe.inline(first)}", ""]
    if safe.one_line(text) != safe.one_line(first):
        lines += [safe.fenced(text), ""]
    return lines


_OPEN = (Status.FAIL, Status.ERROR)


def _section(
    check: CheckResult, details: str, charts: str | None, run_url: str | None
) -> list[str]:
    """Notices, and the collapsible block: charts first, then the check's details; open when
    the check failed (its hint is at the top). ``charts`` is None when left out for size."""
    lines = []
    name = safe.inline(check.name)
    for notice in check.notices:
        lines += [f"> ℹ️ **{name}:** {safe.inline(notice)}", ""]
    left_out = CHARTS_LEFT_OUT.format(where=_where(run_url))
    inside = [left_out if charts is None else charts, safe.markdown(details) if details else ""]
    inside = [part for part in inside if part]
    if inside:
        opened = " open" if check.status in _OPEN else ""
        lines += [f"<details{opened}><summary>{safe.html_text(check.name)} details</summary>", ""]
        for part in inside:
            lines += [part, ""]
        lines += ["</details>", ""]
    return lines


def _where(run_url: str | None) -> str:
    return f"[the run]({run_url})" if run_url else "report.json"


def _context_line(report: Report, run_url: str | None) -> str:
    meta = report.metadata if isinstance(report.metadata, dict) else {}
    bits = []
    # The commit the author pushed (the event's PR head), not the merge commit a PR run checks
    # out; docker mode has no git and only this.
    commit = meta.get("head_sha") or meta.get("git_sha")
    if commit:
        bits.append(f"commit {safe.code(str(commit)[:7])}")
    if meta.get("device"):
        bits.append(f"on {safe.inline(meta['device'])}")
    duration = meta.get("duration_s")
    if isinstance(duration, int | float) and not isinstance(duration, bool):
        bits.append(f"in {duration:.0f} s")
    if run_url:
        bits.append(f"[run]({run_url})")
    return " · " + " · ".join(bits) if bits else ""


def _cut(text: str, keep: int) -> str:
    if keep <= 0:
        return "_(details omitted for size)_"
    cut = text[:keep]
    closing = safe.open_fence(cut)  # close a fence the cut left open, before our own note
    if closing:
        cut += "\n" + closing
    return cut + "\n\n_… (shortened)_"
