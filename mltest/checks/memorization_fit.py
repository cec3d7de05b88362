"""One seeded memorization fit, observed: the Lightning callback that judges the target after
each epoch and stops on non-finite values. Kept apart from `memorization.py` so reading the
check's settings (which the supervisor does) never imports Lightning."""

from __future__ import annotations

import contextlib
import math
import time

from mltest.checks.base import CheckContext
from mltest.checks.memorization import SeedRun, Settings, Target
from mltest.errors import ProjectError


class _Stop(Exception):
    """Raised inside the fit loop to end it at once (non-finite values)."""


def train_seed(ctx: CheckContext, settings: Settings, seed: int) -> tuple[SeedRun, str]:
    """Fit one seeded fresh model on the fixed batches; count epochs until the target holds."""
    from mltest.engine import FixedBatches, device_key, make_trainer, quiet
    from mltest.seeding import determinism_mode, isolated_global_state, watch_determinism

    started = time.perf_counter()
    result = SeedRun(seed=seed)
    mode = determinism_mode(ctx.trainer_settings)
    with isolated_global_state(), quiet(), watch_determinism(mode) as watch:
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
    result.nondeterministic = sorted(watch.ops)
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
        if self.target.metric is not None:
            self.result.initial_metric = metrics[self.target.metric]
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
        if self.target.metric is not None:
            self.result.metric_values.append(metrics[self.target.metric])
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
