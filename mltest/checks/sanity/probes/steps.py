"""Several steps on the same batch: gradients that accumulate, steps skipped, schedulers racing.

One step cannot tell a missing `zero_grad` from a healthy one: the first gradient is right
either way. Over a few steps on the same batch the symptoms show:

- **stale gradients**: when a step's backward runs, the parameter's `.grad` must have been
  cleared since its optimizer last stepped (set to None or zero). A gradient still there is
  added to: the optimizer sees the sum of this step's gradient and the previous ones. This is
  the gradient the optimizer saw against a freshly computed one, without a second backward:
  fresh = seen - leftover, and the leftover must be 0. Gradient accumulation configured in
  the Trainer (`accumulate_grad_batches`) steps no optimizer in between, so it never counts.
- **skipped steps**: a step whose backward ran and gave a gradient, after which no parameter
  changed (an `optimizer_step` override that does not step, a condition on the batch index).
- **a scheduler stepping too often**: a scheduler that advanced more than once in one step,
  or a learning rate that fell by more than `lr_drop_limit` within the few steps (a per-epoch
  schedule stepped per batch).
"""

from __future__ import annotations

import math

import pytorch_lightning
import torch

from mltest.checks.sanity.findings import Finding, names
from mltest.checks.sanity.obs import StepObs, StepTrace


class StepsProbe(pytorch_lightning.Callback):
    """Per optimizer step: stale gradients, gradient norm, learning rates, whether it moved."""

    def __init__(self, obs: StepObs):
        self.obs = obs
        self.cleared: dict[int, bool] = {}  # id(param) -> grad cleared since its last step
        self.stepped: set[int] = set()  # params whose optimizer stepped at least once
        self.trace: StepTrace | None = None
        self.backward_ran = False

    def on_train_start(self, trainer, pl_module):
        self.params = [(n, p) for n, p in pl_module.named_parameters() if p.requires_grad]
        self.names = {id(p): n for n, p in self.params}
        self.schedulers = [c.scheduler for c in trainer.lr_scheduler_configs]
        self.obs.schedulers = [type(s).__name__ for s in self.schedulers]
        self.obs.accumulate = int(trainer.accumulate_grad_batches)
        self.obs.precision = str(trainer.precision)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self.trace is None:
            self.trace = StepTrace(index=len(self.obs.steps) + 1)
            self.fingerprint = self._fingerprint()
            self.sched_before = [_position(s) for s in self.schedulers]
            self.backward_ran = False

    def on_before_backward(self, trainer, pl_module, loss):
        self.backward_ran = True
        if self.trace.loss is None and isinstance(loss, torch.Tensor):
            self.trace.loss = float(loss.detach().float())
        with_grad = [p for _, p in self.params if p.grad is not None]
        if with_grad:  # one device sync for all parameters
            nonzero = torch.stack([p.grad.detach().ne(0).any() for p in with_grad]).tolist()
        else:
            nonzero = []
        dirty = {id(p) for p, flag in zip(with_grad, nonzero, strict=True) if flag}
        for _, p in self.params:
            if id(p) not in dirty:
                self.cleared[id(p)] = True

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        owned = [p for g in optimizer.param_groups for p in g["params"] if id(p) in self.names]
        for p in owned:
            leftover = id(p) in self.stepped and not self.cleared.get(id(p), False)
            if leftover and p.grad is not None and self.names[id(p)] not in self.trace.stale:
                self.trace.stale.append(self.names[id(p)])
            self.cleared[id(p)] = False
            self.stepped.add(id(p))
        self.trace.learning_rates += [float(g.get("lr", math.nan)) for g in optimizer.param_groups]
        norm = _grad_norm(owned)
        if norm is not None:
            self.trace.grad_norm = math.hypot(self.trace.grad_norm or 0.0, norm)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        boundary = (batch_idx + 1) % self.obs.accumulate == 0
        if not boundary and batch_idx + 1 < trainer.num_training_batches:
            return
        trace, self.trace = self.trace, None
        if trace.grad_norm is None:  # no optimizer hook fired: what backward left behind
            trace.grad_norm = _grad_norm([p for _, p in self.params])
        if not trace.learning_rates:
            trace.learning_rates = [
                float(g.get("lr", math.nan)) for o in trainer.optimizers for g in o.param_groups
            ]
        after = self._fingerprint()
        trace.changed = self.fingerprint is None or not torch.equal(self.fingerprint, after)
        trace.scheduler_steps = [
            _position(s) - b for s, b in zip(self.schedulers, self.sched_before, strict=True)
        ]
        if not self.backward_ran:
            trace.grad_norm = None
        self.obs.steps.append(trace)

    def _fingerprint(self) -> torch.Tensor | None:
        """One float64 sum per parameter: any update changes it, at no copy of the weights."""
        if not self.params:
            return None
        return torch.stack([p.detach().sum(dtype=torch.float64).cpu() for _, p in self.params])


