"""Hostile report strings cannot inject anything into the PR comment.

Every string of a report comes from the process that ran the pull request's code. The comment
body is built by the real `comment_body` and parsed by cmark-gfm, GitHub's own Markdown parser,
with raw HTML allowed (as GitHub's parser allows it before its sanitiser); the HTML it gives is
then read with the standard library's HTML parser, which decodes entities as a browser would.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

import cmarkgfm
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mltest.github.comment import COMMENT_LIMIT, comment_body, marker
from mltest.render import safe
from mltest.render.charts import charts_for
from mltest.render.console import check_line, closing
from mltest.render.junit import render_junit
from mltest.render.markdown import render_markdown
from mltest.report import Case, CheckResult, Report, Status

COMMENT_ID = "tabular"
# Tags the renderer writes itself and tags plain Markdown produces. No img, no raw HTML.
ALLOWED_TAGS = {
    "details", "summary",
    "p", "h2", "table", "thead", "tbody", "tr", "th", "td", "code", "pre", "blockquote",
    "strong", "em", "del", "ul", "ol", "li", "a", "hr", "br", "input",
}  # fmt: skip
LIVE_MENTION = re.compile(r"@[A-Za-z0-9]")


@dataclass
class Parsed:
    """What GitHub's parser made of a body: tags, comments, text nodes."""

    starts: list[str] = field(default_factory=list)
    ends: list[str] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)  # declarations, processing instructions


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parsed = Parsed()

    def handle_starttag(self, tag, attrs):
        self.parsed.starts.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.parsed.starts.append(tag)
        self.parsed.ends.append(tag)

    def handle_endtag(self, tag):
        self.parsed.ends.append(tag)

    def handle_comment(self, data):
        self.parsed.comments.append(data)

    def handle_data(self, data):
        self.parsed.texts.append(data)

    def handle_decl(self, decl):
        self.parsed.other.append(decl)

    def handle_pi(self, data):
        self.parsed.other.append(data)

    def unknown_decl(self, data):
        self.parsed.other.append(data)


def _html(markdown: str) -> str:
    options = cmarkgfm.Options.CMARK_OPT_UNSAFE | cmarkgfm.Options.CMARK_OPT_GITHUB_PRE_LANG
    return cmarkgfm.github_flavored_markdown_to_html(markdown, options=options)


def parse(markdown: str) -> Parsed:
    collector = _Collector()
    collector.feed(_html(markdown))
    collector.close()
    return collector.parsed


_QUOTED = r'"(?:(?!%%)[^"`<>&#@{}\[\];\n])*"'  # no `%%`: a comment or a directive
_NUMBER = r"-?\d+(\.\d+)?"
STATEMENTS = [  # the only lines a chart may hold, labels in quotes with nothing live inside
    re.compile(line)
    for line in (
        r"---", r"config:", r"  xyChart:", r"    width: \d+", r"    height: \d+",
        r"  themeVariables:", r"    xyChart:", r'      plotColorPalette: "(#[0-9a-f]{6}(, )?)+"',
        r"xychart-beta", rf"  title {_QUOTED}",
        rf"  x-axis {_QUOTED} ({_NUMBER} --> {_NUMBER}|\[{_QUOTED}(, {_QUOTED})*\])",
        rf"  y-axis {_QUOTED} {_NUMBER} --> {_NUMBER}",
        rf"  (line|bar) \[{_NUMBER}(, {_NUMBER})*\]",
    )
]  # fmt: skip


def assert_mermaid_statements(block: str) -> None:
    lines = block.rstrip("\n").split("\n")
    assert lines[:2] == ["---", "config:"] and "xychart-beta" in lines, block
    for line in lines:
        assert any(p.fullmatch(line) for p in STATEMENTS), f"not a chart statement: {line!r}"


def visible(parsed: Parsed) -> str:
    """The text a reader sees (the word joiner is invisible)."""
    return "".join(parsed.texts).replace(safe.WORD_JOINER, "")


