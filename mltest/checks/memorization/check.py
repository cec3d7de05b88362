"""Memorization: can a fresh model overfit a few fixed batches, and how many epochs does it take?

Trains the user's own `training_step` / `configure_optimizers` with Lightning from a seeded
fresh init on the first N training batches, judging the target after each epoch on the same
batches in eval mode, with no grad. The judge is `training_step` for models with automatic
optimization and `validation_step` for models with manual optimization (whose `training_step`
steps its optimizers, so it cannot be called just to measure). The target must hold for
`hold` consecutive judgements (oscillating metrics, e.g. a GAN's); the count is the epoch the
run of judgements began. Several seeds; the median epoch count is compared with the baseline.

The model's schedule is built from the Trainer's `max_epochs`: once a baseline is recorded,
its `schedule_epochs` is what the Trainer gets, and the budget (`max_epochs`) only stops the
fit, so a changed budget never changes the schedule the model sees, hence the count.
"""

from __future__ import annotations

import datetime

from mltest.checks.base import CheckContext
from mltest.checks.memorization.decide import (
    decide,
    missed_notice,
    much_faster,
    robust_median,
    schedule_epochs,
    suggest,
)
from mltest.checks.memorization.judge import judge_for
from mltest.checks.memorization.report import chart_metrics, details, median_curve
from mltest.checks.memorization.settings import KIND, Settings
from mltest.report import Case, CheckResult, Status


def validate(ctx: CheckContext, settings: Settings) -> None:
    """Before anything trains: the strategy, and a step that can judge the target without
    stepping optimizers (manual optimization needs `validation_step`)."""
    from mltest.checks.base import refuse_strategy
    from mltest.seeding import isolated_global_state

    refuse_strategy(
        ctx,
        sharded_ok=False,
        why_not_sharded="it judges the target by calling the model's step between epochs, "
        "outside the training loop, where a sharded strategy leaves each rank a shard",
    )
    with isolated_global_state():
        judge_for(ctx.project.new_model(ctx.seeds[0]), settings)



def run(ctx: CheckContext, settings: Settings) -> CheckResult:
    """Train each seed, then compare the median epoch count with the baseline."""
    seeds = settings.seeds or ctx.seeds
    from mltest.engine import device_for, environment_key

    # The key is known before training: the baseline's schedule length decides the Trainer's.
    env_key = environment_key(device_for(ctx.trainer_settings).type, ctx.trainer_settings)
    baseline = ctx.baselines.get(ctx.name, env_key)
    schedule, schedule_notice = schedule_epochs(
        settings, None if ctx.update_baselines else baseline, ctx.update_command
    )
    outcomes, parallel_notice = _train_seeds(ctx, settings, seeds, schedule)
    runs = [seed_run for seed_run, _ in outcomes]
    if outcomes[0][1] != env_key:  # the Trainer's device differs from the plain guess
        env_key = outcomes[0][1]
        baseline = ctx.baselines.get(ctx.name, env_key)
    leak = None
    if not ctx.update_baselines and much_faster(runs, baseline, settings):
        leak = _probe_leak(ctx, seeds[0])
    status, summary, hint, notices, failure = decide(
        runs, baseline, settings, env_key, ctx.baselines.keys(ctx.name), ctx.update_command,
        leak,
    )
    median = robust_median([r.epochs for r in runs])
    if ctx.update_baselines:
        status, summary, hint, notices = _record(ctx, settings, runs, median, env_key, baseline)
        failure = None if status is Status.PASS else failure
    if parallel_notice:
        notices = [*notices, parallel_notice]
    if schedule_notice:
        notices = [*notices, schedule_notice]
    from mltest.seeding import nondeterminism_notice

    unstable = nondeterminism_notice(op for r in runs for op in r.nondeterministic)
    if unstable:
        notices = [*notices, unstable]
    return CheckResult(
        name=ctx.name,
        kind=KIND,
        status=status,
        summary=summary,
        hint=hint,
        notices=notices,
        details=details(runs, baseline, settings),
        metrics={
            "target": settings.target.describe(),
            "batches": settings.batches,
            "max_epochs": settings.max_epochs,
            "schedule_epochs": schedule,
            "environment": env_key,
            "seeds": [r.seed for r in runs],
            "epochs": [r.epochs for r in runs],
            "median_epochs": median,
            "failure": failure.value if failure else None,
            "learning_rates": runs[0].learning_rates,
            "lr_groups": runs[0].lr_groups,
            "baseline_epochs": baseline["median"] if baseline else None,
            "baseline_history": baseline.get("history", []) if baseline else [],
            "tolerance": settings.tolerance.model_dump(),
            "loss_curves": {str(r.seed): r.losses for r in runs},
            **chart_metrics(runs, settings.target, baseline),
        },
        cases=[
            Case(f"seed {r.seed}", Status.FAIL if r.problem else Status.PASS, r.problem or "")
            for r in runs
        ],
    )



