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
import statistics
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from mltest.checks.base import CheckContext, CheckSettings, record_hint
from mltest.config import Strict
from mltest.report import Case, CheckResult, Status

KIND = "memorization"


class Target(Strict):
    """When a batch counts as memorized: loss below a value, or a metric reaching one."""

    loss_below: float | None = None
    metric: str | None = Field(
        None, description="a key of the judging step's returned dict or of its self.log calls"
    )
    at_least: float | None = None
    at_most: float | None = Field(None, description="for a metric that falls (a distance)")

    @model_validator(mode="after")
    def _one_target(self) -> Target:
        bounds = [b for b in (self.at_least, self.at_most) if b is not None]
        if self.metric is None and not bounds:
            if self.loss_below is None:
                raise ValueError("give `loss_below`, or `metric` with `at_least` or `at_most`")
            return self
        if self.loss_below is not None:
            raise ValueError("give either `loss_below` or `metric` with a bound, not both")
        if self.metric is None or len(bounds) != 1:
            raise ValueError("`metric` goes with one of `at_least` or `at_most`")
        return self

    @property
    def quantity(self) -> str:
        """The name of what the target is about: the metric, or `loss`."""
        return self.metric or "loss"

    @property
    def value(self) -> float:
        """The target's threshold."""
        for bound in (self.loss_below, self.at_least, self.at_most):
            if bound is not None:
                return bound
        raise AssertionError("validated: one bound is set")

    def describe(self) -> str:
        if self.loss_below is not None:
            return f"loss < {self.loss_below:g}"
        if self.at_most is not None:
            return f"{self.metric} <= {self.at_most:g}"
        return f"{self.metric} >= {self.at_least:g}"

    def met(self, loss: float | None, metrics: dict[str, float]) -> bool:
        if self.loss_below is not None:
            return loss < self.loss_below
        if self.at_most is not None:
            return metrics[self.metric] <= self.at_most
        return metrics[self.metric] >= self.at_least


class Tolerance(Strict):
    """How much slower than the baseline still passes: both limits must be exceeded to fail."""

    relative: float = Field(0.25, ge=0)
    epochs: int = Field(2, ge=0)


class Settings(CheckSettings):
    """`checks.memorization` in mltest.yaml."""

    batches: int = Field(1, ge=1, description="first N training batches, in dataset order")
    max_epochs: int = Field(200, ge=1, description="epoch budget per seed")
    target: Target = Field(default_factory=lambda: Target(loss_below=0.05))
    tolerance: Tolerance = Field(default_factory=Tolerance)
    faster_notice: float = Field(
        0.5, gt=0, le=1, description="median at or below this share of baseline -> notice"
    )
    history: int = Field(10, ge=0, description="earlier medians kept in the baseline")
    seeds: list[int] | None = Field(None, min_length=1, description="overrides top-level seeds")
    workers: int | Literal["auto"] = Field(
        1, description="seeds trained at once in forked CPU processes; `auto`: one per core"
    )
    threads: int = Field(
        1, ge=1, le=256,
        description="torch intra-op threads per seed on the CPU; counts depend on it",
    )
    judge: Literal["auto", "training_step", "validation_step"] = Field(
        "auto",
        description="the step that measures the target in eval mode, no grad; `auto`: "
        "validation_step under manual optimization, else training_step",
    )
    hold: int = Field(
        1, ge=1, le=100,
        description="consecutive judgements the target must hold (oscillating metrics); the "
        "count is the epoch of the first",
    )

    @field_validator("workers")
    @classmethod
    def _positive(cls, value):
        if value != "auto" and value < 1:
            raise ValueError("`workers` is a number of processes (1 or more) or `auto`")
        return value


@dataclass
class SeedRun:
    """How one seed went. `epochs` is set only when the target was reached after training."""

    seed: int
    epochs: int | None = None
    initial_loss: float | None = None
    met_before_training: bool = False
    nonfinite: str | None = None
    final_loss: float | None = None
    losses: list[float] = field(default_factory=list)
    initial_metric: float | None = None  # the target metric's value at init (metric targets)
    metric_values: list[float] = field(default_factory=list)  # and after each epoch
    seconds: float = 0.0
    nondeterministic: list[str] = field(default_factory=list)  # ops without such a kernel
    quantity: str = "loss"  # what the target is about: `loss` or the metric's name
    judge: str = "training_step"  # the step that measured it

    @property
    def initial_value(self) -> float | None:
        """The target quantity at init."""
        return self.initial_loss if self.quantity == "loss" else self.initial_metric

    @property
    def final_value(self) -> float | None:
        """The target quantity at the last judgement."""
        if self.quantity == "loss":
            return self.final_loss
        return self.metric_values[-1] if self.metric_values else None

    def shown(self, when: str) -> str:
        """`loss 0.7` / `d_gap 0.31` at init (`when="init"`) or at the last judgement."""
        value = self.initial_value if when == "init" else self.final_value
        return f"{self.quantity} {_number(value)}"

    @property
    def problem(self) -> str | None:
        """Why this seed failed, in words; None when it memorized."""
        if self.met_before_training:
            return (
                f"seed {self.seed}: target already met before any training "
                f"({self.shown('init')} at init)"
            )
        if self.nonfinite:
            return f"seed {self.seed}: {self.nonfinite}"
        if self.epochs is None:
            return f"seed {self.seed}: not memorized, {self.shown('last')} at the last epoch"
        return None


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


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