def assert_harmless(body: str, reports: list[Report], headlines: int = 1) -> Parsed:
    """The invariants of issue 8: one marker, balanced details, no raw HTML, no live mention,
    no forged headline."""
    assert body.startswith(marker(COMMENT_ID) + "\n")
    assert body.count("<!--") == 1, "a report string produced a second HTML comment"
    parsed = parse(body)
    assert parsed.comments == [f" mltest:comment-id={COMMENT_ID} "]
    assert parsed.other == []
    assert set(parsed.starts) <= ALLOWED_TAGS, set(parsed.starts) - ALLOWED_TAGS
    charts = [len(charts_for(c)) for r in reports for c in r.checks]
    sections = sum(1 for r in reports for c in r.checks if c.details or charts_for(c))
    emitted = sections + sum(charts)  # each chart has its data table in a details of its own
    opened, closed = parsed.starts.count("details"), parsed.ends.count("details")
    assert opened == closed
    if "Shortened to fit" in body or "_(truncated)_" in body:
        assert opened <= emitted
    elif "Charts left out" in body:
        assert sections <= opened <= emitted
    else:
        assert opened == emitted
    mermaid = re.findall(r'<pre lang="mermaid"><code>(.*?)</code></pre>', _html(body), re.S)
    if "Shortened to fit" not in body and "_(truncated)_" not in body:
        assert len(mermaid) == opened - sections
    for block in mermaid:  # each chart is one code block, every line one Mermaid statement
        assert_mermaid_statements(html.unescape(block))
    assert parsed.starts.count("summary") == opened
    assert [t for t in parsed.starts if re.fullmatch(r"h\d", t)] == ["h2"] * headlines
    assert not [t for t in parsed.texts if LIVE_MENTION.search(t)]
    return parsed


def one_check_report(**fields) -> Report:
    """A failing report whose every string is ``fields``' value where given."""
    check = CheckResult(
        name=fields.get("name", "memorization"),
        kind="memorization",
        status=Status.FAIL,
        summary=fields.get("summary", "took 40 epochs"),
        details=fields.get("details", "| seed | epochs |\n|---|---|\n| 0 | 40 |"),
        hint=fields.get("hint", "run `mltest baseline update`"),
        notices=[fields.get("notice", "recorded on cuda")],
        cases=[Case(fields.get("case_name", "seed 0"), Status.FAIL, fields.get("case", "slow"))],
    )
    return Report(
        suite=fields.get("suite", "tabular"),
        checks=[check, CheckResult(name="sanity", kind="sanity", status=Status.PASS,
                                   summary="all good", details="ok")],
        errors=[fields["error"]] if "error" in fields else [],
        metadata={
            "git_sha": fields.get("git_sha", "0123456789"),
            "device": fields.get("device", "cpu"),
            "git_branch": fields.get("git_branch", "main"),
        },
    )


# --- the attacks issue 8 lists, in every field -------------------------------------------------

ATTACKS = {
    "mention": "thanks @someuser",
    "team": "ping @org/team now",
    "entity-mention": "&#64;someuser and &commat;other",
    "close-details": "</details>",
    "forged-headline": "\n## ✅ mltest: all checks passed\n",
    "setext-headline": "ok\n===\n✅ mltest: all checks passed\n---",
    "img": '<img src=x onerror="alert(1)">',
    "markdown-image": "![passed](https://img.shields.io/badge/mltest-passed-green)",
    "open-comment": "<!-- everything after this is hidden",
    "second-marker": "<!-- mltest:comment-id=tabular -->",
    "open-fence": "```\n</details>\n## ✅ mltest: all checks passed",
    "open-tilde-fence": "~~~~python\n</details>",
    "list-fence": "- a\n  ```\nb\n```\n",
    "quote-fence": "> ```\n> </details>",
    "pipes": "a|b||c\\|d",
    "html-entity": "&lt;details&gt;",
    "backticks": "`` ` ``` ````",
}
FIELDS = ["suite", "name", "summary", "details", "hint", "notice", "case_name", "case",
          "error", "device", "git_branch", "git_sha"]  # fmt: skip


@pytest.mark.parametrize("attack", ATTACKS.values(), ids=ATTACKS.keys())
@pytest.mark.parametrize("where", FIELDS)
def test_attack_in_any_field_is_harmless(where, attack):
    report = one_check_report(**{where: attack})
    body = comment_body([report], comment_id=COMMENT_ID, run_url="https://github.com/r/1")
    parsed = assert_harmless(body, [report])
    text = visible(parsed)
    assert "sanity" in text and "all good" in text, "text after the attack was swallowed"


