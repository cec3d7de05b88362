"""Several optimisation steps of the user's own training code on one batch, observed closely.

The sanity check's measuring half: a Lightning fit of `steps` steps on the first batch, with
callbacks that snapshot parameters and buffers around the first step, record gradients just
before the optimizer uses them, which norm layers ran in which mode, the first module whose
output was not finite, and what the probes need (per-step traces, activation units, padding
rows); then eval-mode probes on the trained model and a gradient check on a float64 copy of
the fresh one. It returns plain observations; the check decides what they mean.
"""

from __future__ import annotations

import time
from typing import Any

import pytorch_lightning
import torch

from mltest.checks.sanity.obs import BufferObs, PaddingObs, ParamObs, StepObs, matches
from mltest.checks.sanity.probes import gradcheck, independence, init_loss, padding, tying, units
from mltest.checks.sanity.probes.callbacks import callbacks
from mltest.checks.sanity.probes.steps import StepsProbe
from mltest.checks.sanity.tensors import ForwardCall, float_tensors, probe_input, redirected
from mltest.errors import MltestError, ProjectError

# Buffers of these layers are running statistics that must move in train mode.
_NORM_TYPES = (torch.nn.modules.batchnorm._NormBase,)


def observe_step(ctx, settings, seed: int) -> StepObs:
    """Fit `settings.steps` steps of a fresh seeded model on the first training batch."""
    from mltest.checks.task import task_of
    from mltest.engine import FixedBatches, device_key, make_trainer, quiet
    from mltest.seeding import determinism_mode, isolated_global_state, watch_determinism

    started = time.perf_counter()
    obs = StepObs(seed=seed)
    mode = determinism_mode(ctx.trainer_settings)
    with isolated_global_state(), quiet(), watch_determinism(mode) as watch:
        model, batches = ctx.project.fresh_start(seed, 1)
        obs.model_name = type(model).__name__
        obs.tying = tying.observe(model)  # before the fit: what __init__ tied
        copy = None
        if settings.gradient_check:
            try:
                copy = gradcheck.prepare(model)
            except gradcheck.Skip as exc:
                obs.skipped.append(f"gradient check skipped: {exc}")
        accumulate = int(ctx.trainer_settings.get("accumulate_grad_batches", 1) or 1)
        task = task_of(ctx, (model, batches[0])) if settings.init_loss else None
        probe = _StepProbe(obs, settings, task)
        added = callbacks(obs, settings)  # the probes with callbacks of their own
        # Room for a warm-up from lr 0: the probe stops the fit `steps` after the judged step.
        steps = settings.steps + settings.zero_lr_steps
        trainer = make_trainer(
            model, ctx.trainer_settings, max_epochs=1, max_steps=steps,
            limit_train_batches=steps * accumulate, callbacks=[probe, StepsProbe(obs), *added],
        )  # fmt: skip
        trainer.fit(model, train_dataloaders=FixedBatches(batches * (steps * accumulate)))
        for error in (p.error for p in (probe, *added) if p.error is not None):
            raise error
        if not probe.stepped:
            raise ProjectError(
                "checks.sanity: the training step never ran (Lightning skipped the batch: "
                "does `training_step` return None, or `on_train_batch_start` return -1?)"
            )
        ctx.deadline.check()
        if copy is not None:
            obs.gradcheck, why = gradcheck.run(copy, batches[0], seed)
            if why:
                obs.skipped.append(f"gradient check skipped: {why}")
    obs.nondeterministic = sorted(watch.ops)
    obs.env_key = device_key(trainer, ctx.trainer_settings)
    obs.seconds = time.perf_counter() - started
    return obs


