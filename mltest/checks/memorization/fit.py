"""One seeded memorization fit, observed: the Lightning callback that judges the target after
each epoch and stops on non-finite values. Imports Lightning, so only `check.run` imports it,
in the worker."""

from __future__ import annotations

import contextlib
import math
import time
from typing import Any

from mltest.checks.base import CheckContext
from mltest.checks.memorization import lr_groups
from mltest.checks.memorization.evidence import idle_norms
from mltest.checks.memorization.judge import judge_for, judging_step
from mltest.checks.memorization.seed_run import SeedRun
from mltest.checks.memorization.settings import Settings, Target
from mltest.errors import ProjectError
from mltest.seeding import fill_new_tensors


class _Stop(Exception):
    """Raised inside the fit loop to end it at once (non-finite values)."""


def train_seed(
    ctx: CheckContext,
    settings: Settings,
    seed: int,
    schedule: int | None = None,
    *,
    lean: bool = True,
) -> tuple[SeedRun, str]:
    """Fit one seeded fresh model on the fixed batches; count epochs until the target holds.

    The Trainer gets `max_epochs=schedule` (default: the budget), which is what the model's
    schedule sees; the fit stops at the budget, `settings.max_epochs`, whichever comes first.
    The epochs run in mltest's lean loop (`loop.LeanLoop`) where it is equal to Lightning's;
    `lean=False` asks for Lightning's own loop (the tests and the bench compare the two).
    """
    import torch

    from mltest.checks.memorization.loop import LeanLoop
    from mltest.engine import FixedBatches, device_key, lightning_package, make_trainer, quiet
    from mltest.seeding import determinism_mode, isolated_global_state, watch_determinism

    started = time.perf_counter()
    result = SeedRun(seed=seed, quantity=settings.target.quantity)
    mode = determinism_mode(ctx.trainer_settings)
    with isolated_global_state(), quiet(), watch_determinism(mode) as watch:
        model, batches = ctx.project.fresh_start(seed, settings.batches)
        result.judge = judge_for(model, settings)
        probe = _Probe(result, settings, batches, ctx.deadline)
        trainer = make_trainer(
            model,
            ctx.trainer_settings,
            max_epochs=schedule or settings.max_epochs,
            limit_train_batches=len(batches),
            callbacks=[probe],
        )
        loop = LeanLoop(trainer, batches, lightning_package(model)) if lean else None
        if trainer.strategy.root_device.type == "cpu":
            # After the model's __init__, which may set its own count (isolated_global_state
            # puts the caller's back). A fixed count fixes the float sums, hence the counts.
            torch.set_num_threads(seed_threads(settings.threads))
        # The optimizers are built inside fit (configure_optimizers): note where.
        with contextlib.suppress(_Stop), lr_groups.sites() as probe.sites:
            trainer.fit(model, train_dataloaders=FixedBatches(batches))
    result.loop = loop.reason if loop else "asked for"
    result.nondeterministic = sorted(watch.ops)
    result.seconds = time.perf_counter() - started
    return result, device_key(trainer, ctx.trainer_settings)


def _lightning_callback_base():
    import pytorch_lightning

    return pytorch_lightning.Callback