def _zero_lr(trace: StepTrace) -> bool:
    """A step at learning rate 0 (a warm-up): it cannot move anything, and need not."""
    return bool(trace.learning_rates) and all(lr == 0 for lr in trace.learning_rates)


def _position(scheduler) -> int:
    return int(getattr(scheduler, "last_epoch", 0) or 0)


def _grad_norm(params) -> float | None:
    grads = [p.grad.detach() for p in params if p.grad is not None and not p.grad.is_sparse]
    if not grads:
        return None
    return float(torch.linalg.vector_norm(torch.stack([g.float().norm() for g in grads])))


# --- judging -------------------------------------------------------------------------------


def judge(obs: StepObs, lr_drop_limit: float) -> list[Finding]:
    """Stale gradients, skipped steps and racing schedulers over the steps taken."""
    found: list[Finding] = []
    steps = obs.steps
    if len(steps) < 2:
        return found
    norms = " → ".join(f"{s.grad_norm:.3g}" for s in steps if s.grad_norm is not None)
    stale = [s for s in steps if s.stale]
    if stale:
        first = stale[0]
        found.append(
            Finding(
                "gradients are cleared between steps",
                f"gradients accumulate across steps: when step {first.index}'s backward ran, "
                f"{names(first.stale)} still held the previous step's gradient (nothing "
                f"called zero_grad in between), so the optimizer saw the sum of the steps' "
                f"gradients; gradient norm over {len(steps)} steps on the same batch: {norms}",
                "Let Lightning clear gradients: do not override `optimizer_zero_grad` (or call "
                "`optimizer.zero_grad()` in it, with the parentheses); with manual "
                "optimisation call `opt.zero_grad()` before `manual_backward`. To accumulate on "
                "purpose, use the Trainer's `accumulate_grad_batches`.",
                first.stale,
                cause="missing zero_grad",
            )
        )
    skipped = [s for s in steps[1:] if not s.changed and s.grad_norm and not _zero_lr(s)]
    if skipped and not obs.precision.startswith("16"):
        which = ", ".join(str(s.index) for s in skipped)
        found.append(
            Finding(
                "optimizer steps every step",
                f"the optimizer skipped step(s) {which} of {len(steps)}: backward gave a "
                f"gradient (norm {skipped[0].grad_norm:.3g}) but no parameter changed",
                "Look at an `optimizer_step` override (it must call `optimizer.step("
                "closure=optimizer_closure)` on every step) or a condition around "
                "`opt.step()` with manual optimisation.",
                cause="skipped optimizer step",
            )
        )
    found += _schedulers(obs, lr_drop_limit)
    return found


def _schedulers(obs: StepObs, limit: float) -> list[Finding]:
    steps = obs.steps
    racing = [
        (obs.schedulers[i], max(s.scheduler_steps[i] for s in steps))
        for i in range(len(obs.schedulers))
        if max(s.scheduler_steps[i] for s in steps) > 1
    ]
    lrs = [s.learning_rates for s in steps if s.learning_rates]
    falls = []
    if lrs and all(len(r) == len(lrs[0]) for r in lrs):
        for group in range(len(lrs[0])):
            start, low = lrs[0][group], min(r[group] for r in lrs)
            if start > 0 and low >= 0 and start > limit * low:
                falls.append((group, start, low))
    if not (racing or falls):
        return []
    parts = [f"scheduler {name} stepped {n} times in one optimizer step" for name, n in racing]
    if falls:
        group, start, low = falls[0]
        shown = " → ".join(f"{r[group]:.3g}" for r in lrs)
        parts.append(
            f"the learning rate of param group {group} fell from {start:.3g} to {low:.3g} "
            f"within {len(steps)} steps ({shown}; more than the {limit:g}x "
            "checks.sanity.lr_drop_limit allows)"
        )
    return [
        Finding(
            "scheduler steps once per step",
            "a learning-rate scheduler steps too often: " + "; ".join(parts),
            "Step each scheduler once per interval: return it from `configure_optimizers` "
            "with the right `interval` ('epoch' for per-epoch schedules such as StepLR) and do "
            "not also call `.step()` on it in training_step.",
            [name for name, _ in racing],
            cause="scheduler stepping too often",
        )
    ]
