"""The Markdown body used for the PR comment, the job summary and report.md."""

from __future__ import annotations

from mltest.report import CheckResult, Report, Status, Verdict

GITHUB_COMMENT_LIMIT = 65_536

ICONS = {Status.PASS: "✅", Status.FAIL: "❌", Status.ERROR: "💥", Status.SKIPPED: "⏭️"}
HEADLINES = {
    Verdict.PASS: "✅ mltest: all checks passed",
    Verdict.FAIL: "❌ mltest: checks failed",
    Verdict.ERROR: "💥 mltest: the suite could not run completely",
}
SHORTENED = (
    "\n\n_Details were shortened to fit GitHub's size limit; the full report is in {where}._"
)


def render_markdown(
    report: Report,
    *,
    run_url: str | None = None,
    max_chars: int = GITHUB_COMMENT_LIMIT,
) -> str:
    """Headline verdict, a table of checks, collapsible details, and what to do next.

    When the body would be longer than `max_chars`, each check's details are cut (largest
    first) and the body says so, pointing at the run for the full report.
    """
    details = {c.name: c.details for c in report.checks}
    body = _compose(report, details, run_url, shortened=False)
    while len(body) > max_chars:
        longest = max(details, key=lambda name: len(details[name]), default=None)
        if longest is None or not details[longest]:
            return body[: max_chars - 20] + "\n\n_(truncated)_\n"
        excess = len(body) - max_chars + len(SHORTENED) + 200
        keep = max(0, len(details[longest]) - max(excess, len(details[longest]) // 2))
        details[longest] = _cut(details[longest], keep)
        body = _compose(report, details, run_url, shortened=True)
    return body


def _compose(report: Report, details: dict[str, str], run_url: str | None, shortened: bool) -> str:
    counts = report.counts
    parts = [f"## {HEADLINES[report.verdict]} — `{report.suite}`", ""]
    tally = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    parts.append(f"{tally or 'no checks ran'}{_context_line(report, run_url)}")
    parts.append("")
    for error in report.errors:
        parts += [f"> **Error:** {_one_line(error)}", ""]
    if report.checks:
        parts += ["| check | status | summary |", "|---|---|---|"]
        for check in report.checks:
            icon = ICONS[check.status]
            parts.append(
                f"| {check.name} | {icon} {check.status.value} | {_cell(check.summary)} |"
            )
        parts.append("")
    for check in report.checks:
        parts += _section(check, details.get(check.name, ""))
    if shortened:
        parts.append(SHORTENED.format(where=f"[the run]({run_url})" if run_url else "report.json"))
    return "\n".join(parts).rstrip() + "\n"


def _section(check: CheckResult, details: str) -> list[str]:
    lines = []
    if check.status in (Status.FAIL, Status.ERROR) and check.hint:
        lines += [f"**{check.name}: what to do** — {check.hint}", ""]
    for notice in check.notices:
        lines += [f"> ℹ️ **{check.name}:** {notice}", ""]
    if details:
        opened = " open" if check.status in (Status.FAIL, Status.ERROR) else ""
        lines += [
            f"<details{opened}><summary>{check.name} details</summary>",
            "",
            details,
            "",
            "</details>",
            "",
        ]
    return lines


def _context_line(report: Report, run_url: str | None) -> str:
    meta = report.metadata
    bits = []
    if meta.get("git_sha"):
        bits.append(f"commit `{meta['git_sha'][:7]}`")
    if meta.get("device"):
        bits.append(f"on {meta['device']}")
    if meta.get("duration_s") is not None:
        bits.append(f"in {meta['duration_s']:.0f} s")
    if run_url:
        bits.append(f"[run]({run_url})")
    return " · " + " · ".join(bits) if bits else ""


def _cell(text: str) -> str:
    return _one_line(text).replace("|", "\\|")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _cut(text: str, keep: int) -> str:
    if keep <= 0:
        return "_(details omitted for size)_"
    cut = text[:keep]
    if cut.count("```") % 2:  # do not leave a code fence open
        cut += "\n```"
    return cut + "\n\n_… (shortened)_"