class _Probe(_lightning_callback_base()):
    """Judges the target in eval mode before training and after each epoch; watches for NaN.

    The judging step is `training_step`, or `validation_step` under manual optimization (see
    `memorization.judge_for`); the count is the first epoch of `hold` consecutive judgements
    that met the target.

    What it costs per epoch is what the verdict needs and no more: the eval-mode pass over the
    batches, read back from the device once, and one read-back of the epoch's training losses.
    Nothing waits on the device inside an epoch.

    Gradients are not inspected after every backward: under fp16 mixed precision an inf
    gradient is normal (the scaler skips that step), and a real one shows within a step as a
    non-finite loss or weight, which is when the offending parameters are named.
    """

    def __init__(self, result: SeedRun, settings: Settings, batches: list, deadline):
        self.result = result
        self.target = settings.target
        self.hold = settings.hold
        self.budget = settings.max_epochs
        self.step = result.judge
        self.settings = settings
        self.streak = 0  # consecutive judgements that met the target, up to now
        self.batches = batches
        self.deadline = deadline
        self.judged: Any = None  # the batches judged, on the device (set when training starts)
        self.step_losses: list = []  # this epoch's training losses, still on the device
        self.sites: dict = {}  # id(optimizer) -> (optimizer, the line that built it)

    def on_train_start(self, trainer, pl_module):
        from mltest.checks.memorization.device_batches import Restored
        from mltest.engine import copy_batch

        # Moved once (through the module's own transfer hooks) and copied: on the CPU the move
        # returns the training batch itself. Put back before each judgement if one wrote into
        # them.
        self.judged = Restored(
            [copy_batch(trainer.strategy.batch_to_device(b)) for b in self.batches]
        )
        self.step = judging_step(self.step, pl_module, self.settings)
        self.result.lr_groups = lr_groups.groups(trainer, pl_module, self.sites)
        # The flat list older baselines hold, read from the same record.
        self.result.learning_rates = [group["lr"] for group in self.result.lr_groups]
        loss, metrics = evaluate(pl_module, self.judged.get(), self.target, self.step)
        self.result.initial_loss = loss
        if self.target.metric is not None:
            self.result.initial_metric = metrics[self.target.metric]
        if self.target.met(loss, metrics):
            self.result.met_before_training = True
            raise _Stop

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.deadline.check()
        if trainer.current_epoch == 0 and batch_idx == 0:  # after the step: its modes hold
            self.result.idle_norms = idle_norms(pl_module)
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is not None:
            self.step_losses.append(loss.detach())

    def on_train_epoch_end(self, trainer, pl_module):
        steps, self.step_losses = self.step_losses, []
        for value in to_floats(steps):  # the first non-finite step loss, as before
            if not math.isfinite(value):
                self._stop(f"training loss became {value:g}", trainer, pl_module)
        loss, metrics = evaluate(pl_module, self.judged.get(), self.target, self.step)
        if loss is not None:
            self.result.losses.append(loss)
            self.result.final_loss = loss
        if self.target.metric is not None:
            self.result.metric_values.append(metrics[self.target.metric])
        if loss is not None and not math.isfinite(loss):
            self._stop(f"eval loss became {loss:g}", trainer, pl_module)
        if loss is None and not math.isfinite(metrics[self.target.quantity]):
            value = metrics[self.target.quantity]
            self._stop(f"{self.target.quantity} became {value:g}", trainer, pl_module)
        if self.target.met(loss, metrics):
            self.streak += 1
            if self.streak >= self.hold:
                self.result.epochs = trainer.current_epoch + 2 - self.hold
                trainer.should_stop = True
        else:
            self.streak = 0
        if trainer.current_epoch + 1 >= self.budget:
            trainer.should_stop = True  # the budget, when the schedule runs longer
        if trainer.current_epoch == 0:
            # A read of memory nobody wrote has shown as NaN by now (model built, one epoch
            # trained and judged with the fill on); the epochs after only repeat that work.
            # isolated_global_state turns the fill back on after the fit.
            fill_new_tensors(False)
        self.deadline.check()

    def _stop(self, what: str, trainer, pl_module):
        found = _nonfinite_parameters(pl_module)
        where = f"; non-finite {found}" if found else ""
        self.result.nonfinite = f"{what} at epoch {trainer.current_epoch + 1}{where}"
        raise _Stop


def seed_threads(setting: int) -> int:
    """Torch threads for one seed: the setting, or one inside a forked worker (GNU OpenMP
    hangs when a forked child uses several threads after its parent did)."""
    from mltest.parallel import in_forked_worker

    return 1 if in_forked_worker() else setting


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