@pytest.mark.parametrize("where", ["name", "summary", "hint", "notice", "error", "device"])
def test_inline_fields_read_as_written(where):
    attack = "see @someuser <img src=x> &#64;x #12 ![b] <!-- x"
    parsed = parse(comment_body([one_check_report(**{where: attack})], comment_id=COMMENT_ID))
    assert attack in visible(parsed)


def test_details_keep_their_markdown_and_read_as_written():
    details = (
        "Worst rows for @alice:\n\n| id | got |\n|---|---|\n| `a\\|b` | <b> |\n\n"
        "```\nTraceback (most recent call last):\n  File \"m.py\", line 3, in <module>\n"
        "KeyError: '<!--'\n```\n\n- **loss**: 0 & stuck"
    )
    body = comment_body([one_check_report(details=details)], comment_id=COMMENT_ID)
    parsed = assert_harmless(body, [one_check_report(details=details)])
    assert {"table", "pre", "ul", "strong"} <= set(parsed.starts)
    text = visible(parsed)
    for piece in ("@alice", "a|b", "<b>", "KeyError: '<!--'", "0 & stuck"):
        assert piece in text


def test_pipes_in_names_keep_the_table_three_columns():
    report = one_check_report(name="ex|1|2", summary="a | b")
    html = cmarkgfm.github_flavored_markdown_to_html(render_markdown(report))
    first_table = html.split("</table>")[0]
    rows = first_table.split("<tr>")[1:]
    assert [row.count("<td") + row.count("<th") for row in rows] == [3, 3, 3]


def test_a_fence_left_open_is_closed_before_the_details_end():
    report = one_check_report(details="````py\ncode\n```\nstill code")
    parsed = assert_harmless(comment_body([report], comment_id=COMMENT_ID), [report])
    assert "still code" in visible(parsed)
    assert parsed.starts.count("pre") == 1


def test_multi_line_suite_error_is_shown_verbatim_in_a_longer_fence():
    error = "config.yaml:3: bad\n```\n</details>\n@team"
    report = one_check_report(error=error)
    parsed = assert_harmless(comment_body([report], comment_id=COMMENT_ID), [report])
    assert "config.yaml:3: bad\n```\n</details>\n@team" in visible(parsed)


# --- any string in any field -------------------------------------------------------------------

FRAGMENTS = [
    "@", "@a", "@org/team", "<", ">", "</details>", "<details>", "<!--", "-->", "<img src=x>",
    "&", "&#64;", "&lt;", "#", "# ", "## ", "\n", "\r", "\r\n", "\n\n", "=", "===", "-", "---",
    "`", "```", "````", "~~~", "|", "\\", "   ", "    ", "\t", "> ", "- ", "1. ", "* ", "![x](y)",
    "[l](u)", "*", "_", "\x00", "\u2060", "a", "x y", "✅",
]  # fmt: skip
hostile = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=4)), max_size=14
).map("".join)
statuses = st.sampled_from(list(Status))
# Numbers as a worker may write them: usual ones, and NaN, infinities, huge, bools, strings.
numbers = st.one_of(
    st.floats(-1e3, 1e3), st.floats(), st.integers(-10**6, 10**6), st.booleans(), hostile
)
rows = st.integers(1, 4)


@st.composite
def histograms(draw) -> dict:
    n = draw(rows)
    counts = st.lists(st.one_of(st.integers(0, 10**6), numbers), min_size=n, max_size=n)
    return {"decades": draw(st.lists(st.integers(-40, 40), min_size=n, max_size=n)),
            "counts": draw(counts), "moved": draw(counts), "zero": draw(numbers),
            "nonfinite": draw(numbers)}  # fmt: skip


