"""The text `mltest init` writes: a commented block completing a partial mltest.yaml.

Pure and torch-free (supervisor side). The user's own lines and comments are never rewritten:
the block is appended to the file's text as it is (a YAML re-dump would lose comments, key
order and quoting), and keys the file already sets (`seeds`, `task`) are left to it.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping
from typing import Any

import yaml

from mltest.target_choice import Proposal, best

# What each check is for, one comment line above it.
_PURPOSE = {
    "memorization": "can a fresh model overfit the first batch, and in how many epochs?",
    "sanity": "one step and a few more: everything that should train does, nothing else",
    "regression": "predict_step on fixed inputs, compared with golden outputs",
}
_KEY_EXAMPLE_HINTS = {
    "segmentation": "e.g. a region that must be one class: "
    "`{id: sky, kind: mft, input: ..., measure: pixel_accuracy, region: '0:8,0:32', "
    "expected: 1, at_least: 0.9}`",
    "regression": "e.g. a reconstruction within a bound: "
    "`{id: ring, kind: mft, input: ..., measure: mse, at_most: 0.05}` (expected defaults to "
    "the input)",
    "generative": "e.g. statistics of a sample from a fixed latent: "
    "`{id: z0, kind: mft, input: [latent numbers], measure: mean, expected: 0.2, "
    "tolerance: 0.1}`",
}


def partial_config_text(
    model: str, data: str, model_args: Mapping, data_args: Mapping, trainer: Mapping
) -> str:
    """A new mltest.yaml holding only what the user knows: the classes and their arguments."""
    lines = [
        "# mltest suite; `mltest init --config mltest.yaml` completed it from a short",
        "# exploration. Run it with `mltest run --config mltest.yaml`.",
        "model:",
        f"  class: {_flow(model)}",
    ]
    if model_args:
        lines.append(f"  init_args: {_flow(dict(model_args))}")
    lines += ["data:", f"  class: {_flow(data)}"]
    if data_args:
        lines.append(f"  init_args: {_flow(dict(data_args))}")
    lines.append(f"trainer: {_flow(dict(trainer) or {'accelerator': 'auto', 'devices': 1})}")
    return "\n".join(lines) + "\n"


def completion(
    found: Mapping[str, Any],
    proposal: Proposal | None,
    *,
    explored: int,
    max_epochs: int,
    batches: int,
    hold: int,
    keep: set[str],
) -> str:
    """The block appended to the user's file.

    Args:
        found: the exploration's metrics (`mltest.explore`).
        proposal: the target chosen from the curves; None when no level holds.
        explored: the epochs each seed was explored for.
        max_epochs: the check's budget to write: the explored one for a model with a
            scheduler (whose schedule may be built from it), else a few times the slowest
            count.
        batches: batches memorized.
        hold: judgements in a row the target must hold.
        keep: top-level keys the file already sets (not written again).
    """
    seeds = found["seeds"]
    task = found["task"]
    today = datetime.date.today().isoformat()
    lines = [
        "",
        f"# --- `mltest init`, {today}: seeds {', '.join(map(str, seeds))} explored for "
        f"{explored} epochs on {batches} batch(es) ---",
    ]
    if "task" not in keep:
        lines += [f"# Task: {task['described']}.", f"task: {_flow(_task_value(task))}"]
    if "seeds" not in keep:
        lines.append(f"seeds: {_flow(list(seeds))}")
    lines.append("checks:")
    lines += _memorization(
        found, proposal, explored=explored, max_epochs=max_epochs, batches=batches, hold=hold
    )
    for name in ("sanity", "regression"):
        outcome = found["checks"].get(name, {})
        lines.append(f"  # {name}: {_PURPOSE[name]}")
        if outcome.get("status") in ("pass", "fail"):
            if outcome["status"] == "fail":
                lines += _comment(f"It fails on this code as it is: {outcome['summary']}", "  ")
            lines.append(f"  {name}: {{}}")
        else:
            why = outcome.get("summary") or "it did not run"
            lines += _comment(f"Left out: {_first_line(why)}", "  ")
            lines.append(f"  # {name}: {{}}")
    lines += [
        "  # key_examples: behaviour tests on examples you choose (docs/checks/key_examples.md);",
        *_comment(_KEY_EXAMPLE_HINTS.get(task["kind"] or "", "e.g. `{id: cat, kind: mft, "
                  "input: ..., expected: cat}`"), "  "),
        "  # key_examples: {examples: key_examples.jsonl, collate: data:collate}",
    ]
    return "\n".join(lines) + "\n"


def _memorization(found, proposal, *, explored, max_epochs, batches, hold) -> list[str]:
    quantity = found["quantity"]  # the loss, or sample_gap: both fall as the model learns
    key = "loss_below" if quantity == "loss" else "at_most"
    lines = [f"  # memorization: {_PURPOSE['memorization']}"]
    curves = {int(s): c for s, c in found["curves"].items()}
    if proposal is None:
        bests = "; ".join(_best(seed, c, quantity) for seed, c in curves.items())
        lines += _comment(
            f"Left out: no {quantity} level was reached with margin by more than half of the "
            f"seeds within {explored} epochs ({bests}). A model that cannot memorize one "
            "batch has a bug (a layer not wired in, a detached tensor, an optimizer over the "
            "wrong parameters); if it is just slow, run `mltest init --max-epochs "
            f"{2 * explored}`.",
            "  ",
        )
        return lines + ["  # memorization: {}"]
    reached = [c for c in proposal.counts.values() if c is not None]
    why = (
        "the curves were measured with this budget, so a schedule built from it is the same"
        if max_epochs == explored
        else f"the model has no learning-rate scheduler; explored for {explored}"
    )
    text = (
        f"Target: {quantity} {'<' if key == 'loss_below' else '<='} {proposal.value:g}: "
        f"{proposal.describe()}, and {'each' if not proposal.missed else 'each that does'} "
        f"went on to {proposal.value / 2:g}. max_epochs is "
        f"{max_epochs / max(reached):.1f}x the slowest count ({why})."
    )
    if proposal.missed:
        bests = "; ".join(_best(seed, curves[seed], quantity) for seed in proposal.missed)
        text += (
            f" Not reached ({bests}): the baseline records such seeds as not reached, and a "
            "run fails when more seeds miss than that."
        )
    if found["judge"] == "samples":
        text += (
            " Judged by the built-in `samples` judgement: sample_gap compares samples from "
            "fixed latents with the real batch (a validation_step that logs your own metric is "
            "the precise option: `judge: validation_step`)."
        )
    lines += _comment(text, "  ")
    target = (
        f"{{loss_below: {proposal.value:g}}}"
        if key == "loss_below"
        else f"{{metric: {quantity}, at_most: {proposal.value:g}}}"
    )
    lines += [
        "  memorization:",
        f"    batches: {batches}",
        f"    max_epochs: {max_epochs}",
        f"    target: {target}",
    ]
    if found["judge"] == "samples":
        lines.append("    judge: samples")
    if hold > 1:
        lines.append(f"    hold: {hold}  # an oscillating metric must hold {hold} epochs in a row")
    return lines


def _task_value(task: Mapping[str, Any]) -> dict[str, Any]:
    value: dict[str, Any] = {"kind": task["kind"] or "auto"}
    for key in ("class_axis", "classes"):
        if task.get(key) is not None:
            value[key] = task[key]
    return value


def _best(seed: int, curve: list[float], quantity: str) -> str:
    found = best(curve, True)
    if found is None:
        return f"seed {seed}: no finite {quantity}"
    value, epoch = found
    return f"seed {seed}: best {quantity} {value:.4g} at epoch {epoch}"


def _comment(text: str, indent: str, width: int = 96) -> list[str]:
    """`text` as `# ` lines of at most `width` characters."""
    lines, line = [], ""
    for word in text.split():
        if line and len(indent) + 2 + len(line) + 1 + len(word) > width:
            lines.append(f"{indent}# {line}")
            line = word
        else:
            line = f"{line} {word}" if line else word
    if line:
        lines.append(f"{indent}# {line}")
    return lines


def _first_line(text: str, limit: int = 300) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _flow(value: Any) -> str:
    """A value as one line of YAML flow style."""
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:g}"
    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10_000)
    return text.strip().removesuffix("...").strip()
