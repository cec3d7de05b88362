"""Hard examples from a saved report, proposed as key examples for a person to review.

The evaluation gate lists each data set's highest-loss examples in its metrics
(`hard_examples`); `mltest hard-examples` writes them as a key-examples table (JSONL, the
format `checks.key_examples.examples` reads): one minimum-functionality row per example with
its true target as the expected output, tagged `hard`, its data set and its slices. Reads only
the report; imports no torch.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mltest.report import Report


@dataclass(frozen=True)
class Proposal:
    """What `propose` wrote, for the command's message."""

    rows: int
    by_reference: int  # rows whose input is a reference to the data set, not the input itself
    wrong_now: int  # rows the candidate gets wrong today (most hard examples)


def propose(report: Report, out: Path, *, dataset: str | None = None, top: int | None = None,
            check: str = "evaluation") -> Proposal:  # fmt: skip
    """Write the report's hard examples to `out` as key-example rows (JSONL).

    Raises:
        ValueError: the report has no evaluation result with hard examples (the message says
            why and what to run).
    """
    result = next((c for c in report.checks if c.kind == check), None)
    found = result.metrics.get("hard_examples") if result and isinstance(result.metrics, dict) \
        else None  # fmt: skip
    if not isinstance(found, list) or not found:
        raise ValueError(
            "the report has no hard examples: run the evaluation gate first (`mltest run "
            "--check evaluation`, with `checks.evaluation.hard_examples` above 0)"
        )
    rows, by_reference, wrong = [], 0, 0
    tolerance = _typical_error(result.metrics)
    picked = [ex for ex in found if isinstance(ex, dict)
              and (dataset is None or ex.get("dataset") == dataset)]  # fmt: skip
    for ex in picked[:top] if top else picked:
        row = _row(ex, tolerance)
        by_reference += isinstance(row["input"], dict) and set(row["input"]) == {"dataset", "index"}
        wrong += ex.get("prediction") != ex.get("target")
        rows.append(row)
    out.parent.mkdir(parents=True, exist_ok=True)
    from mltest.files import atomic_write_text

    atomic_write_text(out, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    return Proposal(len(rows), by_reference, wrong)


def _row(ex: dict[str, Any], tolerance: float | None) -> dict[str, Any]:
    name = ex.get("id") if ex.get("id") is not None else f"{ex.get('dataset')}-{ex.get('index')}"
    given = ex.get("input")
    row: dict[str, Any] = {
        "id": f"hard-{name}",
        "kind": "mft",
        "input": given if given is not None else {"dataset": ex.get("dataset"),
                                                  "index": ex.get("index")},  # fmt: skip
        "expected": ex.get("target"),
        "tags": ["hard", str(ex.get("dataset")), *map(str, ex.get("slices") or [])],
    }
    if isinstance(row["expected"], float) and tolerance is not None:
        row["tolerance"] = tolerance  # regression: the model's typical error, to review
    return row


def _typical_error(metrics: dict[str, Any]) -> float | None:
    """The candidate's mean absolute error on the first data set, when the report has it."""
    for cell in metrics.get("cells") or []:
        if isinstance(cell, dict) and cell.get("slice") == "all" and cell.get("metric") in (
            "mae", "rmse"
        ):
            value = cell.get("value")
            if isinstance(value, int | float) and math.isfinite(value):
                return round(float(value), 6)
    return None
