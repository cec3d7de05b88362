"""mltest's own loop for the memorization fit: Lightning's epoch and batch loop, without the
bookkeeping that costs a small model more than its training step.

`trainer.fit` still does everything around the loop: setup hooks, `configure_optimizers`,
precision and device placement, `on_train_start` / `on_train_end`, teardown, exception hooks.
`LeanLoop` replaces only the loop over epochs and batches (`fit_loop.run`'s `while`). It calls the
LightningModule's and the callbacks' hooks in Lightning's order (callbacks first), with
Lightning's arguments, and keeps the Trainer's counters as Lightning keeps them, so
`current_epoch`, `global_step`, `batch_idx`, `is_last_batch` and `should_stop` read the same in
user code. Each piece of Lightning's per-batch work is done by Lightning's own function, or
skipped where it is provably a no-op for this fit: a hook nobody overrides, float32 precision's
identity conversions, clipping with no clip value. Logging needs no per-batch work either:
during the loop `self.log` is a dict write into `trainer.callback_metrics` (`lean_logging`).

Where it could not be equal, Lightning's own loop runs and `reason` says why: another strategy
than one device, a scheduler or callback that monitors a logged value, a profiler, validation
during the fit, dataloaders reloaded every n epochs, a `training_step` taking a dataloader
iterator. Equality with the Trainer is tested hook by hook, state by state
(tests/checks/memorization/test_loop.py) and count by count (test_counts.py).
"""

from __future__ import annotations

import importlib
from typing import Any

from mltest.checks.memorization.device_batches import DeviceBatches, Restored

# Hooks the loop calls itself; the others are called by `trainer.fit` as usual.
_CALLBACK_HOOKS = (
    "on_train_epoch_start", "on_train_batch_start", "on_before_zero_grad", "on_before_backward",
    "on_after_backward", "on_before_optimizer_step", "on_train_batch_end", "on_train_epoch_end",
)  # fmt: skip
_MODULE_HOOKS = (
    *_CALLBACK_HOOKS, "on_before_batch_transfer", "transfer_batch_to_device",
    "on_after_batch_transfer", "optimizer_zero_grad", "backward", "optimizer_step",
    "configure_gradient_clipping", "lr_scheduler_step",
)  # fmt: skip


