"""Untrusted text made harmless for GitHub-flavoured Markdown, and still readable.

Every string in a report comes from the worker, which runs the pull request's code, so the
renderers treat all of it as hostile: it must not mention people or teams, inject HTML (a
second comment marker, a ``</details>`` that breaks the layout, an ``<img>``), or forge a
headline. The trick used throughout is the invisible WORD JOINER (U+2060): put right after
``@``, ``<``, ``&``, ``![`` or a heading's ``#``, it stops GitHub reading a mention, a tag, an
entity, an image or a heading, and a reader sees the text exactly as it was written.

Block-level text (a check's ``details``) keeps its Markdown (tables, lists, fenced code);
its fences are tracked the way CommonMark does, so a fence left open is closed before the
renderer's own ``</details>``.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any

WORD_JOINER = "\u2060"

# What would come alive on GitHub: a mention (@user, @org/team), a tag, comment or autolink
# (<x, </x, <!, <?), an entity that decodes to any character (&#64; is "@"), an issue
# reference (#12 cross-links another issue), an image (a green badge is a forged verdict).
_ACTIVE = re.compile(r"@(?=[A-Za-z0-9])|<(?=[A-Za-z/!?])|&(?=[A-Za-z#])|#(?=[0-9])|!(?=\[)")
# A heading's opening #s are followed by a space, a tab or the end of the line.
_MENTION = re.compile(r"@(?=[A-Za-z0-9])|#(?=[0-9])")  # for text that is already HTML-escaped
_ATX = re.compile(r"#(?=[ \t]|$)")
# Container prefixes (indent, block quote, list markers) then a run of ``` or ~~~: a fence in
# some container. Only column-0 fences are kept (see markdown()); over-matching is harmless.
_FENCE_LIKE = re.compile(r"^[ \t>*+\-0-9.)]*?(?=`{3}|~{3})")
# Container prefixes then only = or - to the end: a setext underline (or a thematic break).
_UNDERLINE_LIKE = re.compile(r"^[ \t>*+\-0-9.)]*?(?=[=-]+[ \t]*$)")
_OPENER = re.compile(r"^(`{3,}|~{3,})(.*)$")
_CLOSER = re.compile(r"^ {0,3}(`{3,}|~{3,})[ \t]*$")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")  # CommonMark's line endings, and no others
_BACKTICKS = re.compile(r"`+")


def neutralise(text: Any) -> str:
    """``text`` with mentions, tags, entities, issue references and images made inert."""
    return _ACTIVE.sub(lambda m: m.group() + WORD_JOINER, str(text))


def one_line(text: Any) -> str:
    """All whitespace, newlines included, collapsed to single spaces."""
    return " ".join(str(text).split())


def inline(text: Any) -> str:
    """Untrusted text for a spot inside a line the renderer writes (after its own prefix).

    Newlines are collapsed, so the text cannot start a block of its own; inline Markdown
    (code spans, emphasis) still renders.
    """
    return neutralise(one_line(text))


def cell(text: Any) -> str:
    """Untrusted text for a table cell: one line, pipes escaped (also inside code spans)."""
    return inline(text).replace("|", "\\|")


def code(text: Any) -> str:
    """Untrusted text as an inline code span, whatever backticks it holds."""
    content = inline(text)
    if not content:
        return ""
    fence = "`" * (max((len(run) for run in _BACKTICKS.findall(content)), default=0) + 1)
    pad = " " if content.startswith("`") or content.endswith("`") else ""
    return f"{fence}{pad}{content}{pad}{fence}"


def html_text(text: Any) -> str:
    """Untrusted text inside an HTML block (e.g. a ``<summary>``): HTML-escaped, one line."""
    return _MENTION.sub(lambda m: m.group() + WORD_JOINER, html.escape(one_line(text), False))


def fenced(text: Any) -> str:
    """Untrusted multi-line text shown verbatim in a fenced code block it cannot close."""
    body = neutralise(text)
    longest = max((len(run) for run in _BACKTICKS.findall(body)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}\n{_LINE_BREAK.sub(chr(10), body)}\n{fence}"


@dataclass(frozen=True)
class _Fence:
    char: str
    length: int

    def closed_by(self, line: str) -> bool:
        match = _CLOSER.match(line)
        return bool(match) and match.group(1)[0] == self.char and len(match.group(1)) >= self.length

    @property
    def closing(self) -> str:
        return self.char * self.length


def _opens(line: str) -> _Fence | None:
    """The fence a column-0 line opens, by CommonMark's rules, or None."""
    match = _OPENER.match(line)
    if not match:
        return None
    run, info = match.groups()
    if run[0] == "`" and "`" in info:  # a backtick fence's info string has no backtick
        return None
    return _Fence(run[0], len(run))


def open_fence(markdown: str) -> str | None:
    """The line that closes the top-level fence left open at the end of ``markdown``, if any.

    Only meaningful for text whose fences all start in column 0, which is what ``markdown()``
    produces and what the renderers write.
    """
    fence = None
    for line in _LINE_BREAK.split(markdown):
        if fence is None:
            fence = _opens(line)
        elif fence.closed_by(line):
            fence = None
    return fence.closing if fence else None


def markdown(text: Any) -> str:
    """Untrusted Markdown (a check's details) made safe to embed in a block of its own.

    Tables, lists, emphasis and fenced code keep working. Fences are kept only in column 0,
    where CommonMark always reads them as top-level, so this module and GitHub agree on where
    every fence starts and ends; a fence-like line anywhere else (indented, in a list or a
    quote) is broken, and a fence still open at the end is closed. Headings (``#`` and
    ``===``/``---`` underlines) are broken so the text cannot forge a headline.
    """
    out = []
    fence: _Fence | None = None
    for line in _LINE_BREAK.split(str(text)):
        if fence is not None:
            if fence.closed_by(line):
                fence = None
            out.append(neutralise(line))
            continue
        fence = _opens(line)
        if fence is not None:
            out.append(neutralise(line))
            continue
        out.append(_plain_line(neutralise(line)))
    if fence is not None:
        out.append(fence.closing)
    return "\n".join(out)


def _plain_line(line: str) -> str:
    """One line outside code: no fence, heading or setext underline can start here."""
    for pattern in (_FENCE_LIKE, _UNDERLINE_LIKE):
        match = pattern.match(line)
        if match:
            at = match.end() + 1  # after the first ` ~ = or -
            line = line[:at] + WORD_JOINER + line[at:]
    return _ATX.sub("#" + WORD_JOINER, line)
