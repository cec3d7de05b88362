"""Memorization: can a fresh model overfit a few fixed batches, and how many epochs does it take?

Trains the user's own `training_step` / `configure_optimizers` with Lightning from a seeded
fresh init on the first N training batches, judging the target after each epoch on the same
batches in eval mode. Several seeds; the median epoch count is compared with the baseline.
"""

from __future__ import annotations

import contextlib
import datetime
import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from mltest.checks.base import CheckContext, CheckSettings
from mltest.config import Strict
from mltest.errors import ProjectError
from mltest.report import Case, CheckResult, Status

KIND = "memorization"


class Target(Strict):
    """When a batch counts as memorized: loss below a value, or a metric reaching one."""

    loss_below: float | None = None
    metric: str | None = Field(None, description="a key of training_step's dict or self.log")
    at_least: float | None = None

    @model_validator(mode="after")
    def _one_target(self) -> Target:
        if self.metric is None and self.at_least is None:
            if self.loss_below is None:
                raise ValueError("give `loss_below`, or `metric` with `at_least`")
            return self
        if self.loss_below is not None:
            raise ValueError("give either `loss_below` or `metric`/`at_least`, not both")
        if self.metric is None or self.at_least is None:
            raise ValueError("`metric` and `at_least` go together")
        return self

    def describe(self) -> str:
        if self.loss_below is not None:
            return f"loss < {self.loss_below:g}"
        return f"{self.metric} >= {self.at_least:g}"

    def met(self, loss: float, metrics: dict[str, float]) -> bool:
        if self.loss_below is not None:
            return loss < self.loss_below
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
    seconds: float = 0.0

    @property
    def problem(self) -> str | None:
        """Why this seed failed, in words; None when it memorized."""
        if self.met_before_training:
            return (
                f"seed {self.seed}: target already met before any training "
                f"(loss {self.initial_loss:.4g} at init)"
            )
        if self.nonfinite:
            return f"seed {self.seed}: {self.nonfinite}"
        if self.epochs is None:
            return f"seed {self.seed}: not memorized, loss {self.final_loss:.4g} at the last epoch"
        return None


def run(ctx: CheckContext, settings: Settings) -> CheckResult:
    """Train each seed, then compare the median epoch count with the baseline."""
    seeds = settings.seeds or ctx.seeds
    outcomes, parallel_notice = _train_seeds(ctx, settings, seeds)
    runs = [seed_run for seed_run, _ in outcomes]
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
            "environment": env_key,
            "seeds": [r.seed for r in runs],
            "epochs": [r.epochs for r in runs],
            "median_epochs": median,
            "baseline_epochs": baseline["median"] if baseline else None,
            "baseline_history": baseline.get("history", []) if baseline else [],
            "tolerance": settings.tolerance.model_dump(),
            "loss_curves": {str(r.seed): r.losses for r in runs},
        },
        cases=[
            Case(f"seed {r.seed}", Status.FAIL if r.problem else Status.PASS, r.problem or "")
            for r in runs
        ],
    )


def _train_seeds(ctx, settings: Settings, seeds: list[int]):
    """Train every seed, in forked workers when asked for and possible; results in seed order."""
    from mltest.engine import device_for
    from mltest.parallel import fork_unavailable, map_forked, resolve_workers

    workers = resolve_workers(settings.workers, len(seeds))
    notice = ""
    if workers > 1:
        why_not = fork_unavailable(device_for(ctx.trainer_settings).type)
        if why_not is None:
            ctx.deadline.check()
            return map_forked(lambda seed: train_seed(ctx, settings, seed), seeds, workers), ""
        notice = f"seeds ran one after another: {why_not} (checks.{ctx.name}.workers)"
    outcomes = []
    for seed in seeds:
        ctx.deadline.check()
        outcomes.append(train_seed(ctx, settings, seed))
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
                f"loss {run_.initial_loss:.4g} at init): the loss cannot drive learning",
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
            f"epochs on {len(stuck)} of {len(runs)} seeds (seed {worst.seed}: loss "
            f"{worst.final_loss:.4g}, target {target})",
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
            f"Record one with `{update_command}` and commit the baseline file.",
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
        "history": history[-settings.history :] if settings.history else [],
        "torch": torch.__version__,
        "lightning": pytorch_lightning.__version__,
        "recorded": datetime.date.today().isoformat(),
    }
    ctx.baselines.put(ctx.name, env_key, entry)
    was = f" (was {previous['median']:g})" if previous else ""
    return Status.PASS, f"baseline recorded for {env_key}: {median:g} epochs{was}", "", []


def _details(runs: list[SeedRun], baseline: dict | None, settings: Settings) -> str:
    rows = ["| seed | epochs | loss at init | last loss | seconds |", "|---|---|---|---|---|"]
    for r in runs:
        epochs = r.epochs if r.epochs is not None else "—"
        first = f"{r.initial_loss:.4g}" if r.initial_loss is not None else "—"
        last = f"{r.final_loss:.4g}" if r.final_loss is not None else "—"
        rows.append(f"| {r.seed} | {epochs} | {first} | {last} | {r.seconds:.1f} |")
    lines = [f"Target: {settings.target.describe()} on the first {settings.batches} batch(es).", ""]
    lines += rows
    if baseline:
        trend = [*baseline.get("history", []), baseline["median"]]
        lines += ["", f"Baseline trend (oldest first): {' → '.join(f'{x:g}' for x in trend)}"]
    return "\n".join(lines)


