"""What the key-examples report shows: each example as a case, failing examples in order
(new failures first), inputs summarised on one line, and the per-tag table."""

from __future__ import annotations

import heapq
from typing import Any

from mltest.checks.key_examples.judging import Outcome
from mltest.checks.key_examples.settings import Settings
from mltest.checks.key_examples.verdict import TagStat
from mltest.report import Case, Status


def case(o: Outcome) -> Case:
    if not o.tested:
        return Case(o.example.id, Status.PASS, f"{o.expected}; predicted {o.got}")
    if o.passed:
        return Case(o.example.id, Status.PASS)
    conf = f" (confidence {o.confidence:.3f})" if o.confidence is not None else ""
    new = "new failure: " if o.new_failure else ""
    return Case(o.example.id, Status.FAIL,
                f"{new}{o.example.kind}: expected {o.expected}, got {o.got}{conf}; "
                f"input {summarize(o.example.input)}")


def failing_in_order(outcomes: list[Outcome], first: int | None = None) -> list[Outcome]:
    """New failures first, then the most confidently wrong; ties by id, so order is stable.
    `first`: only that many from the front (a 10,000-row table is not sorted to show 30)."""
    failed = [o for o in outcomes if o.tested and not o.passed]
    if first is not None and first < len(failed):
        return heapq.nsmallest(first, failed, key=_failure_order)
    return sorted(failed, key=_failure_order)


def _failure_order(o: Outcome) -> tuple[bool, float, str]:
    return (not o.new_failure, -round(o.severity, 6), o.example.id)


def summarize(value: Any, limit: int = 60) -> str:
    """A short, one-line picture of an input for tables and messages."""
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        text = _array_text(value)
    elif isinstance(value, str):
        text = repr(value)
    elif isinstance(value, (list, tuple)):
        parts = [f"{v:.3g}" if isinstance(v, float) else summarize(v, 20) for v in value[:12]]
        text = "[" + ", ".join(parts) + (", …" if len(value) > 12 else "") + "]"
    elif isinstance(value, dict):
        text = "{" + ", ".join(f"{k}: {summarize(v, 20)}" for k, v in value.items()) + "}"
    else:
        text = repr(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _array_text(value: Any) -> str:
    """A tensor or array as a person reads it: its values when short, else shape, dtype and
    simple statistics (a picture's mean and range tell a changed normalisation at once)."""
    import numpy as np

    array = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
    dtype = str(value.dtype).removeprefix("torch.")
    if array.size <= 8:
        shown = ", ".join(f"{x:.3g}" if isinstance(x, float) else str(x) for x in
                          array.reshape(-1).tolist())
        return f"[{shown}] ({dtype})"
    shape = "×".join(map(str, array.shape))
    if np.issubdtype(array.dtype, np.number) or array.dtype == bool:
        data = array.astype(np.float64)
        return (f"{shape} {dtype}, mean {data.mean():.3g}, std {data.std():.3g}, "
                f"range [{data.min():.3g}, {data.max():.3g}]")
    return f"{shape} {dtype}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def details(outcomes: list[Outcome], stats: list[TagStat], settings: Settings) -> str:
    rows = ["| tag | cases | failures | rate | allowed | |", "|---|---|---|---|---|---|"]
    for s in stats:
        mark = "✅" if s.ok else "❌"
        rows.append(f"| {_cell(s.tag)} | {s.cases} | {s.failures} | {s.rate:.0%} | "
                    f"{s.allowed:.0%} | {mark} |")
    failing = sum(o.tested and not o.passed for o in outcomes)
    if not failing:
        return "\n".join(rows)
    lines = [*rows, "", f"**Failing examples** ({failing}; new failures first):", "",
             "| id | kind | input | expected | got | confidence |", "|---|---|---|---|---|---|"]
    for o in failing_in_order(outcomes, settings.show_failures):
        conf = f"{o.confidence:.3f}" if o.confidence is not None else "—"
        new = " 🆕" if o.new_failure else ""
        lines.append(
            f"| `{_cell(o.example.id)}`{new} | {o.example.kind} | "
            f"{_cell(summarize(o.example.input))} | {_cell(o.expected)} | {_cell(o.got)} | "
            f"{conf} |"
        )
    if failing > settings.show_failures:
        lines.append(f"\n… and {failing - settings.show_failures} more (see junit.xml)")
    return "\n".join(lines)