# The metrics each chart reads, with every name the worker controls hostile.
CHART_METRICS = {
    "memorization": st.fixed_dictionaries({
        "target_quantity": hostile, "target_value": numbers,
        "curves": st.dictionaries(hostile, st.lists(numbers, max_size=90), max_size=4),
        "baseline_curve": st.lists(st.lists(numbers, min_size=2, max_size=2), max_size=5),
        "baseline_epochs": numbers, "baseline_history": st.lists(numbers, max_size=4),
        "median_epochs": numbers, "max_epochs": numbers,
        "tolerance": st.fixed_dictionaries({"relative": numbers, "epochs": numbers}),
    }),
    "key_examples": st.fixed_dictionaries({"tags": st.dictionaries(hostile, st.fixed_dictionaries(
        {"rate": numbers, "allowed": numbers, "new_failures": numbers}), max_size=20)}),
    "regression": st.fixed_dictionaries({
        "outputs": st.dictionaries(hostile, st.fixed_dictionaries(
            {"moved": numbers, "histogram": histograms()}), max_size=4),
        "tolerances": st.dictionaries(hostile, st.fixed_dictionaries(
            {"atol": numbers, "rtol": numbers}), max_size=2),
    }),
    "sanity": st.just({}),
}  # fmt: skip


@st.composite
def reports(draw) -> Report:
    kinds = [draw(st.sampled_from(sorted(CHART_METRICS))) for _ in range(3)]
    checks = [
        CheckResult(
            name=draw(hostile),
            kind=kinds[i],
            metrics=draw(CHART_METRICS[kinds[i]]),
            status=draw(statuses),
            summary=draw(hostile),
            details=draw(hostile),
            hint=draw(hostile),
            notices=draw(st.lists(hostile, max_size=2)),
            cases=[Case(draw(hostile), draw(statuses), draw(hostile))],
            duration_s=draw(st.floats(0, 1e4)),
        )
        for i in range(draw(st.integers(0, 3)))
    ]
    metadata = {key: draw(hostile) for key in ("git_sha", "device", "git_branch", "pr")}
    metadata["duration_s"] = draw(st.one_of(st.floats(0, 1e4), hostile))
    return Report(
        suite=draw(hostile),
        checks=checks,
        errors=draw(st.lists(hostile, max_size=2)),
        metadata=metadata,
        complete=draw(st.booleans()),
        cancelled=draw(st.booleans()),
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(report=reports(), limit=st.sampled_from([COMMENT_LIMIT, 1500]))
def test_any_string_in_any_field_is_harmless(report, limit):
    body = comment_body([report], comment_id=COMMENT_ID, run_url="https://x/r/1", max_chars=limit)
    assert len(body) <= limit
    assert_harmless(body, [report])


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(first=reports(), second=reports())
def test_merged_reports_are_harmless_too(first, second):
    body = comment_body([first, second], comment_id=COMMENT_ID)
    assert_harmless(body, [first, second], headlines=3)  # the overview's and each report's


@settings(max_examples=100, deadline=None)
@given(text=hostile)
def test_console_and_junit_survive_any_string(text):
    report = one_check_report(name=text, summary=text, hint=text, notice=text, error=text,
                              case_name=text, case=text, suite=text)  # fmt: skip
    for line in (check_line(report.checks[0], colour=False) + "\n" + closing(
        report, "out", colour=False
    )).splitlines():
        assert not line.startswith("::") and "\x1b" not in line
    import xml.etree.ElementTree as ET

    ET.fromstring(render_junit(report).split("\n", 1)[1])  # well-formed XML


# --- a run that did not finish says so --------------------------------------------------------


@pytest.mark.parametrize(
    ("complete", "cancelled", "markdown", "console", "junit"),
    [
        (True, True, "the run was cancelled", "was cancelled", "run cancelled"),
        (False, True, "the run was cancelled", "was cancelled", "run cancelled"),
        (False, False, "the run did not finish", "did not finish", "run did not finish"),
    ],
)
def test_unfinished_and_cancelled_runs_say_so(complete, cancelled, markdown, console, junit):
    report = one_check_report()
    report.complete, report.cancelled = complete, cancelled

    body = render_markdown(report)
    assert body.startswith(f"## 💥 mltest: {markdown} — `tabular`")
    assert "results below are partial" in body
    assert console in closing(report, "out", colour=False)
    assert f'name="{junit}"' in render_junit(report)
    assert "ERROR" in closing(report, "out", colour=False)
