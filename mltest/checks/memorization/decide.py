"""The memorization verdict: from each seed's count and the baseline to a status and reasons."""

from __future__ import annotations

import math
import statistics
from typing import Any

from mltest.checks.base import environment_mismatch, record_hint
from mltest.checks.memorization.seed_run import SeedRun, shown_number
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
    """The verdict, the sentence a person reads, what to do next, and notices.

    Seeds that do not reach the target ("missed") are judged against the baseline: it fails
    when more seeds miss than the baseline recorded as not reached (none, for baselines
    recorded before misses were), or when the median count, a miss counting as slower than
    any count, is slower than the baseline's beyond the tolerance.
    """
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
    missed = [r for r in runs if r.epochs is None]
    allowed = missed_in(baseline)
    median = robust_median([r.epochs for r in runs])
    if median is None or (baseline is not None and len(missed) > len(allowed)):
        return _not_memorized(runs, baseline, settings)
    counts = ", ".join("—" if r.epochs is None else str(r.epochs) for r in runs)
    shown = f"{median:g} epochs (median of {counts}"
    shown += f"; {_seeds(missed)} not reached)" if missed else ")"
    if baseline is None and other_keys:  # the environment changed, not the model
        mismatch, hint = environment_mismatch(env_key, other_keys, update_command)
        return Status.ERROR, f"memorized in {shown}, but {mismatch}", hint, []
    if baseline is None:
        return (
            Status.FAIL,
            f"memorized in {shown}, but no baseline is recorded for {env_key}",
            record_hint(update_command, env_key),
            [missed_notice(missed, settings)] if missed else [],
        )
    notices = []
    now_missed = sorted(r.seed for r in missed)
    if now_missed and now_missed != allowed:
        notices.append(
            f"seed(s) {', '.join(map(str, now_missed))} did not reach the target, where the "
            f"baseline had seed(s) {', '.join(map(str, allowed))} not reaching it (no more "
            "seeds miss than in the baseline)"
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
            notices,
        )
    if median <= base * settings.faster_notice:
        notices.append(
            f"memorized much faster than the baseline ({median:g} vs {base:g} epochs): a "
            "possible label leak, or a gain to lock in with "
            f"`{update_command}`"
        )
    return Status.PASS, f"memorized in {shown}; baseline {base:g}", "", notices


def robust_median(counts: list[int | None]) -> float | None:
    """The median epoch count, a seed that did not reach the target counting as slower than
    any that did; None when that median is such a seed (half of them or more missed)."""
    if not counts:
        return None
    median = statistics.median([math.inf if c is None else c for c in counts])
    return None if math.isinf(median) else median


def missed_in(baseline: dict[str, Any] | None) -> list[int]:
    """Seeds the baseline recorded as not reaching the target (`null` counts), sorted."""
    epochs = (baseline or {}).get("epochs") or {}
    return sorted(int(seed) for seed, count in epochs.items() if count is None)


def missed_notice(missed: list[SeedRun], settings: Settings) -> str:
    """The notice a recorded baseline with seeds that missed carries."""
    bests = "; ".join(best_shown(r, settings) for r in missed)
    return (
        f"{_seeds(missed)} did not reach the target within {settings.max_epochs} epochs "
        f"({bests}); the baseline records them as not reached, and later runs fail when more "
        "seeds miss than that, or when the median count is slower"
    )


def best_shown(run_: SeedRun, settings: Settings) -> str:
    """`seed 1: best loss 0.0555 at epoch 300`."""
    from mltest.target_choice import best

    found = best(run_.curve, settings.target.lower_is_better)
    if found is None:
        return f"seed {run_.seed}: {run_.shown('last')} at the last epoch"
    value, epoch = found
    return f"seed {run_.seed}: best {run_.quantity} {shown_number(value)} at epoch {epoch}"


def _not_memorized(
    runs: list[SeedRun], baseline: dict[str, Any] | None, settings: Settings
) -> tuple[Status, str, str, list[str]]:
    """Too many seeds missed: each one's best value, and what to do (a bug hunt once a
    baseline shows the model memorized; a target or budget that holds before that)."""
    missed = [r for r in runs if r.epochs is None]
    allowed = missed_in(baseline)
    budget = f" (the baseline allows {len(allowed)})" if baseline is not None else ""
    summary = (
        f"could not memorize {settings.batches} batch(es) within {settings.max_epochs} "
        f"epochs on {len(missed)} of {len(runs)} seeds{budget}: "
        f"{'; '.join(best_shown(r, settings) for r in missed)} "
        f"(target {settings.target.describe()}{_held(settings)})"
    )
    bug = (
        "look for a layer that is not wired in, a detached tensor, an optimizer over the wrong "
        "parameters, or a learning-rate bug"
    )
    if baseline is not None:
        hint = (
            f"It memorized when the baseline was recorded (median {baseline['median']:g} "
            f"epochs), so this change stops it learning: {bug}."
        )
    else:
        hint = f"The model cannot fit even a few examples: {bug}. {suggest(runs, settings)}"
    return Status.FAIL, summary, hint.strip(), []


def suggest(runs: list[SeedRun], settings: Settings) -> str:
    """A target and budget that would hold for these seeds' curves, in words ('' if none)."""
    from mltest.target_choice import best, propose

    target = settings.target
    curves = {r.seed: r.curve for r in runs if r.curve}
    proposal = propose(
        curves,
        lower_is_better=target.lower_is_better,
        budget=settings.max_epochs,
        hold=settings.hold,
    )
    parts = []
    if proposal is not None:
        parts.append(
            f"If the model is healthy and the target is out of its reach, `target: "
            f"{target.as_yaml(proposal.value)}` holds with margin within {settings.max_epochs} "
            f"epochs ({proposal.describe()})"
        )
    still_improving = [
        r
        for r in runs
        if r.epochs is None
        and (found := best(r.curve, target.lower_is_better)) is not None
        and found[1] >= len(r.curve) - 2
    ]
    if still_improving:
        parts.append(
            f"{_seeds(still_improving)} still improved at the last epoch: "
            f"`max_epochs: {2 * settings.max_epochs}` may let them reach the target"
        )
    if not parts:
        return ""
    return "; ".join(parts) + ". `mltest init` proposes both from a short exploration."


def _held(settings: Settings) -> str:
    """`, held 3 judgements in a row` when `hold` asks for more than one."""
    return f", held {settings.hold} judgements in a row" if settings.hold > 1 else ""


def _seeds(runs: list[SeedRun]) -> str:
    """`seed 1` / `seeds 1, 4`."""
    seeds = [str(r.seed) for r in runs]
    return f"seed{'s' if len(seeds) > 1 else ''} {', '.join(seeds)}"

