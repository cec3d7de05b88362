"""Mermaid ``xychart-beta`` charts that GitHub renders in comments and job summaries.

GitHub turns a fenced ``mermaid`` block into a diagram (Mermaid 10.5 or later draws
``xychart-beta``: lines and bars on one band or linear x-axis, no legend, no missing values).
Only that subset is written here, and every chart has a plain table of the same numbers for
readers whose client shows the block as code (mail, the API, old Enterprise Servers).

Chart text comes from the report, so it is hostile: `label` keeps a label on its own line and
inside its quotes, and leaves nothing Mermaid reads as syntax (comments and ``%%{init}%%``
directives, Markdown strings in backticks, entity codes such as ``#35;``, HTML) nor anything
GitHub's Markdown would turn live (mentions, an end of the code fence).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from mltest.render import safe

# Series colours, each with the emoji square that stands for it in the legend line (xychart
# draws no legend of its own). Red is kept for what needs attention.
BLUE, GREEN, PURPLE, ORANGE, YELLOW, BROWN, RED, GREY = (
    ("#3b82f6", "🟦"), ("#22c55e", "🟩"), ("#a855f7", "🟪"), ("#f97316", "🟧"),
    ("#eab308", "🟨"), ("#a16207", "🟫"), ("#ef4444", "🟥"), ("#4b5563", "⬛"),
)  # fmt: skip
CYCLE = (BLUE, GREEN, PURPLE, ORANGE, YELLOW, BROWN)

LABEL_CHARS = 32
# Characters that are syntax somewhere between GitHub's Markdown and Mermaid's lexer, with a
# look-alike that is not.
_LOOKALIKE = str.maketrans({
    '"': "ʺ", "`": "ʹ", "<": "‹", ">": "›", "&": "＆", "#": "＃", "@": "＠",
    "\\": "∖", "{": "(", "}": ")", "[": "(", "]": ")", ";": ",", "|": "¦",
})  # fmt: skip
_PERCENTS = re.compile(r"%{2,}")  # `%%` starts a comment or an `%%{init}%%` directive


def label(text: object, limit: int = LABEL_CHARS) -> str:
    """Untrusted text as the inside of a quoted Mermaid string: one line, at most ``limit``
    characters, no quote, no control or invisible format character, nothing Mermaid or
    GitHub reads as syntax."""
    kept = (
        " " if unicodedata.category(ch) in {"Zl", "Zp"} or ch.isspace() else ch
        for ch in str(text)
        if unicodedata.category(ch) not in {"Cc", "Cf", "Cs", "Co", "Cn"} or ch in "\t\n\r"
    )
    flat = " ".join(_PERCENTS.sub("%", "".join(kept).translate(_LOOKALIKE)).split())
    if len(flat) > limit:
        flat = flat[: limit - 1].rstrip() + "…"
    return flat or "?"


def number(value: float, decimals: int) -> str:
    """A finite number as Mermaid's lexer reads one: digits, an optional point, no exponent."""
    text = f"{value:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in {"-0", ""} else text


def decimals_for(low: float, high: float) -> int:
    """Enough decimals to tell apart values a thousandth of the axis apart."""
    span = high - low
    if not (math.isfinite(span) and span > 0):
        return 3
    return max(0, min(10, 3 - math.floor(math.log10(span))))


_AXIS_LIMIT = 1e15


def nice_range(values: Sequence[float], floor_zero: bool = True) -> tuple[float, float]:
    """An axis range holding every finite value with a little room; from 0 when close to it.

    Values are held within ±1e15 first: past that a chart says nothing more, and padding a
    value near the float maximum would overflow to inf, which Mermaid cannot read.
    """
    finite = [min(max(v, -_AXIS_LIMIT), _AXIS_LIMIT) for v in values if math.isfinite(v)]
    if not finite:
        return 0.0, 1.0
    low, high = min(finite), max(finite)
    if floor_zero and low >= 0 and low <= 0.5 * high:
        low = 0.0
    if high == low:
        return (low - 1, high + 1) if low else (0.0, 1.0)
    pad = (high - low) * 0.05
    return (low if low == 0.0 else low - pad), high + pad