def evaluate(
    module, batches: list, target: Target, step: str = "training_step"
) -> tuple[float | None, dict[str, float]]:
    """Mean loss and metrics of `step` (`training_step`, `validation_step`, or a callable
    such as the samples judgement) over the batches, in eval mode, no grad. A validation_step
    need not return a loss (None then).

    Values the module logs with `self.log` are captured for metric targets. Each submodule's
    train/eval flag is put back exactly as it was (a user may keep some layers in eval). The
    values are read back from the device once, after the last batch, and averaged in Python
    exactly as one read per value would.
    """
    import torch

    flags = [(m, m.training) for m in module.modules()]
    logged: dict[str, list[Any]] = {}
    shapes: dict[str, str] = {}  # returned values that are not one number: never metrics

    def capture(name, value, *args, **kwargs):
        if is_scalar(value):
            logged.setdefault(name, []).append(value)
        else:
            shapes[name] = describe_value(value)

    def capture_dict(values, *args, **kwargs):
        for name, value in values.items():
            capture(name, value)

    shadowed = {n: module.__dict__[n] for n in ("log", "log_dict") if n in module.__dict__}
    module.log, module.log_dict = capture, capture_dict  # instance attributes shadow the methods
    losses: list[Any] = []
    try:
        module.eval()
        with torch.no_grad():
            for index, batch in enumerate(batches):
                out = (step if callable(step) else getattr(module, step))(batch, index)
                if isinstance(out, dict):
                    for name, value in out.items():
                        if name != "loss":
                            capture(name, value)
                    out = out.get("loss")
                if out is None and (step == "training_step" or target.metric is None):
                    raise ProjectError(
                        f"{step} returned no loss; memorization needs the loss for "
                        f"`target: {{loss_below: ...}}` (return it, or a dict with a `loss` "
                        "key), or a target on a metric it logs"
                    )
                losses.append(out)
    finally:
        del module.log, module.log_dict
        module.__dict__.update(shadowed)  # the fit's lean logging, when it is on
        for submodule, was_training in flags:
            submodule.__dict__["training"] = was_training  # nn.Module.__setattr__'s end result
    if any(loss is None for loss in losses):
        losses = []  # a validation_step that logs its metrics and returns nothing
    names = list(logged)
    values = to_floats([*losses, *(v for name in names for v in logged[name])])
    loss_values, rest = values[: len(losses)], iter(values[len(losses) :])
    metrics = {}
    for name in names:
        these = [next(rest) for _ in logged[name]]
        metrics[name] = sum(these) / len(these)
    if target.metric is not None and target.metric in shapes and target.metric not in metrics:
        raise ProjectError(
            f"checks.memorization.target.metric `{target.metric}`: {step} returned it as "
            f"{shapes[target.metric]}, not one number; return or log the metric as a scalar "
            "(e.g. its mean)"
        )
    if target.metric is not None and target.metric not in metrics:
        raise ProjectError(
            f"checks.memorization.target.metric `{target.metric}` was not found: {step} "
            f"neither returned nor logged it (it logged: {', '.join(sorted(metrics)) or 'nothing'})"
        )
    return (sum(loss_values) / len(loss_values) if loss_values else None), metrics


def is_scalar(value: Any) -> bool:
    """Whether a value a step returned or logged is one number (a metric); other entries of a
    returned dict (predictions, a dict of logs) are the model's business, not a metric."""
    import torch

    if isinstance(value, torch.Tensor):
        return value.numel() == 1 and not value.is_complex()
    return isinstance(value, (int, float)) or _numpy_scalar(value)


def _numpy_scalar(value: Any) -> bool:
    return type(value).__module__ == "numpy" and getattr(value, "size", 0) == 1


def describe_value(value: Any) -> str:
    """`a tensor of shape (64,)`, `a dict`: what a non-scalar value is, for messages."""
    shape = getattr(value, "shape", None)
    if shape is not None:
        return f"a {type(value).__name__} of shape {tuple(shape)}"
    return f"a {type(value).__name__}"


def to_floats(values: list[Any]) -> list[float]:
    """`[float(v) for v in values]` with one device-to-host copy per device, not one per value.

    A one-element floating, integer or bool tensor widened to float64 on its device reads back
    as the very float `float(v)` gives; anything else (a Python number, a tensor `float` would
    refuse, a CPU tensor, which has no copy to save) goes through `float` itself, errors
    included.
    """
    import torch

    out: list[Any] = [None] * len(values)
    by_device: dict[Any, list[int]] = {}
    for index, value in enumerate(values):
        if (
            isinstance(value, torch.Tensor)
            and value.device.type != "cpu"
            and value.numel() == 1
            and not value.is_complex()
        ):
            by_device.setdefault(value.device, []).append(index)
        else:
            out[index] = float(value)
    for indices in by_device.values():
        for index, number in zip(indices, read_back([values[i] for i in indices]), strict=True):
            out[index] = number
    return out


def read_back(tensors: list[Any]) -> list[float]:
    """One-element tensors of one device as the floats `float` gives, in one copy to the host."""
    import torch

    wide = torch.stack([t.detach().reshape(()).to(torch.float64) for t in tensors])
    return wide.tolist()
