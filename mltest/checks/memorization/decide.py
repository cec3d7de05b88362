"""The memorization verdict: from each seed's count and the baseline to a status and reasons."""

from __future__ import annotations

import statistics
from typing import Any

from mltest.checks.base import record_hint
from mltest.checks.memorization.seed_run import SeedRun
from mltest.checks.memorization.settings import Settings
from mltest.report import Status


def schedule_epochs(
    settings: Settings, baseline: dict[str, Any] | None, update_command: str
) -> tuple[int, str]:
    """The Trainer's `max_epochs`, which the model's schedule sees (e.g. through
    `trainer.estimated_stepping_batches`), and a notice when it is not the budget.

    With a baseline that recorded it, the baseline's: `max_epochs` is then only a budget that
    stops the fit, so raising or lowering it never changes the schedule, hence the count. A
    budget above the recorded schedule cannot train past it (the schedule would have to
    change); the notice names the command that records the longer schedule.
    """
    recorded = (baseline or {}).get("schedule_epochs")
    if recorded is None or recorded == settings.max_epochs:
        return settings.max_epochs, ""
    if settings.max_epochs > recorded:
        return recorded, (
            f"max_epochs is {settings.max_epochs}, but the baseline was recorded with a "
            f"{recorded}-epoch schedule: the Trainer keeps max_epochs {recorded} so the model's "
            "schedule (e.g. from trainer.estimated_stepping_batches) and the count compare; "
            f"to train with the longer budget, record it with `{update_command}`"
        )
    return recorded, ""



def decide(
    runs: list[SeedRun],
    baseline: dict[str, Any] | None,
    settings: Settings,
    env_key: str,
    other_keys: list[str],
    update_command: str,
) -> tuple[Status, str, str, list[str]]:
    """The verdict, the sentence a person reads, what to do next, and notices."""
    target = settings.target.describe()
    for run_ in runs:
        if run_.met_before_training:
            return (
                Status.FAIL,
                f"target ({target}) already met before any training (seed {run_.seed}: "
                f"{run_.shown('init')} at init): the loss cannot drive learning",
                "Check the loss: e.g. cross-entropy over a single output is always 0, or the "
                "loss is computed on detached or constant tensors.",
                [],
            )
    for run_ in runs:
        if run_.nonfinite:
            return (
                Status.FAIL,
                f"{run_.nonfinite} (seed {run_.seed})",
                "Look for a learning rate that is far too high, a log/sqrt/division of zero, "
                "or mixed precision overflow.",
                [],
            )
    stuck = [r for r in runs if r.epochs is None]
    if stuck:
        worst = stuck[0]
        return (
            Status.FAIL,
            f"could not memorize {settings.batches} batch(es) within {settings.max_epochs} "
            f"epochs on {len(stuck)} of {len(runs)} seeds (seed {worst.seed}: "
            f"{worst.shown('last')}, target {target}{_held(settings)})",
            "The model cannot fit even a few examples: look for a layer that is not wired in, "
            "a detached tensor, an optimizer over the wrong parameters, or a learning rate "
            "bug. If the model is simply slow, raise checks.memorization.max_epochs.",
            [],
        )
    counts = [r.epochs for r in runs]
    median = statistics.median(counts)
    shown = f"{median:g} epochs (median of {', '.join(map(str, counts))})"
    if baseline is None:
        elsewhere = f"; baselines exist for {', '.join(other_keys)}" if other_keys else ""
        return (
            Status.FAIL,
            f"memorized in {shown}, but no baseline is recorded for {env_key}{elsewhere}",
            record_hint(update_command, env_key),
            [],
        )
    base = baseline["median"]
    limit = max(base * (1 + settings.tolerance.relative), base + settings.tolerance.epochs)
    if median > limit:
        return (
            Status.FAIL,
            f"memorized in {shown}, slower than the baseline of {base:g} "
            f"(+{(median - base) / base:.0%}; tolerance "
            f"{settings.tolerance.relative:.0%} and {settings.tolerance.epochs} epochs)",
            "Something makes learning slower: a learning-rate or scheduler change, a "
            "normalisation bug, a layer that no longer trains. If the change is intended, "
            f"run `{update_command}` and commit the baseline.",
            [],
        )
    notices = []
    if median <= base * settings.faster_notice:
        notices.append(
            f"memorized much faster than the baseline ({median:g} vs {base:g} epochs): a "
            "possible label leak, or a gain to lock in with "
            f"`{update_command}`"
        )
    return Status.PASS, f"memorized in {shown}; baseline {base:g}", "", notices


def _held(settings: Settings) -> str:
    """`, held 3 judgements in a row` when `hold` asks for more than one."""
    return f", held {settings.hold} judgements in a row" if settings.hold > 1 else ""

