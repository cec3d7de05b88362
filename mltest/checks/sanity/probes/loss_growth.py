"""A loss that explodes over the steps on the same batch (`checks.sanity.loss_growth_limit`).

Repeated steps on one batch should bring its loss down, or at least keep it on its scale. A
loss that grows by orders of magnitude within three steps (0.139 → 3.1e4 → 1.79e9) is a step
far too large: a learning rate too high for the model, or inputs on a scale nothing
normalises (raw pixel values, prices in dollars), so that each step overshoots by more than
the last. A first loss that is finite followed by a NaN or an infinity is the same explosion
taken one step further. The finding names the step, the learning rates in use, the gradient
norms, the scale of the batch's inputs and the normalisation layers the model has, and
points at the likelier of the two causes.
"""

from __future__ import annotations

import contextlib

import pytorch_lightning
import torch

from mltest.checks.sanity.findings import Finding, finite, names
from mltest.checks.sanity.obs import ScaleObs, StepObs
from mltest.checks.sanity.tensors import batch_input, redirected
from mltest.errors import ProjectError

INPUT_SCALE = 10.0  # inputs beyond this absolute value read as not normalised
NORM_WORDS = ("norm",)  # BatchNorm, LayerNorm, GroupNorm, RMSNorm, a `Normalize` of one's own


class ScaleWatch(pytorch_lightning.Callback):
    """The first step's input scale (the tensors forward is called with, else the batch's
    input) and the model's normalisation layers."""

    error = None  # nothing here calls the model code

    def __init__(self, obs: StepObs, input_key):
        self.obs = obs
        self.input_key = input_key
        self.handle = None
        self.forward_seen = False

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self.obs.scale is not None:
            return
        norms = [
            n for n, m in pl_module.named_modules()
            if any(w in type(m).__name__.lower() for w in NORM_WORDS)
        ]  # fmt: skip
        self.obs.scale = ScaleObs(norms=norms)
        with contextlib.suppress(ProjectError):  # no input to tell: the forward call may
            where = "batch[0]" if self.input_key is None else f"batch[{self.input_key!r}]"
            self._measure([batch_input(batch, self.input_key)], where)
        self.handle = pl_module.register_forward_pre_hook(self._forward, with_kwargs=True)

    def _forward(self, module, args, kwargs):
        if not self.forward_seen and not redirected(module):  # the first call only
            self._measure([*args, *kwargs.values()], "forward's input")
            self.forward_seen = True

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.handle is not None:
            self.handle.remove()
            self.handle = None

    def _measure(self, values: list, where: str) -> None:
        tensors = [v for v in values if isinstance(v, torch.Tensor) and v.is_floating_point()]
        tensors = [t.detach().abs().nan_to_num(posinf=0, neginf=0) for t in tensors if t.numel()]
        if tensors:
            self.obs.scale.input_max = max(float(t.amax()) for t in tensors)
            self.obs.scale.where = where


def judge(obs: StepObs, limit: float) -> list[Finding]:
    """The first step whose loss is over `limit` times the first step's, or not finite."""
    losses = [s.loss for s in obs.steps]
    if len(losses) < 2 or losses[0] is None or not finite(losses[0]) or losses[0] <= 1e-6:
        return []
    first = losses[0]
    step = next(
        (
            k
            for k, loss in enumerate(losses[1:], start=1)
            if loss is not None and (not finite(loss) or loss > limit * first)
        ),
        None,
    )
    if step is None:
        return []
    loss = losses[step]
    shown = " → ".join(f"{x:.3g}" if x is not None else "—" for x in losses[: step + 1])
    growth = (
        f"it became {loss:g} at step {step + 1}"
        if not finite(loss)
        else f"step {step + 1}'s is {loss / first:.3g} times step 1's"
    )
    lrs = obs.steps[step].learning_rates or obs.learning_rates
    rates = ", ".join(f"{x:.3g}" for x in lrs) or "unknown"
    norms = [s.grad_norm for s in obs.steps[: step + 1]]
    grads = " → ".join(f"{x:.3g}" if x is not None else "—" for x in norms)
    scale = obs.scale or ScaleObs()
    raw = scale.input_max is not None and scale.input_max > INPUT_SCALE
    inputs = (
        f"; the inputs reach {scale.input_max:.3g} ({scale.where})"
        if scale.input_max is not None
        else ""
    )
    layers = (
        f"; normalisation layers: {names(scale.norms)}"
        if scale.norms
        else "; the model has no normalisation layer"
    )
    message = (
        f"the loss explodes over the steps on the same batch: {shown}; {growth} (more than "
        f"the {limit:g}x checks.sanity.loss_growth_limit allows); learning rate(s) {rates}; "
        f"gradient norm {grads}{inputs}{layers}"
    )
    if raw and not scale.norms:
        hint = (
            f"The inputs are not normalised (up to {scale.input_max:.3g}) and no layer "
            "normalises them, so each step overshoots: standardise the inputs in the data "
            "module (subtract the mean, divide by the standard deviation; pixels / 255), or add "
            f"a normalisation layer; else lower the learning rate ({rates})."
        )
        cause = "inputs not normalised"
    else:
        smaller = ", ".join(f"{x / 10:.3g}" for x in lrs) if lrs else "a tenth"
        hint = (
            f"Each step overshoots: the learning rate ({rates}) is too high for this model; "
            f"try {smaller} (look for a learning rate multiplied by a batch size or by 100, a "
            "scheduler that starts high), or clip gradients (`gradient_clip_val`)."
            + (
                ""
                if scale.norms
                else " A deep model without normalisation layers (a removed BatchNorm) is "
                "also prone to this."
            )
        )
        cause = "learning rate too high"
    return [Finding("loss does not explode", message, hint, cause=cause)]
