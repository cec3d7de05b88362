"""A straightforward reference for the memorization check's epoch counts: today's semantics,
written for clarity rather than speed, to hold the fast implementation to.

One Lightning fit per seed. Before training and after every epoch the target is judged on the
same batches in eval mode (no grad, each value read back at once) by the judging step
(`training_step`, or `validation_step` under manual optimization); the count is the first
epoch of `hold` judgements in a row that met the target; a non-finite training loss stops the
fit at the step it happens. No lean logging, no batched read-backs: the slow, obvious
way. It uses the check's thread setting, which is a choice of numerics, not of semantics.
"""

from __future__ import annotations

import contextlib
import math

import pytorch_lightning as pl
import torch

from mltest.checks.memorization.judge import judge_for
from mltest.engine import FixedBatches, make_trainer, quiet
from mltest.seeding import determinism_mode, isolated_global_state, watch_determinism


class _Done(Exception):
    pass


def reference_outcome(ctx, settings, seed: int) -> tuple[int | None, str]:
    """(epochs until the target held, or None; how the seed ended: met/init/nonfinite/budget)."""
    mode = determinism_mode(ctx.trainer_settings)
    with isolated_global_state(), quiet(), watch_determinism(mode):
        model, batches = ctx.project.fresh_start(seed, settings.batches)
        judge = _Judge(settings.target, batches, judge_for(model, settings), settings.hold)
        trainer = make_trainer(
            model,
            ctx.trainer_settings,
            max_epochs=settings.max_epochs,
            limit_train_batches=len(batches),
            callbacks=[judge],
        )
        if trainer.strategy.root_device.type == "cpu":
            torch.set_num_threads(settings.threads)
        with contextlib.suppress(_Done):
            trainer.fit(model, train_dataloaders=FixedBatches(batches))
    return judge.epochs, judge.ending


class _Judge(pl.Callback):
    def __init__(self, target, batches, step, hold):
        self.target, self.batches, self.step, self.hold = target, batches, step, hold
        self.epochs: int | None = None
        self.ending = "budget"
        self.met_at: list[int] = []  # epochs whose judgement met the target

    def on_train_start(self, trainer, pl_module):
        self.batches = [trainer.strategy.batch_to_device(b) for b in self.batches]
        if self._met(pl_module):  # a non-finite loss at init is no reason to stop yet
            self.ending = "init"
            raise _Done

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is not None and not math.isfinite(float(loss)):
            self.ending = "nonfinite"
            raise _Done

    def on_train_epoch_end(self, trainer, pl_module):
        met = self._met(pl_module)
        if met is None:
            self.ending = "nonfinite"
            raise _Done
        epoch = trainer.current_epoch + 1
        if not met:
            return
        self.met_at.append(epoch)
        first = epoch - self.hold + 1
        if self.met_at[-self.hold :] == list(range(first, epoch + 1)):
            self.epochs, self.ending = first, "met"
            trainer.should_stop = True

    def _met(self, module) -> bool | None:
        """Is the target met in eval mode? None when the eval loss is not finite."""
        flags = {m: m.training for m in module.modules()}
        logged: dict[str, list[float]] = {}

        def log(name, value, *args, **kwargs):
            logged.setdefault(name, []).append(float(value))

        def log_dict(values, *args, **kwargs):
            for name, value in values.items():
                log(name, value)

        module.log, module.log_dict = log, log_dict
        losses = []
        try:
            module.eval()
            with torch.no_grad():
                for index, batch in enumerate(self.batches):
                    out = getattr(module, self.step)(batch, index)
                    if isinstance(out, dict):
                        for name, value in out.items():
                            if name != "loss":
                                log(name, value)
                        out = out.get("loss")
                    if out is not None:
                        losses.append(float(out))
        finally:
            del module.log, module.log_dict
            for submodule, was_training in flags.items():
                submodule.training = was_training
        metrics = {name: sum(v) / len(v) for name, v in logged.items()}
        # the judged value: the loss, or the metric when the step returns no loss
        loss = sum(losses) / len(losses) if losses else None
        judged = loss if losses else metrics[self.target.quantity]
        if not math.isfinite(judged):
            return None
        return self.target.met(loss, metrics)
