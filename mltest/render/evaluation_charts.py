"""The evaluation gate's charts: the headline metric on every slice of the first data set
against the previous result and the pinned reference, and the history of the headline value
(recorded results, then this run) against the pinned reference.

Like every chart builder it reads only the check's metrics, which come from the worker: a value
of the wrong type or shape gives no chart, never an exception.
"""

from __future__ import annotations

import math
from typing import Any

from mltest.render import mermaid
from mltest.render.mermaid import Chart, Series

SLICES = 16  # slices drawn; the failing ones first (the metrics list cells in that order)
HISTORY = 12


def evaluation(m: dict) -> list[Chart | None]:
    headline = m.get("headline") if isinstance(m.get("headline"), dict) else {}
    dataset, metric = headline.get("dataset"), headline.get("metric")
    cells = [c for c in m.get("cells") or [] if isinstance(c, dict)]
    mine = [c for c in cells if c.get("dataset") == dataset and c.get("metric") == metric]
    return [_slices(mine, str(dataset), str(metric)), _history(m, mine, str(dataset), str(metric))]


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _reference(cell: dict, name: str) -> float | None:
    ref = cell.get(name)
    return _num(ref.get("reference")) if isinstance(ref, dict) else None


def _slices(cells: list[dict], dataset: str, metric: str) -> Chart | None:
    drawn = [c for c in cells if _num(c.get("value")) is not None][:SLICES]
    if not drawn:
        return None
    names = [("❌ " if c.get("outcome") == "fail" else "") + str(c.get("slice")) for c in drawn]
    series = [Series("this run", [_num(c["value"]) for c in drawn], mermaid.BLUE, "bar")]
    for name, colour in (("previous", mermaid.GREY), ("pinned", mermaid.PURPLE)):
        values = [_reference(c, name) for c in drawn]
        if all(v is not None for v in values):
            series.append(Series(f"{name} result" if name == "previous" else "pinned reference",
                                 values, colour))  # fmt: skip
    bounds = [c.get("bound") for c in drawn]
    limits = [_num(b.get("limit")) if isinstance(b, dict) else None for b in bounds]
    if all(v is not None for v in limits):
        series.append(Series("limit", limits, mermaid.RED))
    values = [v for s in series for v in s.values]
    more = len([c for c in cells if _num(c.get("value")) is not None]) - len(drawn)
    note = "_❌ marks a slice that fails a limit._" + (f" _{more} more slice(s) not drawn._"
                                                       if more > 0 else "")  # fmt: skip
    return Chart(
        title=f"{metric} per slice of {dataset}: this run, previous and pinned",
        x_title="slice",
        y_title=metric,
        x=names,
        series=series,
        y_range=_axis(values),
        note=note,
    )


def _history(m: dict, cells: list[dict], dataset: str, metric: str) -> Chart | None:
    points = [p for p in m.get("history") or [] if isinstance(p, dict)][-HISTORY:]
    recorded = [(str(p.get("recorded", "?")), _num(p.get("value"))) for p in points]
    recorded = [(when, value) for when, value in recorded if value is not None]
    overall = next((c for c in cells if c.get("slice") == "all"), None)
    now = _num(overall.get("value")) if overall else None
    if not recorded or now is None:
        return None
    names = [f"{i + 1}: {when}" for i, (when, _) in enumerate(recorded)] + ["this run"]
    values = [v for _, v in recorded] + [now]
    series = [Series(f"{metric} on {dataset} / all: recorded results, then this run", values,
                     mermaid.BLUE, "bar")]  # fmt: skip
    pinned = _reference(overall, "pinned")
    if pinned is not None:
        series.append(Series(f"pinned reference {pinned:.4g}", [pinned] * len(values),
                             mermaid.PURPLE))  # fmt: skip
    return Chart(
        title=f"{metric} on {dataset}: history of recorded results and this run",
        x_title="recording",
        y_title=metric,
        x=names,
        series=series,
        y_range=_axis([v for s in series for v in s.values]),
    )


def _axis(values: list[float]) -> tuple[float, float]:
    """Room around values that barely differ (reruns of one model), so bars stay readable."""
    low, high = mermaid.nice_range(values, floor_zero=False)
    middle = (low + high) / 2
    if high - low < 1e-3 * max(abs(middle), 1e-9):
        pad = max(abs(middle) * 0.01, 1e-6)
        return middle - pad, middle + pad
    return low, high