def explore(ctx: CheckContext, settings: Settings) -> list:
    """Train every seed for the whole budget, as `run` would, and return each seed's
    `SeedRun` (its curve of the target quantity): what `mltest init` chooses a target from.
    Give it a target that is never met, or the fits stop there."""
    seeds = settings.seeds or ctx.seeds
    outcomes, _ = _train_seeds(ctx, settings, seeds, settings.max_epochs)
    return [seed_run for seed_run, _ in outcomes]


def _probe_leak(ctx: CheckContext, seed: int) -> str | None:
    """The label-leak probe on a fresh model and the first fixed batch (see `evidence`)."""
    from mltest.checks.memorization.evidence import leak_probe
    from mltest.seeding import isolated_global_state

    with isolated_global_state():
        model, batches = ctx.project.fresh_start(seed, 1)
        return leak_probe(model, batches[0])


def _train_seeds(ctx, settings: Settings, seeds: list[int], schedule: int):
    """Train every seed, in forked workers when asked for and possible; results in seed order."""
    from mltest.checks.memorization.fit import train_seed  # Lightning: only where checks run
    from mltest.engine import device_for
    from mltest.parallel import fork_unavailable, map_forked, resolve_workers

    workers = resolve_workers(settings.workers, len(seeds))
    notice = ""
    if workers > 1:
        why_not = fork_unavailable(device_for(ctx.trainer_settings).type)
        if why_not is None:
            ctx.deadline.check()
            return map_forked(
                lambda seed: train_seed(ctx, settings, seed, schedule), seeds, workers
            ), ""
        notice = f"seeds ran one after another: {why_not} (checks.{ctx.name}.workers)"
    outcomes = []
    for seed in seeds:
        ctx.deadline.check()
        outcomes.append(train_seed(ctx, settings, seed, schedule))
    return outcomes, notice



def _record(ctx, settings, runs, median, env_key, previous):
    """Under `mltest baseline update`: write the new baseline when a majority of the seeds
    memorized (the others are recorded as not reached) and none met the target at init or
    went non-finite."""
    hard = [r for r in runs if r.met_before_training or r.nonfinite]
    if median is None or hard:
        problems = "; ".join(r.problem for r in (hard or [r for r in runs if r.problem]))
        why = "" if hard else " (a baseline needs more than half of the seeds to reach it)"
        hint = "" if hard else suggest(runs, settings)  # a NaN or a loss of 0 is a bug
        return Status.FAIL, f"baseline not recorded{why}: {problems}", hint, []
    import pytorch_lightning
    import torch

    history = list(previous.get("history", [])) if previous else []
    if previous:
        history.append(previous["median"])
    entry = {
        "median": median,
        "epochs": {str(r.seed): r.epochs for r in runs},
        "target": settings.target.describe(),
        "batches": settings.batches,
        "schedule_epochs": settings.max_epochs,
        "history": history[-settings.history :] if settings.history else [],
        "curve": median_curve(runs, settings.target),
        "learning_rates": runs[0].learning_rates,
        "lr_groups": runs[0].lr_groups,
        "idle_norms": runs[0].idle_norms,
        "torch": torch.__version__,
        "lightning": pytorch_lightning.__version__,
        "recorded": datetime.date.today().isoformat(),
    }
    ctx.baselines.put(ctx.name, env_key, entry)
    was = f" (was {previous['median']:g})" if previous else ""
    missed = [r for r in runs if r.epochs is None]
    notices = [missed_notice(missed, settings)] if missed else []
    return Status.PASS, f"baseline recorded for {env_key}: {median:g} epochs{was}", "", notices