def judge_for(model: Any, settings: Settings) -> str:
    """The name of the step that judges the target: `training_step` or `validation_step`.

    Raises:
        ConfigError: when that step cannot judge (manual optimization's training_step steps
            the optimizers; a validation_step the model does not define).
    """
    from mltest.errors import ConfigError

    manual = not getattr(model, "automatic_optimization", True)
    name = settings.judge
    if name == "auto":
        name = "validation_step" if manual else "training_step"
    model_name = type(model).__name__
    if name == "training_step" and manual:
        raise ConfigError(
            f"checks.memorization.judge: {model_name} uses manual optimization "
            "(automatic_optimization = False), so its training_step steps the optimizers and "
            "cannot judge the target; define validation_step (log or return the target's "
            "metric) and set `judge: validation_step` or `auto`"
        )
    if name == "validation_step" and not _defines(model, "validation_step"):
        why = "uses manual optimization, so" if manual else "has `judge: validation_step`, but"
        raise ConfigError(
            f"checks.memorization: {model_name} {why} the target is judged by "
            "validation_step, which it does not define; add a validation_step that logs "
            "(self.log) or returns the target's metric: memorization runs it on the same "
            "fixed batches in eval mode, with no grad and no optimizer step"
        )
    return name


def _defines(model: Any, method: str) -> bool:
    """Whether the user's class (not Lightning's base class) defines `method`."""
    for cls in type(model).__mro__:
        if method in vars(cls):
            return cls.__name__ != "LightningModule"
    return False


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
    status, summary, hint, notices = decide(
        runs, baseline, settings, env_key, ctx.baselines.keys(ctx.name), ctx.update_command
    )
    medians = [r.epochs for r in runs if r.epochs is not None]
    median = statistics.median(medians) if len(medians) == len(runs) else None
    if ctx.update_baselines:
        status, summary, hint, notices = _record(ctx, settings, runs, median, env_key, baseline)
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
        details=_details(runs, baseline, settings),
        metrics={
            "target": settings.target.describe(),
            "batches": settings.batches,
            "max_epochs": settings.max_epochs,
            "schedule_epochs": schedule,
            "environment": env_key,
            "seeds": [r.seed for r in runs],
            "epochs": [r.epochs for r in runs],
            "median_epochs": median,
            "baseline_epochs": baseline["median"] if baseline else None,
            "baseline_history": baseline.get("history", []) if baseline else [],
            "tolerance": settings.tolerance.model_dump(),
            "loss_curves": {str(r.seed): r.losses for r in runs},
            **_chart_metrics(runs, settings.target, baseline),
        },
        cases=[
            Case(f"seed {r.seed}", Status.FAIL if r.problem else Status.PASS, r.problem or "")
            for r in runs
        ],
    )


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


def _train_seeds(ctx, settings: Settings, seeds: list[int], schedule: int):
    """Train every seed, in forked workers when asked for and possible; results in seed order."""
    from mltest.checks.memorization_fit import train_seed  # Lightning: only where checks run
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


def _record(ctx, settings, runs, median, env_key, previous):
    """Under `mltest baseline update`: write the new baseline when every seed memorized."""
    if median is None or any(r.problem for r in runs):
        problems = "; ".join(r.problem for r in runs if r.problem)
        return Status.FAIL, f"baseline not recorded: {problems}", "", []
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
        "torch": torch.__version__,
        "lightning": pytorch_lightning.__version__,
        "recorded": datetime.date.today().isoformat(),
    }
    ctx.baselines.put(ctx.name, env_key, entry)
    was = f" (was {previous['median']:g})" if previous else ""
    return Status.PASS, f"baseline recorded for {env_key}: {median:g} epochs{was}", "", []


def _details(runs: list[SeedRun], baseline: dict | None, settings: Settings) -> str:
    from mltest.render.safe import cell

    q = cell(settings.target.quantity)
    rows = [f"| seed | epochs | {q} at init | last {q} | seconds |", "|---|---|---|---|---|"]
    for r in runs:
        epochs = r.epochs if r.epochs is not None else "—"
        first, last = _number(r.initial_value), _number(r.final_value)
        rows.append(f"| {r.seed} | {epochs} | {first} | {last} | {r.seconds:.1f} |")
    held = f", held for {settings.hold} epochs in a row" if settings.hold > 1 else ""
    judge = runs[0].judge if runs else "training_step"
    by = f", judged by {judge} in eval mode" if judge != "training_step" else ""
    lines = [
        f"Target: {cell(settings.target.describe())}{held} on the first {settings.batches} "
        f"batch(es){by}.",
        "",
    ]
    lines += rows
    if baseline:
        trend = [*baseline.get("history", []), baseline["median"]]
        lines += ["", f"Baseline trend (oldest first): {' → '.join(f'{x:g}' for x in trend)}"]
    return "\n".join(lines)


def _curve(run_: SeedRun, target: Target) -> list[float]:
    """The target quantity at init, then after each epoch (empty when never measured)."""
    if target.metric is None:
        first, rest = run_.initial_loss, run_.losses
    else:
        first, rest = run_.initial_metric, run_.metric_values
    return ([] if first is None else [first]) + list(rest)


def median_curve(runs: list[SeedRun], target: Target, points: int = 100) -> list[list[float]]:
    """The seeds' median curve of the target quantity as ``[epoch, value]`` pairs, epoch 0 being
    the fresh init, up to the median epoch count and thinned to about ``points`` pairs.

    A seed that reached the target stopped training; it counts with its last value after that.
    """
    curves = [c for c in (_curve(r, target) for r in runs) if c]
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


def _chart_metrics(runs: list[SeedRun], target: Target, baseline: dict | None) -> dict[str, Any]:
    """What the report's charts draw: the target quantity per seed from init on, the target,
    and the baseline's median curve when the baseline has one."""
    return {
        "target_quantity": target.quantity,
        "target_value": target.value,
        "curves": {str(r.seed): _curve(r, target) for r in runs},
        "baseline_curve": (baseline or {}).get("curve") or [],
    }