@dataclass(frozen=True)
class Series:
    """One line or set of bars. ``name`` is shown in the legend and the table only."""

    name: str
    values: list[float]
    colour: tuple[str, str] = BLUE
    kind: str = "line"  # or "bar"


@dataclass
class Chart:
    """An xychart: a title, an x-axis of categories or a linear range, one y range, series.

    Attributes:
        x: the band axis's categories, or the linear axis's values (one per point, evenly
            spaced: Mermaid places points by position, not by value).
        linear_x: whether ``x`` holds numbers on a linear axis.
        note: a line under the legend (how to read the chart), already Markdown-safe.
    """

    title: str
    x_title: str
    y_title: str
    x: list
    series: list[Series]
    linear_x: bool = False
    y_range: tuple[float, float] | None = None
    note: str = ""
    table_rows: int = 16

    def mermaid(self) -> str:
        """The fenced ``mermaid`` block, colours set in its front matter."""
        values = [v for s in self.series for v in s.values]
        low, high = self.y_range or nice_range(values)
        digits = decimals_for(low, high)
        palette = ", ".join(s.colour[0] for s in self.series)
        lines = [
            "```mermaid",
            "---",
            "config:",
            "  xyChart:",
            "    width: 720",
            "    height: 340",
            "  themeVariables:",
            "    xyChart:",
            f'      plotColorPalette: "{palette}"',
            "---",
            "xychart-beta",
            f'  title "{label(self.title, 80)}"',
        ]
        if self.linear_x:
            lines.append(
                f'  x-axis "{label(self.x_title)}" {number(self.x[0], 6)} --> '
                f"{number(self.x[-1], 6)}"
            )
        else:
            names = ", ".join(f'"{c}"' for c in _unique(label(c, 24) for c in self.x))
            lines.append(f'  x-axis "{label(self.x_title)}" [{names}]')
        lines.append(
            f'  y-axis "{label(self.y_title)}" {number(low, digits)} --> {number(high, digits)}'
        )
        for s in self.series:
            clipped = [min(max(v, low), high) if math.isfinite(v) else high for v in s.values]
            data = ", ".join(number(v, digits) for v in clipped)
            lines.append(f"  {s.kind} [{data}]")
        lines.append("```")
        return "\n".join(lines)

    def legend(self) -> str:
        """The legend line: each series' colour square and name, in drawing order."""
        return " · ".join(f"{s.colour[1]} {safe.inline(s.name)}" for s in self.series)

    def table(self) -> str:
        """The same numbers as a Markdown table, thinned to about ``table_rows`` rows."""
        values = [v for s in self.series for v in s.values]
        digits = decimals_for(*nice_range(values))
        head = [safe.cell(self.x_title)] + [safe.cell(s.name) for s in self.series]
        rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        count = len(self.x)
        step = max(1, -(-count // self.table_rows))
        for i in sorted({*range(0, count, step), count - 1}):
            x = number(self.x[i], 6) if self.linear_x else safe.cell(self.x[i])
            cells = [_shown(s.values[i], digits) if i < len(s.values) else "" for s in self.series]
            rows.append("| " + " | ".join([x, *cells]) + " |")
        return "\n".join(rows)

    def markdown(self) -> str:
        """Chart, legend, a note, and the table in a collapsed block."""
        parts = [self.mermaid(), "", self.legend()]
        if self.note:
            parts += ["", self.note]
        parts += [
            "",
            "<details><summary>chart data</summary>",
            "",
            self.table(),
            "",
            "</details>",
        ]
        return "\n".join(parts)


def _shown(value: float, digits: int) -> str:
    return number(value, digits) if math.isfinite(value) else str(value)


def _unique(names) -> list[str]:
    """Band categories must differ (equal ones share a bar): number the repeats."""
    out: list[str] = []
    for name in names:
        candidate, n = name, 1
        while candidate in out:
            n += 1
            candidate = f"{name} ({n})"
        out.append(candidate)
    return out


def evenly(count: int, last: int) -> list[int]:
    """About ``count`` whole numbers from 0 to ``last``, evenly spaced, both ends included."""
    if last <= 0:
        return [0]
    if last + 1 <= count:
        return list(range(last + 1))
    return sorted({round(i * last / (count - 1)) for i in range(count)})