class LeanLoop:
    """Runs the epochs of one `trainer.fit` on fixed batches; install before calling `fit`.

    Attributes:
        reason: why Lightning's own loop ran instead ('' when this one ran, or before `fit`).
    """

    def __init__(self, trainer: Any, batches: list, package: Any):
        self.trainer = trainer
        self.batches = batches
        # On the CPU the move to the device returns these tensors themselves.
        self.fixed = Restored(batches)
        self.package = package
        self.reason = ""
        fit_loop = trainer.fit_loop
        self._lightning_run = fit_loop.run
        fit_loop.run = self.run  # an instance attribute: only this Trainer's loop changes

    # --- the fit --------------------------------------------------------------------------

    def run(self) -> None:
        """`_FitLoop.run` with the epochs driven here: Lightning's setup, start and end."""
        trainer = self.trainer
        fit_loop = trainer.fit_loop
        fit_loop.setup_data()  # Lightning's run starts so too; a second call does nothing
        self.reason = lightning_needed(trainer, self.package, len(self.batches))
        if self.reason:
            return self._lightning_run()
        if fit_loop.skip:
            return None
        fit_loop.reset()
        module = trainer.lightning_module
        lean_logging(module, trainer)
        try:
            fit_loop.on_run_start()  # on_train_start hooks (the memorization probe judges init)
            self._prepare()  # after them: they may still change the Trainer's settings
            while not fit_loop.done:
                self._epoch()
                fit_loop.on_iteration_done()
            fit_loop._restarting = False
            fit_loop.on_run_end()
        finally:
            restore_logging(module)
        return None

    def _prepare(self) -> None:
        """What stays fixed for the fit: which hooks are overridden, which fast paths hold."""
        trainer, package = self.trainer, self.package
        module = trainer.lightning_module
        self.module = module
        callback_base, module_base = package.Callback, package.LightningModule
        self.callback_hooks = {
            name: [
                getattr(cb, name) for cb in trainer.callbacks if _overrides(cb, name, callback_base)
            ]
            for name in _CALLBACK_HOOKS
        }
        self.module_hooks = {
            name: getattr(module, name) if _overrides(module, name, module_base) else None
            for name in _MODULE_HOOKS
        }
        signature = importlib.import_module(f"{package.__name__}.utilities.signature_utils")
        self.takes_batch_idx = signature.is_param_in_hook_signature(
            module.training_step, "batch_idx", min_args=2
        )
        automatic = importlib.import_module(f"{package.__name__}.loops.optimization.automatic")
        self.closure_cls, self.result_cls = automatic.Closure, automatic.ClosureResult
        self.tensor_cls = importlib.import_module("torch").Tensor
        precision_base = package.plugins.precision.Precision
        plain = type(trainer.precision_plugin) is precision_base  # float32: identity conversions
        hooked = self._hooked
        self.plain_batches = (
            plain
            and trainer.datamodule is None  # whose transfer hooks would come first
            and not hooked(
                "on_before_batch_transfer", "transfer_batch_to_device", "on_after_batch_transfer"
            )
        )
        # training_step called directly: no precision context at float32, no wrapper model
        self.plain_step = plain and trainer.strategy.model is module
        self.plain_backward = plain and not hooked(
            "on_before_backward", "on_after_backward", "backward"
        )
        self.plain_optimizer_step = (
            plain
            and not trainer.gradient_clip_val
            and not hooked(
                "on_before_optimizer_step", "optimizer_step", "configure_gradient_clipping"
            )
        )
        self.batch_cache = DeviceBatches(
            trainer.strategy.root_device, package.utilities.move_data_to_device
        )

    def _hooked(self, *names: str) -> bool:
        """Whether the module or any callback overrides one of these hooks."""
        return any(
            self.module_hooks.get(name) is not None or self.callback_hooks.get(name)
            for name in names
        )

    def _call(self, name: str, *args: Any) -> Any:
        """Callbacks' `name` hook, then the module's, as Lightning calls them; returns the
        module's output."""
        trainer, module = self.trainer, self.module
        for hook in self.callback_hooks[name]:
            hook(trainer, module, *args)
        hook = self.module_hooks[name]
        return hook(*args) if hook is not None else None

    # --- one epoch: _FitLoop.on_advance_start, _TrainingEpochLoop.run, on_advance_end ------

    def _epoch(self) -> None:
        trainer, fit_loop = self.trainer, self.trainer.fit_loop
        epoch_loop = fit_loop.epoch_loop
        fit_loop.epoch_progress.increment_ready()
        self._call("on_train_epoch_start")
        fit_loop.epoch_progress.increment_started()
        epoch_loop.reset()
        batch_idx = 0
        while not epoch_loop.done:
            carry_on = self._batch(batch_idx)
            epoch_loop.on_iteration_done()
            if not carry_on:
                break  # on_train_batch_start returned -1: the rest of the epoch is skipped
            batch_idx += 1
        fit_loop.epoch_progress.increment_processed()
        self._call("on_train_epoch_end")  # no monitoring callbacks here (lightning_needed)
        fit_loop.epoch_progress.increment_completed()
        if trainer.received_sigterm:
            raise self.package.utilities.exceptions.SIGTERMException

    def _batch(self, batch_idx: int) -> bool:
        """One batch as `_TrainingEpochLoop.advance` and `on_advance_end` run it; False when
        `on_train_batch_start` asked to skip the rest of the epoch."""
        trainer, module = self.trainer, self.module
        epoch_loop = trainer.fit_loop.epoch_loop
        progress = epoch_loop.batch_progress
        progress.is_last_batch = batch_idx == len(self.batches) - 1
        batch = self._to_device(self.fixed.get()[batch_idx])
        progress.increment_ready()
        response = self._call("on_train_batch_start", batch, batch_idx)
        if response == -1:
            progress.increment_by(0, is_last_batch=True)
            progress.increment_processed()
            self._step_schedulers("step")
            self._step_schedulers("epoch")
            return False
        progress.increment_started()
        if module.automatic_optimization:
            output = self._automatic(batch, batch_idx)
        else:  # the user's training_step steps the optimizers: Lightning's own code
            args = (batch, batch_idx) if self.takes_batch_idx else (batch,)
            output = epoch_loop.manual_optimization.run(_kwargs(args))
        progress.increment_processed()
        self._step_schedulers("step")
        if epoch_loop._num_ready_batches_reached():
            self._step_schedulers("epoch")
        self._call("on_train_batch_end", output, batch, batch_idx)
        progress.increment_completed()
        if not epoch_loop._should_accumulate():
            epoch_loop._batches_that_stepped += 1
        if not epoch_loop._is_training_done and trainer.received_sigterm:
            raise self.package.utilities.exceptions.SIGTERMException
        return True

    def _to_device(self, batch: Any) -> Any:
        """convert_input, on_before_batch_transfer, batch_to_device, as the epoch loop does."""
        trainer = self.trainer
        if self.plain_batches:
            return self.batch_cache.get(batch)
        batch = trainer.precision_plugin.convert_input(batch)
        batch = self.module._on_before_batch_transfer(batch, dataloader_idx=0)
        return trainer.strategy.batch_to_device(batch, dataloader_idx=0)

    # --- automatic optimization: _AutomaticOptimization.run ------------------------------

    def _automatic(self, batch: Any, batch_idx: int) -> dict:
        trainer, module = self.trainer, self.module
        epoch_loop = trainer.fit_loop.epoch_loop
        automatic = epoch_loop.automatic_optimization
        optimizer = trainer.optimizers[0]
        args = (batch, batch_idx) if self.takes_batch_idx else (batch,)
        accumulate = trainer.accumulate_grad_batches

        def step() -> Any:
            if self.plain_step:
                output = module.training_step(*args)
            else:
                output = trainer.strategy.training_step(*args)
            if accumulate == 1 and isinstance(output, self.tensor_cls):
                # what from_training_step_output returns but for its `loss / 1`, which is
                # exact in value and gradient and costs an op and an autograd node
                return self.result_cls(output)
            return self.result_cls.from_training_step_output(output, accumulate)

        skip = automatic._skip_backward
        zero_grad = None
        if not skip and batch_idx % accumulate == 0:
            zero_grad = lambda: self._zero_grad(optimizer, batch_idx)  # noqa: E731
        backward = None if skip else (lambda loss: self._backward(loss, optimizer))
        closure = self.closure_cls(step, backward, zero_grad)
        if epoch_loop._should_accumulate():
            closure()
        else:
            steps = automatic.optim_progress.optimizer.step
            steps.increment_ready()
            if self.plain_optimizer_step:
                optimizer.step(closure=closure)
            else:
                wrapped = trainer.strategy._lightning_optimizers[0]  # LightningOptimizer
                module.optimizer_step(trainer.current_epoch, batch_idx, wrapped, closure)
            steps.increment_completed()
        result = closure.consume_result()
        return {} if result.loss is None else result.asdict()

    def _zero_grad(self, optimizer: Any, batch_idx: int) -> None:
        counts = self.trainer.fit_loop.epoch_loop.automatic_optimization.optim_progress
        counts.optimizer.zero_grad.increment_ready()
        self._call("on_before_zero_grad", optimizer)
        counts.optimizer.zero_grad.increment_started()
        hook = self.module_hooks["optimizer_zero_grad"]
        if hook is None:
            optimizer.zero_grad()  # LightningModule.optimizer_zero_grad's body
        else:
            hook(self.trainer.current_epoch, batch_idx, optimizer)
        counts.optimizer.zero_grad.increment_completed()

    def _backward(self, loss: Any, optimizer: Any) -> None:
        if self.plain_backward:
            loss.backward()  # pre/post_backward call no hook and LightningModule.backward is this
        else:
            self.trainer.strategy.backward(loss, optimizer)

    def _step_schedulers(self, interval: str) -> None:
        """`_TrainingEpochLoop.update_lr_schedulers(interval, update_plateau_schedulers=False)`."""
        trainer = self.trainer
        epoch_loop = trainer.fit_loop.epoch_loop
        configs = trainer.lr_scheduler_configs
        if not configs or not self.module.automatic_optimization:
            return
        if interval == "step" and epoch_loop._should_accumulate():
            return
        index = (epoch_loop.batch_idx if interval == "step" else trainer.current_epoch) + 1
        for config in configs:
            if config.reduce_on_plateau:
                continue  # never here: lightning_needed sends monitored schedulers to Lightning
            if config.interval == interval and index % config.frequency == 0:
                epoch_loop.scheduler_progress.increment_ready()
                hook = self.module_hooks["lr_scheduler_step"]
                if hook is None:
                    config.scheduler.step()  # LightningModule.lr_scheduler_step with no monitor
                else:
                    hook(config.scheduler, None)
                epoch_loop.scheduler_progress.increment_completed()


