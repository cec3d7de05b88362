"""What the evaluation report shows: the metric x slice table (failures first) and the
metrics the charts and machines read (every cell with its intervals, the gaps, the history of
the headline metric)."""

from __future__ import annotations

import math
from typing import Any

from mltest.checks.evaluation.cells import (
    AGAINST,
    Cell,
    GapResult,
    Outcome,
    amount,
    gap_text,
    shown,
)

ROWS = 60  # table rows in the details; every cell is in the metrics
_ICON = {Outcome.FAIL: "❌", Outcome.NOT_SIGNIFICANT: "⚠️", Outcome.PASS: "", Outcome.NEW: "new"}
_RANK = {Outcome.FAIL: 0, Outcome.NOT_SIGNIFICANT: 1, Outcome.PASS: 2, Outcome.NEW: 2}


def in_order(cells: list[Cell]) -> list[Cell]:
    """Failures first (the furthest past their limits first), then past the limit but not
    significant, then the rest in config order."""
    return sorted(cells, key=lambda c: (_RANK[c.outcome], -c.severity if _RANK[c.outcome] < 2
                                        else 0.0))  # fmt: skip


def table(cells: list[Cell], level: float) -> str:
    from mltest.render.safe import cell as safe

    head = (f"| | data set / slice | n | metric | value ({level:.0%} CI) | vs previous "
            "| vs pinned | vs trivial | limit |")  # fmt: skip
    lines = [head, "|---|---|---|---|---|---|---|---|---|"]
    ordered = in_order(cells)
    for c in ordered[:ROWS]:
        ci = f"[{shown(c.low, c.bounded)}, {shown(c.high, c.bounded)}]"
        value = f"{shown(c.value, c.bounded)} {ci}"
        deltas = [_delta(c, name) for name in AGAINST]
        limit = ""
        if c.bound is not None:
            relation = "≥" if c.bound.kind == "at_least" else "≤"
            limit = f"{relation} {c.bound.limit:g} {_ICON[c.bound.outcome]}"
        lines.append(
            f"| {_ICON[c.outcome]} | {safe(c.where)} | {c.n} | {safe(c.metric)} | {value} | "
            + " | ".join(deltas)
            + f" | {limit.strip()} |"
        )
    if len(ordered) > ROWS:
        lines.append(f"\n_{len(ordered) - ROWS} more cell(s), all passing, in report.json._")
    return "\n".join(lines)


def _delta(c: Cell, name: str) -> str:
    comp = c.against(name)
    if comp is None:
        return "—"
    ci = f"[{_bare(comp.low, c.bounded)}, {_bare(comp.high, c.bounded)}]"
    paired = "" if comp.paired else "*"
    return f"{amount(comp.delta, c.bounded)} {ci}{paired} {_ICON[comp.outcome]}".strip()


def _bare(value: float, bounded: bool) -> str:
    return amount(value, bounded).removesuffix(" points")


def details(cells: list[Cell], found_gaps: list[GapResult], level: float, header: list[str],
            extra: list[str]) -> str:  # fmt: skip
    """The details block: a header, the table, the gaps, a legend, then extra sections."""
    from mltest.render.safe import inline

    lines = [*header, "", table(cells, level), ""]
    if found_gaps:
        lines += ["**Gaps between slices:**", ""]
        lines += [f"- {_ICON[g.outcome] or '✅'} {inline(gap_text(g, level))}" for g in found_gaps]
        lines.append("")
    lines.append(
        "_Deltas are the candidate minus the reference (points for shares). ❌ beyond the limit "
        "and significant; ⚠️ beyond the limit but not significant (the interval includes no "
        "change), so it passes; \\* compared with the recorded value only (the examples "
        "changed), not example by example._"
    )
    for part in extra:
        if part:
            lines += ["", part]
    return "\n".join(lines)


def json_number(value: Any) -> float | None:
    """JSON-safe: non-finite numbers become null."""
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def cell_metrics(c: Cell) -> dict[str, Any]:
    out: dict[str, Any] = {
        "dataset": c.dataset, "slice": c.slice, "metric": c.metric, "n": c.n,
        "value": json_number(c.value), "low": json_number(c.low), "high": json_number(c.high),
        "higher_is_better": c.higher_is_better, "bounded": c.bounded,
        "outcome": c.outcome.value,
        "bound": None if c.bound is None else {
            "kind": c.bound.kind, "limit": c.bound.limit, "outcome": c.bound.outcome.value,
        },
    }  # fmt: skip
    for name in AGAINST:
        comp = c.against(name)
        out[name] = None if comp is None else {
            "reference": json_number(comp.reference), "delta": json_number(comp.delta),
            "low": json_number(comp.low), "high": json_number(comp.high), "paired": comp.paired,
            "allowance": json_number(comp.allowance), "outcome": comp.outcome.value,
        }  # fmt: skip
    return out


def gap_metrics(g: GapResult) -> dict[str, Any]:
    return {
        "dataset": g.dataset, "metric": g.metric, "slices": list(g.slices), "best": g.best,
        "worst": g.worst, "gap": json_number(g.gap), "low": json_number(g.low),
        "high": json_number(g.high), "at_most": g.at_most, "outcome": g.outcome.value,
    }  # fmt: skip


def history(previous: dict | None, dataset: str, metric: str) -> list[dict[str, Any]]:
    """The headline value (`dataset` / all / `metric`) of each recording, oldest first."""
    if not previous:
        return []
    points = []
    for item in [*previous.get("history", []), previous]:
        value = item.get("results", {}).get(dataset, {}).get("all", {}).get(metric)
        if json_number(value) is not None:
            points.append({"recorded": str(item.get("recorded", "?")), "value": float(value)})
    return points
