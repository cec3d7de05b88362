"""The charts each check's metrics make: learning curves and the epoch-count history
(memorization), pass rate per tag (key examples), absolute differences by decade (regression).

Metrics come from the worker like every other report string, so each builder reads them
defensively: a value of the wrong type or shape gives no chart, never an exception.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from mltest.render import mermaid
from mltest.render.evaluation_charts import evaluation
from mltest.render.mermaid import Chart, Series
from mltest.report import NON_FINITE, CheckResult

POINTS = 60  # per line: enough to see the shape, small enough for the comment
SEEDS = len(mermaid.CYCLE)  # lines beyond this many seeds are listed, not drawn
TAGS = 16
OUTPUTS = 3


def charts_for(check: CheckResult) -> list[Chart]:
    """The charts for one check's metrics, by the check's kind; none when nothing fits."""
    build = _BUILDERS.get(check.kind)
    metrics = check.metrics if isinstance(check.metrics, dict) else {}
    if build is None or not metrics:
        return []
    try:
        return [chart for chart in build(metrics) if chart is not None]
    except (ArithmeticError, ValueError):  # numbers no check writes (inf epochs, 1e400 counts)
        return []


# --- reading untrusted numbers ---------------------------------------------------------------


def _num(value: Any) -> float | None:
    """A real number (not a bool; report.json's "NaN"/"Infinity" strings count), else None."""
    if isinstance(value, str) and value in NON_FINITE:
        return NON_FINITE[value]
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _nums(value: Any) -> list[float]:
    """A list of real numbers, or [] when ``value`` is not one."""
    if not isinstance(value, list):
        return []
    out = [_num(v) for v in value]
    return [] if None in out else out  # type: ignore[misc]


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _finite_forward(values: list[float]) -> list[float]:
    """Non-finite values replaced by the last finite one before them (dropped at the start)."""
    out: list[float] = []
    for v in values:
        if math.isfinite(v):
            out.append(v)
        elif out:
            out.append(out[-1])
    return out


# --- memorization ---------------------------------------------------------------------------


def memorization(m: dict) -> list[Chart | None]:
    return [_learning_curves(m), _epoch_history(m)]


def _learning_curves(m: dict) -> Chart | None:
    curves, first = _dict(m.get("curves")), 0
    if not curves:  # a report from before `curves`: losses from epoch 1
        curves, first = _dict(m.get("loss_curves")), 1
    seeds = {str(k): _finite_forward(_nums(v)) for k, v in curves.items()}
    seeds = {k: v for k, v in seeds.items() if v}
    if not seeds:
        return None
    quantity = str(m.get("target_quantity") or "loss")
    target = _num(m.get("target_value"))
    pairs = m.get("baseline_curve") if isinstance(m.get("baseline_curve"), list) else []
    baseline = sorted(
        (pair[0], pair[1])
        for pair in map(_nums, pairs)
        if len(pair) == 2 and all(map(math.isfinite, pair)) and 0 <= pair[0] <= 10**7
    )
    last = max(first + len(v) - 1 for v in seeds.values())
    if baseline:
        last = max(last, int(baseline[-1][0]))
    epochs = [first + e for e in mermaid.evenly(POINTS, last - first)]
    drawn = sorted(seeds, key=_seed_order)[:SEEDS]
    series = [
        Series(f"seed {seed}", [_at(seeds[seed], first, e) for e in epochs], mermaid.CYCLE[i])
        for i, seed in enumerate(drawn)
    ]
    below = quantity == "loss"
    if target is not None:
        relation = m.get("target_relation")
        if relation not in ("<", "≤", "≥"):  # a report from before `target_relation`
            relation = "<" if below else "≥"
        series.append(Series(f"target: {quantity} {relation} {target:g}", [target] * len(epochs),
                             mermaid.RED))
    if baseline:
        median = [_interpolate(baseline, e) for e in epochs]
        series.append(Series("baseline median", median, mermaid.GREY))
    notes = ["Each seed trains until it reaches the target, so its line is flat after that."]
    if len(epochs) < last - first + 1:
        notes.append(f"{len(epochs)} of {last - first + 1} epochs drawn.")
    if len(seeds) > len(drawn):
        notes.append(f"{len(seeds) - len(drawn)} more seed(s) not drawn.")
    values = [v for s in series for v in s.values]
    return Chart(
        title=f"{quantity} per epoch on the memorized batches (eval mode)",
        x_title="epoch",
        y_title=quantity,
        x=epochs,
        linear_x=True,
        series=series,
        y_range=mermaid.nice_range(values, floor_zero=below),
        note="_" + " ".join(notes) + "_",
    )


def _seed_order(seed: str) -> tuple[int, int | str]:
    return (0, int(seed)) if seed.lstrip("-").isdigit() else (1, seed)


def _at(values: list[float], first: int, epoch: int) -> float:
    """A seed's value at ``epoch``; after its last epoch (target reached), its last value."""
    return values[min(max(epoch - first, 0), len(values) - 1)]


def _interpolate(points: list[tuple[float, float]], epoch: float) -> float:
    """The thinned baseline curve at ``epoch``, linear between its points, flat past its ends."""
    if epoch <= points[0][0]:
        return points[0][1]
    for (e0, v0), (e1, v1) in zip(points, points[1:], strict=False):
        if e0 <= epoch <= e1:
            return v0 if e1 == e0 else v0 + (v1 - v0) * (epoch - e0) / (e1 - e0)
    return points[-1][1]


def _epoch_history(m: dict) -> Chart | None:
    base = _num(m.get("baseline_epochs"))
    if base is None:
        return None
    history = _nums(m.get("baseline_history"))[-12:]
    median = _num(m.get("median_epochs"))
    budget = _num(m.get("max_epochs"))
    now = median if median is not None else budget
    if now is None:
        return None
    tolerance = _dict(m.get("tolerance"))
    relative, extra = _num(tolerance.get("relative")), _num(tolerance.get("epochs"))
    limit = max(base * (1 + relative), base + extra) if None not in (relative, extra) else None
    slow = median is None or (limit is not None and median > limit)
    names = [f"rec. {i + 1}" for i in range(len(history))] + ["baseline", "this run"]
    medians = [*history, base, now]
    # One colour per series only (xychart), and overlaid bars of 0 still show a sliver: this
    # run stands out as a line across the chart instead.
    run_name = f"this run: {now:g} epochs" + (" (not memorized)" if median is None else "")
    series = [
        Series("median epochs, recorded baselines then this run", medians, mermaid.BLUE, "bar"),
        Series(run_name, [now] * len(names), _verdict_colour(slow, limit is not None)),
    ]
    if limit is not None:
        series.append(Series(f"fails above {limit:g} epochs", [limit] * len(names), mermaid.ORANGE))
    top = max([*medians, limit or 0.0])
    return Chart(
        title="median epochs to memorize: baseline history and this run",
        x_title="recording",
        y_title="epochs",
        x=names,
        series=series,
        y_range=(0.0, math.ceil(top * 1.1) or 1.0),
    )


def _verdict_colour(slow: bool, known: bool) -> tuple[str, str]:
    """Red when this run is too slow, green when it is within the limit, purple without one."""
    return mermaid.RED if slow else mermaid.GREEN if known else mermaid.PURPLE


# --- key examples -----------------------------------------------------------------------------


def key_examples(m: dict) -> list[Chart | None]:
    tags = []
    for tag, row in _dict(m.get("tags")).items():
        row = _dict(row)
        rate, allowed = _num(row.get("rate")), _num(row.get("allowed"))
        if rate is None or allowed is None:
            continue
        new = _num(row.get("new_failures")) or 0.0
        tags.append((str(tag), 100 * (1 - rate), 100 * (1 - allowed), int(new)))
    if not tags:
        return [None]
    if len(tags) > TAGS:  # the worst ones: new failures, then furthest below their floor
        worst = sorted(tags, key=lambda t: (-t[3], t[1] - t[2]))[:TAGS]
        tags = [t for t in tags if t in worst]
    names = [f"⚠ {mermaid.label(t, 14)} · {new} new" if new else t for t, _, _, new in tags]
    series = [
        Series("pass rate", [p for _, p, _, _ in tags], mermaid.BLUE, "bar"),
        Series("lowest allowed pass rate", [floor for _, _, floor, _ in tags], mermaid.ORANGE),
    ]
    news = sum(new for *_, new in tags)
    total = len(_dict(m.get("tags")))
    notes = [f"⚠ marks a tag with new failures: {news} example(s) that passed in the baseline "
             "fail now."] if news else []  # fmt: skip
    if total > len(tags):
        notes.append(f"{len(tags)} of {total} tags drawn (the worst).")
    return [
        Chart(
            title="key examples: pass rate per tag against its allowed rate",
            x_title="tag",
            y_title="pass rate (%)",
            x=names,
            series=series,
            y_range=(0.0, 100.0),
            note=f"_{' '.join(notes)}_" if notes else "",
        )
    ]


# --- regression --------------------------------------------------------------------------------


def regression(m: dict) -> list[Chart | None]:
    tolerances = _dict(m.get("tolerances"))
    charts: list[Chart | None] = []
    for name, out in _dict(m.get("outputs")).items():
        out = _dict(out)
        if not (_num(out.get("moved")) or 0) or len(charts) >= OUTPUTS:
            continue
        charts.append(_histogram(str(name), _dict(out.get("histogram")),
                                 _dict(tolerances.get(name))))  # fmt: skip
    return charts


def _histogram(name: str, h: dict, tolerance: dict) -> Chart | None:
    decades = _nums(h.get("decades"))
    counts, moved = _nums(h.get("counts")), _nums(h.get("moved"))
    if not decades or len(counts) != len(decades) or len(moved) != len(decades):
        return None
    atol = _num(tolerance.get("atol"))
    at = math.floor(math.log10(atol)) if atol and atol > 0 else None
    names = [f"1e{int(k)}" + (" (atol)" if at == int(k) else "") for k in decades]
    zero, nonfinite = _num(h.get("zero")) or 0.0, _num(h.get("nonfinite")) or 0.0
    if zero:
        names, counts, moved = ["0", *names], [zero, *counts], [0.0, *moved]
    if nonfinite:
        names, counts, moved = [*names, "inf/NaN"], [*counts, nonfinite], [*moved, nonfinite]
    limits = ", ".join(
        f"{key} {value:g}" for key in ("atol", "rtol")
        if (value := _num(tolerance.get(key))) is not None
    )  # fmt: skip
    return Chart(
        title=f"absolute differences of {mermaid.label(name, 24)}, by decade",
        x_title="abs difference",
        y_title="values",
        x=names,
        series=[
            Series("values", counts, mermaid.BLUE, "bar"),
            Series(f"of which beyond tolerance ({limits})" if limits else "of which beyond "
                   "tolerance", moved, mermaid.RED),
        ],
        y_range=(0.0, math.ceil(max(counts) * 1.1) or 1.0),
        note="_Bin 1eK holds differences from 1eK up to 1eK+1; each value's tolerance is "
        "atol + rtol × abs(golden)._",
    )


_BUILDERS: dict[str, Callable[[dict], list[Chart | None]]] = {
    "memorization": memorization,
    "key_examples": key_examples,
    "regression": regression,
    "evaluation": evaluation,
}
