"""What the memorization report shows: the per-seed table, the learning curves for the charts,
and the median curve a baseline keeps."""

from __future__ import annotations

import statistics
from typing import Any

from mltest.checks.memorization.seed_run import SeedRun, shown_number
from mltest.checks.memorization.settings import Settings, Target


def details(runs: list[SeedRun], baseline: dict | None, settings: Settings) -> str:
    from mltest.render.safe import cell

    q = cell(settings.target.quantity)
    from mltest.target_choice import best

    rows = [
        f"| seed | epochs | {q} at init | best {q} (epoch) | last {q} | seconds |",
        "|---|---|---|---|---|---|",
    ]
    for r in runs:
        epochs = r.epochs if r.epochs is not None else "not reached"
        first, last = shown_number(r.initial_value), shown_number(r.final_value)
        found = best(r.curve, settings.target.lower_is_better)
        top = f"{shown_number(found[0])} ({found[1]})" if found else "—"
        rows.append(f"| {r.seed} | {epochs} | {first} | {top} | {last} | {r.seconds:.1f} |")
    held = f", held for {settings.hold} epochs in a row" if settings.hold > 1 else ""
    judge = runs[0].judge if runs else "training_step"
    by = f", judged by {judge} in eval mode" if judge != "training_step" else ""
    if judge == "samples":
        by = ", judged by the built-in samples judgement (fixed latents against the batch)"
    lines = [
        f"Target: {cell(settings.target.describe())}{held} on the first {settings.batches} "
        f"batch(es){by}.",
        "",
    ]
    lines += rows
    slower = sorted({r.loop for r in runs if r.loop})
    if slower:  # mltest's lean loop could not be equal to Lightning's for this model
        lines += ["", f"Trained in Lightning's own fit loop: {cell('; '.join(slower))}."]
    if baseline:
        trend = [*baseline.get("history", []), baseline["median"]]
        lines += ["", f"Baseline trend (oldest first): {' → '.join(f'{x:g}' for x in trend)}"]
    return "\n".join(lines)


def median_curve(runs: list[SeedRun], target: Target, points: int = 100) -> list[list[float]]:
    """The seeds' median curve of the target quantity as ``[epoch, value]`` pairs, epoch 0 being
    the fresh init, up to the median epoch count and thinned to about ``points`` pairs.

    A seed that reached the target stopped training; it counts with its last value after that.
    """
    curves = [c for c in (r.curve for r in runs) if c]
    counts = [r.epochs for r in runs if r.epochs is not None]
    if not curves or not counts:
        return []
    length = min(max(map(len, curves)), int(statistics.median(counts)) + 1)
    median = [
        statistics.median(c[min(epoch, len(c) - 1)] for c in curves) for epoch in range(length)
    ]
    step = max(1, -(-length // points))
    keep = sorted({*range(0, length, step), length - 1})
    return [[epoch, round(median[epoch], 6)] for epoch in keep]


def chart_metrics(runs: list[SeedRun], target: Target, baseline: dict | None) -> dict[str, Any]:
    """What the report's charts draw: the target quantity per seed from init on, the target,
    and the baseline's median curve when the baseline has one."""
    return {
        "target_quantity": target.quantity,
        "target_value": target.value,
        "target_relation": target.relation,
        "curves": {str(r.seed): r.curve for r in runs},
        "baseline_curve": (baseline or {}).get("curve") or [],
    }