class _StepProbe(pytorch_lightning.Callback):
    """Snapshots around the first step; its hooks live only while that step runs."""

    def __init__(self, obs: StepObs, settings, task=None):
        self.obs = obs
        self.settings = settings
        self.task = task  # the model's task, for the loss expected at init
        self.stepped = False
        self.error: Exception | None = None
        self.handles: list = []
        self.before: dict[str, torch.Tensor] = {}
        self.buffers_before: dict[str, torch.Tensor] = {}
        self.grads: dict[str, torch.Tensor] = {}
        self.finite_flags: list[tuple[str, torch.Tensor]] = []
        self.norm_modes: dict[str, str] = {}
        self.output: Any = None
        self.forward_call: ForwardCall | None = None  # forward's arguments in the step
        self.batch: Any = None
        self.first_done = False
        self.steps_done = 0  # optimizer steps finished, lr-0 ones included
        self.step_lrs: list[float] = []  # learning rates of the step running now
        self.unit_watch: units.UnitWatch | None = None
        self.pad_watch: padding.EmbeddingWatch | None = None

    # -- before the step ------------------------------------------------------------------
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self.batch is not None:
            return  # the later steps: StepsProbe watches them
        self.batch = batch
        self.before = {n: p.detach().clone() for n, p in pl_module.named_parameters()}
        self.buffers_before = {
            n: b.detach().clone() for n, b in self._watched_buffers(pl_module).items()
        }
        self.in_optimizer = {
            id(p) for opt in trainer.optimizers for g in opt.param_groups for p in g["params"]
        }
        param_names = {id(p): n for n, p in pl_module.named_parameters()}
        self.obs.optimizer_params = [
            [param_names.get(id(p), "?") for g in opt.param_groups for p in g["params"]]
            for opt in trainer.optimizers
        ]
        names = {m: n for n, m in pl_module.named_modules()}
        self.module_types = {n: type(m).__name__ for m, n in names.items()}
        for module, name in names.items():
            self.handles.append(module.register_forward_hook(self._finite_hook(name)))
            if isinstance(module, _NORM_TYPES):
                self.norm_modes[name] = "never ran"
                self.handles.append(module.register_forward_pre_hook(self._mode_hook(name)))
        self.handles.append(pl_module.register_forward_hook(self._output_hook))
        self.handles.append(
            pl_module.register_forward_pre_hook(self._input_hook, with_kwargs=True)
        )
        if self.settings.units:
            self.unit_watch = units.UnitWatch(pl_module)
        if self.settings.padding is not None:
            self.pad_watch = padding.EmbeddingWatch(pl_module, batch, self.settings.padding)
        if len(trainer.optimizers) > 1:
            self._watch_optimizer_steps(trainer.optimizers, pl_module)

    def _watch_optimizer_steps(self, optimizers, pl_module) -> None:
        """Record which parameters each optimizer step of this training_step changed: the
        per-optimizer signature (a generator phase that also steps the discriminator)."""
        named = list(pl_module.named_parameters())
        snapshot: list[torch.Tensor] = []

        def before(optimizer, args, kwargs):
            snapshot[:] = [p.detach().clone() for _, p in named]

        def after(index):
            def hook(optimizer, args, kwargs):
                moved = torch.stack(
                    [(p.detach() != old).any() for (_, p), old in zip(named, snapshot, strict=True)]
                ).tolist()  # one device sync per optimizer step
                changed = [n for (n, _), m in zip(named, moved, strict=True) if m]
                self.obs.optimizer_steps.append((index, changed))

            return hook

        for index, optimizer in enumerate(optimizers):
            self.handles.append(optimizer.register_step_pre_hook(before))
            self.handles.append(optimizer.register_step_post_hook(after(index)))

    def _watched_buffers(self, pl_module) -> dict[str, torch.Tensor]:
        """Norm layers' running statistics plus buffers named in `moving_buffers`, less the
        ones in `ignore_buffers`."""
        norm_owned = set()
        for mod_name, module in pl_module.named_modules():
            if isinstance(module, _NORM_TYPES) and module.track_running_stats:
                for buf_name, _ in module.named_buffers(recurse=False):
                    norm_owned.add(f"{mod_name}.{buf_name}" if mod_name else buf_name)
        return {
            name: buf
            for name, buf in pl_module.named_buffers()
            if (name in norm_owned or matches(name, self.settings.moving_buffers))
            and not matches(name, self.settings.ignore_buffers)
        }

    def _finite_hook(self, name: str):
        def hook(module, args, output):
            tensors = float_tensors(output)
            if tensors:  # a flag tensor, not a bool: no device sync per module
                flag = torch.stack([t.detach().isfinite().all() for t in tensors]).all()
                self.finite_flags.append((name, flag))

        return hook

    def _mode_hook(self, name: str):
        def hook(module, args):
            # A layer called in eval mode anywhere in the step counts as stuck in eval.
            if self.norm_modes[name] != "eval":
                self.norm_modes[name] = "train" if module.training else "eval"

        return hook

    def _input_hook(self, module, args, kwargs):
        if self.forward_call is None and not redirected(module):  # None: the call goes on
            self.forward_call = ForwardCall(args, kwargs)

    def _output_hook(self, module, args, output):
        if self.output is None:
            self.output = [t.detach() for t in float_tensors(output)]

    # -- during the step --------------------------------------------------------------------
    def on_before_backward(self, trainer, pl_module, loss):
        if self.obs.loss is None and isinstance(loss, torch.Tensor):
            self.obs.loss = float(loss.detach().float())

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        if self.first_done:
            return
        lrs = [float(g.get("lr", "nan")) for g in optimizer.param_groups]
        self.step_lrs += lrs
        self.obs.learning_rates += lrs
        self._record_grads(pl_module)

    def _record_grads(self, pl_module) -> None:
        # Several optimizers (a GAN) each see their own gradients: keep the largest seen.
        for name, param in pl_module.named_parameters():
            if param.grad is not None:
                current = param.grad.detach().abs().amax().float()
                seen = self.grads.get(name)
                self.grads[name] = current if seen is None else torch.maximum(seen, current)

    # -- after the step ---------------------------------------------------------------------
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.stepped = True
        accumulate = int(trainer.accumulate_grad_batches)
        last = batch_idx + 1 == trainer.num_training_batches
        if (batch_idx + 1) % accumulate and not last:
            return
        self.steps_done += 1
        if self.first_done:
            if self.steps_done >= self.obs.judged_step - 1 + self.settings.steps:
                trainer.should_stop = True  # `steps` steps from the judged one, no more
            return
        zero_lr = bool(self.step_lrs) and all(lr == 0 for lr in self.step_lrs)
        self.step_lrs = []
        if zero_lr and self.obs.zero_lr_steps < self.settings.zero_lr_steps and not last:
            # A warm-up from 0: nothing can move yet. Judge the next step instead, afresh.
            self.obs.zero_lr_steps += 1
            self.obs.judged_step += 1
            self._restart()
            return
        self.first_done = True
        for handle in self.handles:
            handle.remove()
        self.handles = []
        if self.unit_watch is not None:
            self.obs.units = self.unit_watch.remove()
        if self.pad_watch is not None:
            self.pad_watch.stop()
        if self.obs.loss is None:  # manual optimisation without backward, or no loss returned
            loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
            if isinstance(loss, torch.Tensor):
                self.obs.loss = float(loss.detach().float())
        if not self.grads:  # no optimizer step hook fired: read what backward left behind
            self._record_grads(pl_module)
        self._finish_params(pl_module)
        self._finish_buffers(pl_module)
        self._finish_finiteness()
        if self.settings.init_loss:
            self.obs.init = init_loss.observe(
                self.obs.loss, self.output or [], self.batch, self.settings.classes, self.task
            )

    def _restart(self) -> None:
        """Forget the step just taken; the next batch start snapshots and hooks again."""
        for handle in self.handles:
            handle.remove()
        if self.unit_watch is not None:
            self.unit_watch.remove()
        if self.pad_watch is not None:
            self.pad_watch.stop()
        self.handles, self.grads, self.finite_flags, self.norm_modes = [], {}, [], {}
        self.batch = self.output = self.unit_watch = self.pad_watch = self.forward_call = None
        self.obs.learning_rates = []
        self.obs.optimizer_steps = []

    def _finish_params(self, pl_module) -> None:
        named = list(pl_module.named_parameters())
        if not named:
            return
        changes = [(p.detach() - self.before[n]).abs().amax().float() for n, p in named]
        missing = torch.zeros((), device=changes[0].device)
        grads = [self.grads.get(n, missing).to(missing.device) for n, _ in named]
        values = torch.stack(changes + grads).tolist()  # one device sync for all parameters
        for index, (name, param) in enumerate(named):
            change, grad_max = values[index], values[len(named) + index]
            if name not in self.grads:
                grad, grad_max = "none", None
            elif grad_max != grad_max or grad_max == float("inf"):
                grad = "nonfinite"
            else:
                grad = "zero" if grad_max == 0 else "ok"
            self.obs.params.append(
                ParamObs(
                    name=name,
                    shape=tuple(param.shape),
                    requires_grad=param.requires_grad,
                    in_optimizer=id(param) in self.in_optimizer,
                    grad=grad,
                    grad_max=grad_max,
                    change=change,
                )
            )

    def _finish_buffers(self, pl_module) -> None:
        now = dict(pl_module.named_buffers())
        for name, before in self.buffers_before.items():
            module = name.rpartition(".")[0]
            self.obs.buffers.append(
                BufferObs(
                    name=name,
                    module=module,
                    moved=not torch.equal(before, now[name].detach()),
                    mode=self.norm_modes.get(module, "train"),
                )
            )

    def _finish_finiteness(self) -> None:
        if self.finite_flags:
            device = self.finite_flags[0][1].device
            flags = torch.stack([flag.to(device) for _, flag in self.finite_flags])
            bad = (~flags).nonzero()
            if len(bad):
                name, _ = self.finite_flags[int(bad[0])]
                self.obs.nonfinite_module = name
                self.obs.nonfinite_type = self.module_types.get(name, "")
        if self.output:
            values = torch.cat([t.flatten().float() for t in self.output])
            self._record_range(values, "the model's forward output during training_step")

    def _record_range(self, values: torch.Tensor, source: str) -> None:
        self.obs.output_source = source
        self.obs.output_count = values.numel()
        if values.numel():
            self.obs.output_min, self.obs.output_max = values.min().item(), values.max().item()
        if self.settings.output_range is not None:
            lo, hi = self.settings.output_range
            self.obs.output_outside = int(((values < lo) | (values > hi)).sum())

    # -- eval-mode probes, while the model is still on its device ---------------------------
    def on_train_end(self, trainer, pl_module):
        if self.batch is None:
            return
        spec = self.settings.padding
        if spec is not None:
            self.obs.padding = PaddingObs(spec.pad_value, spec.extra)
            if self.pad_watch is not None:
                self.obs.padding.embeddings = self.pad_watch.rows()
        needs_output = self.settings.output_range is not None and not self.output
        if not (needs_output or self.settings.batch_independence or spec is not None):
            return
        flags = {m: m.training for m in pl_module.modules()}
        pl_module.eval()
        try:
            with torch.inference_mode(False), torch.enable_grad():
                self._eval_probes(pl_module, needs_output)
        finally:
            for module, was_training in flags.items():
                module.training = was_training

    def _eval_probes(self, pl_module, needs_output: bool) -> None:
        x = source = None
        try:
            if self.settings.padding is not None:
                with torch.no_grad():
                    padding.invariance(
                        pl_module, self.batch, self.settings.padding, self.obs.padding
                    )
            if not (needs_output or self.settings.batch_independence):
                return
            x, source = probe_input(self.batch, self.settings.input_key, self.forward_call)
            if needs_output:
                with torch.no_grad():
                    out = float_tensors(x(pl_module))
                values = torch.cat([t.flatten().float() for t in out])
                self._record_range(values, "the model's forward output on the batch input")
            if self.settings.batch_independence:
                self.obs.eval_unstable = independence.unstable(pl_module, x)
                if self.obs.eval_unstable is None:
                    self.obs.batch_size, self.obs.dependence = independence.dependence(pl_module, x)
        except MltestError as exc:  # raised after fit returns, so Lightning does not wrap it
            self.error = exc
        except Exception as exc:
            if x is None and self.settings.padding is not None:
                self.error = ProjectError(
                    "checks.sanity.padding: predict_step on the first batch with padding "
                    f"appended raised {type(exc).__name__}: {exc}; check the padding settings "
                    "(input_key, mask_key) against the batch"
                )
            else:
                option = ("batch_independence" if self.settings.batch_independence
                          else "output_range")  # fmt: skip
                self.error = ProjectError(
                    f"checks.sanity: calling the model's {x.describe() if x else 'forward'} in "
                    "eval mode "
                    f"({source}) for {option} raised {type(exc).__name__}: {exc}; "
                    "set checks.sanity.input_key to the batch element forward takes, or turn "
                    "the option off"
                )
            self.error.__cause__ = exc
