"""Hard examples: the candidate's highest-loss examples of each data set, with their slices,
listed in the report so a person can review them and propose them as key examples
(`mltest hard-examples` turns the list into a key-examples table)."""

from __future__ import annotations

from typing import Any

from mltest.checks.evaluation.data import EvalSet, inline_input
from mltest.checks.evaluation.metrics import Predictions, example_losses
from mltest.checks.evaluation.settings import ALL, Settings


def hardest(data: EvalSet, preds: Predictions, members: dict[str, Any], settings: Settings,
            spec_target: Any) -> list[dict[str, Any]]:  # fmt: skip
    """The `settings.hard_examples` highest-loss examples of a data set, worst first, as JSON:
    data set, index, id (tables with an `id` column), slices, loss, target, prediction and,
    when small enough, the input itself."""
    import torch

    count = min(settings.hard_examples, data.count)
    if not count:
        return []
    losses = example_losses(preds, data.target, settings.task)
    order = torch.argsort(losses, descending=True, stable=True)[:count].tolist()
    slices_of: dict[int, list[str]] = {}
    for name, rows in members.items():
        if name == ALL:
            continue
        for row in rows.tolist():
            slices_of.setdefault(row, []).append(name)
    column = spec_target if isinstance(spec_target, str) else "target"
    found = []
    for index in order:
        example = data.example(index) if data.example is not None else None
        found.append({
            "dataset": data.name,
            "index": index,
            "id": data.ids[index] if data.ids else None,
            "slices": slices_of.get(index, []),
            "loss": round(float(losses[index]), 6),
            "target": _plain(data.target[index]),
            "prediction": _prediction(preds, index),
            "input": None if example is None else inline_input(example, bool(data.rows), column),
        })  # fmt: skip
    return found


def _prediction(preds: Predictions, index: int) -> Any:
    if preds.values is not None:
        return _plain(preds.values[index])
    return _plain(preds.labels[index])


def _plain(t: Any) -> Any:
    """A scalar as a number; a small tensor as a list; a large one as its shape."""
    if t.numel() == 1:
        return t.item()
    if t.numel() <= 64:
        return t.tolist()
    return f"tensor of shape {tuple(t.shape)}"


def markdown(found: list[dict[str, Any]]) -> str:
    """The list as a table for the details."""
    from mltest.render.safe import cell

    if not found:
        return ""
    lines = [
        "**Hardest examples** (highest loss; `mltest hard-examples --report DIR` proposes them "
        "as key examples for review):",
        "",
        "| data set | example | slices | loss | target | prediction |",
        "|---|---|---|---|---|---|",
    ]
    for ex in found:
        name = ex["id"] if ex["id"] is not None else f"{ex['dataset']}[{ex['index']}]"
        slices = ", ".join(ex["slices"]) or "—"
        lines.append(
            f"| {cell(ex['dataset'])} | {cell(name)} | {cell(slices)} | {ex['loss']:.4g} "
            f"| {cell(_short(ex['target']))} | {cell(_short(ex['prediction']))} |"
        )
    return "\n".join(lines)


def _short(value: Any) -> str:
    text = f"{value:.4g}" if isinstance(value, float) else str(value)
    return text if len(text) <= 40 else text[:39] + "…"
