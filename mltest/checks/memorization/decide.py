"""The memorization verdict: from each seed's count and the baseline to a status and reasons."""

from __future__ import annotations

import math
import statistics
from typing import Any

from mltest.checks.base import environment_mismatch, record_hint
from mltest.checks.memorization import lr_groups
from mltest.checks.memorization.evidence import lr_fact, norm_fact
from mltest.checks.memorization.hints import Failure, hint, measured
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


def much_faster(runs: list[SeedRun], baseline: dict[str, Any] | None, settings: Settings) -> bool:
    """Whether the median count is below the baseline's beyond `faster_limit` (and beyond the
    epoch tolerance, so a baseline of a few epochs does not flap): a finding to explain."""
    median = robust_median([r.epochs for r in runs])
    if baseline is None or median is None or settings.faster_limit is None:
        return False
    base = baseline["median"]
    return median * settings.faster_limit <= base and base - median > settings.tolerance.epochs


def decide(
    runs: list[SeedRun],
    baseline: dict[str, Any] | None,
    settings: Settings,
    env_key: str,
    other_keys: list[str],
    update_command: str,
    leak: str | None = None,
) -> tuple[Status, str, str, list[str], Failure | None]:
    """The verdict, the sentence a person reads, what to do next, notices, and the kind of
    failure (None when it passed).

    Seeds that do not reach the target ("missed") are judged against the baseline: it fails
    when more seeds miss than the baseline recorded as not reached (none, for baselines
    recorded before misses were), or when the median count, a miss counting as slower than
    any count, is slower than the baseline's beyond the tolerance. A median far below the
    baseline's (`much_faster`) fails too: a leak or a raised learning rate is likelier than a
    gain; `leak` is what the leak probe found then ('' nothing; None: not run, or it could
    not observe the step).
    """
    target = settings.target.describe()
    facts = _facts(runs, baseline)
    for run_ in runs:
        if run_.met_before_training:
            return (
                Status.FAIL,
                f"target ({target}) already met before any training (seed {run_.seed}: "
                f"{run_.shown('init')} at init): the loss cannot drive learning",
                hint(Failure.MET_AT_INIT, [], update_command),
                [],
                Failure.MET_AT_INIT,
            )
    for run_ in runs:
        if run_.nonfinite:
            return (
                Status.FAIL,
                f"{run_.nonfinite} (seed {run_.seed})",
                hint(Failure.NONFINITE, facts, update_command),
                [],
                Failure.NONFINITE,
            )
    missed = [r for r in runs if r.epochs is None]
    allowed = missed_in(baseline)
    median = robust_median([r.epochs for r in runs])
    if median is None or (baseline is not None and len(missed) > len(allowed)):
        return _not_memorized(runs, baseline, settings, facts, update_command)
    counts = ", ".join("—" if r.epochs is None else str(r.epochs) for r in runs)
    shown = f"{median:g} epochs (median of {counts}"
    shown += f"; {_seeds(missed)} not reached)" if missed else ")"
    if baseline is None and other_keys:  # the environment changed, not the model
        mismatch, todo = environment_mismatch(env_key, other_keys, update_command)
        return Status.ERROR, f"memorized in {shown}, but {mismatch}", todo, [], Failure.NO_BASELINE
    if baseline is None:
        return (
            Status.FAIL,
            f"memorized in {shown}, but no baseline is recorded for {env_key}",
            record_hint(update_command, env_key),
            [missed_notice(missed, settings)] if missed else [],
            Failure.NO_BASELINE,
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
            hint(Failure.SLOWER, facts, update_command),
            notices,
            Failure.SLOWER,
        )
    if much_faster(runs, baseline, settings):
        return (
            Status.FAIL,
            f"memorized in {shown}, {base / median:.1f}x faster than the baseline of "
            f"{base:g} (checks.memorization.faster_limit {settings.faster_limit:g}x): a "
            "finding to explain, e.g. a label leak or a raised learning rate",
            hint(Failure.MUCH_FASTER, [_leak_fact(leak), *facts], update_command),
            notices,
            Failure.MUCH_FASTER,
        )
    if median <= base * settings.faster_notice:
        notices.append(
            f"memorized much faster than the baseline ({median:g} vs {base:g} epochs), "
            "within faster_limit: check for a label leak or a raised learning rate before "
            f"recording it. {measured(facts)}".strip()
        )
    return Status.PASS, f"memorized in {shown}; baseline {base:g}", "", notices, None


def _facts(runs: list[SeedRun], baseline: dict[str, Any] | None) -> list[str]:
    """What the fit measured that may name the cause: learning rate, idle normalisation."""
    if not runs:
        return []
    return [
        lr_groups.fact(runs[0].lr_groups, baseline)
        if runs[0].lr_groups
        else lr_fact(runs[0].learning_rates, baseline),
        norm_fact(runs[0].idle_norms, baseline),
    ]


def _leak_fact(leak: str | None) -> str:
    """The leak probe's result in words: its finding, that it found none, or that it could not
    look (None)."""
    if leak:
        return leak
    if leak is None:
        return (
            "the leak probe could not observe a loss target with one value per example and the "
            "network's input"
        )
    return (
        "the leak probe found no input element fixed by the loss target (a leak through a "
        "learned transform of the label is not excluded)"
    )


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
    runs: list[SeedRun],
    baseline: dict[str, Any] | None,
    settings: Settings,
    facts: list[str],
    update_command: str,
) -> tuple[Status, str, str, list[str], Failure]:
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
    if baseline is None:
        bug = (
            "look for a layer that is not wired in, a detached tensor, an optimizer over the "
            "wrong parameters, or a learning-rate bug"
        )
        text = f"The model cannot fit even a few examples: {bug}. {suggest(runs, settings)}"
        return Status.FAIL, summary, text.strip(), [], Failure.NOT_REACHED
    kind = Failure.NOT_REACHED
    if robust_median([r.epochs for r in runs]) is not None:
        kind = Failure.SEEDS_MISSING  # most seeds still reach it: some inits no longer do
    return (
        Status.FAIL,
        summary,
        hint(kind, facts, update_command, base=baseline["median"]),
        [],
        kind,
    )


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