# --- training one seed -----------------------------------------------------------------------


class _Stop(Exception):
    """Raised inside the fit loop to end it at once (non-finite values)."""


def train_seed(ctx: CheckContext, settings: Settings, seed: int) -> tuple[SeedRun, str]:
    """Fit one seeded fresh model on the fixed batches; count epochs until the target holds."""
    from mltest.engine import FixedBatches, device_key, make_trainer, quiet
    from mltest.seeding import isolated_global_state

    started = time.perf_counter()
    result = SeedRun(seed=seed)
    with isolated_global_state(), quiet():
        model, batches = ctx.project.fresh_start(seed, settings.batches)
        probe = _Probe(result, settings.target, batches, ctx.deadline)
        trainer = make_trainer(
            model,
            ctx.trainer_settings,
            max_epochs=settings.max_epochs,
            limit_train_batches=len(batches),
            callbacks=[probe],
        )
        with contextlib.suppress(_Stop):  # a probe ended the fit early on purpose
            trainer.fit(model, train_dataloaders=FixedBatches(batches))
    result.seconds = time.perf_counter() - started
    return result, device_key(trainer, ctx.trainer_settings)


def _lightning_callback_base():
    import pytorch_lightning

    return pytorch_lightning.Callback


class _Probe(_lightning_callback_base()):
    """Judges the target in eval mode before training and after each epoch; watches for NaN.

    Gradients are not inspected after every backward: under fp16 mixed precision an inf
    gradient is normal (the scaler skips that step), and a real one shows within a step as a
    non-finite loss or weight, which is when the offending parameters are named.
    """

    def __init__(self, result: SeedRun, target: Target, batches: list, deadline):
        self.result = result
        self.target = target
        self.batches = batches
        self.deadline = deadline
        self.device_batches: list = []

    def on_train_start(self, trainer, pl_module):
        self.device_batches = [trainer.strategy.batch_to_device(b) for b in self.batches]
        loss, metrics = evaluate(pl_module, self.device_batches, self.target)
        self.result.initial_loss = loss
        if self.target.met(loss, metrics):
            self.result.met_before_training = True
            raise _Stop

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.deadline.check()
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is not None and not bool(loss.detach().isfinite().all()):
            self._stop(f"training loss became {float(loss):g}", trainer, pl_module)

    def on_train_epoch_end(self, trainer, pl_module):
        loss, metrics = evaluate(pl_module, self.device_batches, self.target)
        self.result.losses.append(loss)
        self.result.final_loss = loss
        if not math.isfinite(loss):
            self._stop(f"eval loss became {loss:g}", trainer, pl_module)
        if self.target.met(loss, metrics):
            self.result.epochs = trainer.current_epoch + 1
            trainer.should_stop = True
        self.deadline.check()

    def _stop(self, what: str, trainer, pl_module):
        found = _nonfinite_parameters(pl_module)
        where = f"; non-finite {found}" if found else ""
        self.result.nonfinite = f"{what} at epoch {trainer.current_epoch + 1}{where}"
        raise _Stop


def _nonfinite_parameters(module) -> str:
    """`weights in a, b; gradients in c` for the parameters holding NaN or inf, or ''."""
    weights = [n for n, p in module.named_parameters() if not bool(p.isfinite().all())]
    grads = [
        n for n, p in module.named_parameters()
        if p.grad is not None and not bool(p.grad.isfinite().all())
    ]
    parts = [
        f"{label} in {', '.join(names[:5])}{' ...' if len(names) > 5 else ''}"
        for label, names in (("weights", weights), ("gradients", grads))
        if names
    ]
    return "; ".join(parts)


def evaluate(module, batches: list, target: Target) -> tuple[float, dict[str, float]]:
    """Mean loss and metrics of `training_step` over the batches, in eval mode, no grad.

    Values the module logs with `self.log` are captured for metric targets. Each submodule's
    train/eval flag is put back exactly as it was (a user may keep some layers in eval).
    """
    import torch

    flags = {m: m.training for m in module.modules()}
    logged: dict[str, list[float]] = {}

    def capture(name, value, *args, **kwargs):
        logged.setdefault(name, []).append(float(value))

    def capture_dict(values, *args, **kwargs):
        for name, value in values.items():
            capture(name, value)

    module.log, module.log_dict = capture, capture_dict  # instance attributes shadow the methods
    losses: list[float] = []
    try:
        module.eval()
        with torch.no_grad():
            for index, batch in enumerate(batches):
                out = module.training_step(batch, index)
                if isinstance(out, dict):
                    for name, value in out.items():
                        if name != "loss":
                            capture(name, value)
                    out = out.get("loss")
                if out is None:
                    raise ProjectError(
                        "training_step returned no loss; memorization needs the loss "
                        "(return it, or a dict with a `loss` key)"
                    )
                losses.append(float(out))
    finally:
        del module.log, module.log_dict
        for submodule, was_training in flags.items():
            submodule.training = was_training
    metrics = {name: sum(v) / len(v) for name, v in logged.items()}
    if target.metric is not None and target.metric not in metrics:
        raise ProjectError(
            f"checks.memorization.target.metric `{target.metric}` was not found: training_step "
            f"neither returned nor logged it (it logged: {', '.join(sorted(metrics)) or 'nothing'})"
        )
    return sum(losses) / len(losses), metrics