def lean_logging(module: Any, trainer: Any) -> None:
    """Shadow `self.log` / `self.log_dict` for the loop: the last value of each name goes to
    `trainer.callback_metrics` (hooks that read it still find it), with no host-device sync
    and none of the ~1 ms per call that Lightning's result collection costs on a CPU.

    Nothing in the memorization verdict reads what training logs, and what a hook reads from
    `callback_metrics` is what Lightning puts there for values logged each step (its default in
    `training_step`): the last one. A value that a scheduler or callback monitors makes
    `lightning_needed` choose Lightning's loop, with its logging.
    """
    metrics = trainer.callback_metrics  # the connector's own dict: writes persist

    def log(name, value, *args, **kwargs):
        metrics[name] = value.detach() if hasattr(value, "detach") else value

    def log_dict(values, *args, **kwargs):
        for name, value in values.items():
            log(name, value)

    module.log, module.log_dict = log, log_dict  # instance attributes shadow the methods


def restore_logging(module: Any) -> None:
    """Take the shadows off again: the module's own `log` and `log_dict` show through."""
    for name in ("log", "log_dict"):
        module.__dict__.pop(name, None)


def _kwargs(args: tuple) -> Any:
    """The ordered kwargs `_ManualOptimization.run` expects: batch, then batch_idx if taken."""
    from collections import OrderedDict

    return OrderedDict(zip(("batch", "batch_idx"), args, strict=False))


def _overrides(obj: Any, name: str, base: type) -> bool:
    """Whether `obj` (its class or the instance itself) replaces `base`'s `name`."""
    attr = getattr(obj, name, None)
    if attr is None:
        return False
    attr = getattr(attr, "__wrapped__", attr)
    code = getattr(getattr(attr, "__func__", attr), "__code__", None)
    base_attr = getattr(base, name, None)
    return code is None or base_attr is None or code is not base_attr.__code__


def lightning_needed(trainer: Any, package: Any, batches: int) -> str:
    """Why this fit needs Lightning's own loop ('' when mltest's loop is equal to it).

    Called inside `fit`, after setup and `setup_data`: optimizers, schedulers, callbacks and
    the number of batches are known.
    """
    strategy = type(trainer.strategy)
    if strategy is not package.strategies.SingleDeviceStrategy:
        return f"the {strategy.__name__} strategy"
    if type(trainer.profiler) is not package.profilers.PassThroughProfiler:
        return "a profiler is set (`trainer.profiler`)"
    for config in trainer.lr_scheduler_configs:
        if config.reduce_on_plateau or config.monitor:
            return (
                f"a learning-rate scheduler monitors `{config.monitor}`, a value logged with "
                "Lightning's own bookkeeping"
            )
    monitoring = (package.callbacks.EarlyStopping, package.callbacks.Checkpoint)
    for callback in trainer.callbacks:
        if isinstance(callback, monitoring):
            return f"the {type(callback).__name__} callback monitors logged values"
    if trainer.enable_validation:
        return "validation runs during the fit"
    if trainer.reload_dataloaders_every_n_epochs:
        return "`trainer.reload_dataloaders_every_n_epochs` is set"
    signature = importlib.import_module(f"{package.__name__}.utilities.signature_utils")
    module = trainer.lightning_module
    if signature.is_param_in_hook_signature(module.training_step, "dataloader_iter", explicit=True):
        return "training_step takes a dataloader iterator"
    if trainer.num_training_batches != batches or trainer.strategy.handles_gradient_accumulation:
        return "the Trainer's own batch limits apply"
    return ""
