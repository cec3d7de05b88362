"""What a log-softmax loss receives: scores for `cross_entropy`, log-probabilities for
`nll_loss`, normalised over the class axis.

`cross_entropy` applies log_softmax itself: given probabilities (a softmax already in
forward) it trains on a squashed copy of them, and the model memorizes slowly or not at all.
`nll_loss` expects log-probabilities: given probabilities or raw scores it optimises nonsense.
A softmax or log_softmax over another axis (the batch, a spatial one) normalises the wrong
thing. None of these raise an error. During the first `training_step`, a torch function mode
sees every call of `cross_entropy` / `nll_loss` (`nn.CrossEntropyLoss` and `nn.NLLLoss` call
them) with the tensor it receives (class axis 1, or 0 for a single unbatched row), and the
model code's file:line that called it. Per call it tells:

- **probabilities**: values in [0, 1] that sum to 1 along an axis;
- **log-probabilities**: values <= 0 whose logsumexp along an axis is 0;
- **non-negative scores** (cross_entropy only, 16 values or more): a ReLU or sigmoid at the
  output end, so no class score can go below 0.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import pytorch_lightning
import torch
from torch.overrides import TorchFunctionMode

from mltest.checks.sanity.findings import Finding
from mltest.checks.sanity.obs import LossInputObs, StepObs
from mltest.checks.sanity.tensors import batch_input, redirected
from mltest.errors import ProjectError, is_user_file

LOSSES = ("cross_entropy", "nll_loss")
ATOL = 1e-3  # a row sums to 1, or its logsumexp is 0, within this


class LossInputWatch(pytorch_lightning.Callback):
    """Runs the first `training_step` under a mode that reads each log-softmax loss call."""

    error = None  # the mode only reads; the model code's own errors surface as they are

    def __init__(self, obs: StepObs, input_key=None):
        self.obs = obs
        self.input_key = input_key
        self.done = False
        self.inputs: list[torch.Tensor] = []  # the model's token inputs in the first step
        self.forward_seen = False

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self.done:
            return
        self.done = True
        with contextlib.suppress(ProjectError):  # forward's own arguments may tell instead
            self.inputs = _tokens([batch_input(batch, self.input_key)])
        step = pl_module.training_step
        own = pl_module.__dict__.get("training_step")  # one the model set on itself, kept
        calls = _LossCalls(self.obs.loss_inputs, self.inputs)

        def observed(*args, **kwargs):
            if own is None:  # once: the class's own method from now on
                del pl_module.training_step
            else:
                pl_module.training_step = own
            handle = pl_module.register_forward_pre_hook(self._forward, with_kwargs=True)
            try:
                with calls:
                    return step(*args, **kwargs)
            finally:
                handle.remove()

        pl_module.training_step = observed

    def _forward(self, module, args, kwargs):
        if not self.forward_seen and not redirected(module):  # the input forward takes
            self.forward_seen = True
            self.inputs[:] = _tokens([*args, *kwargs.values()]) or self.inputs


def _tokens(values: list) -> list[torch.Tensor]:
    """Integer tensors of positions (two axes or more): token ids."""
    return [
        v.detach() for v in values
        if isinstance(v, torch.Tensor) and v.dim() >= 2 and not v.is_floating_point()
        and v.dtype != torch.bool
    ]  # fmt: skip


class _LossCalls(TorchFunctionMode):
    def __init__(self, seen: list[LossInputObs], inputs: list[torch.Tensor]):
        super().__init__()
        self.seen = seen
        self.inputs = inputs

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in LOSSES and args and isinstance(args[0], torch.Tensor) and len(self.seen) < 8:
            obs = read(name, args[0].detach(), _caller())
            target = args[1] if len(args) > 1 else (kwargs or {}).get("target")
            obs.copies_input = _copies(target, self.inputs)
            obs.per_position = any(_per_position(args[0], x) for x in self.inputs)
            self.seen.append(obs)
        return func(*args, **(kwargs or {}))


def _per_position(scores: torch.Tensor, x: torch.Tensor) -> bool:
    """Whether the loss scores each position of the token input `x` (batch, positions):
    `[B, T, C]` / `[B, C, T]`, or flattened to `[B * T, C]` (`[B * (T - 1), C]` when shifted)."""
    batch, length = x.shape[0], x.shape[1]
    if scores.dim() >= 3:
        return scores.shape[0] == batch and any(n in (length, length - 1) for n in scores.shape[1:])
    return scores.dim() == 2 and scores.shape[0] in (batch * length, batch * (length - 1))


def _copies(target, inputs: list[torch.Tensor]) -> bool:
    """Whether the loss's targets are, value for value, token ids the model reads."""
    if not isinstance(target, torch.Tensor) or target.is_floating_point() or target.numel() < 2:
        return False
    flat = target.detach().reshape(-1)
    return any(
        x.numel() == flat.numel() and torch.equal(x.reshape(-1).to(flat.device), flat)
        for x in inputs
    )


def _caller() -> str:
    """`model.py:42 in training_step`: the model code's line that called the loss."""
    frame = sys._getframe(2)
    while frame is not None:
        if is_user_file(frame.f_code.co_filename):
            name = Path(frame.f_code.co_filename).name
            return f"{name}:{frame.f_lineno} in {frame.f_code.co_name}"
        frame = frame.f_back
    return ""


def read(loss: str, scores: torch.Tensor, where: str = "") -> LossInputObs:
    """What `scores` are along each axis: probabilities, log-probabilities or neither."""
    x = scores.double()
    axis = 1 if x.dim() >= 2 else 0
    obs = LossInputObs(loss=loss, where=where, shape=tuple(x.shape), class_axis=axis)
    if not x.numel() or not bool(x.isfinite().all()):
        return obs
    obs.low, obs.high = float(x.min()), float(x.max())
    for a in [axis, *(a for a in range(x.dim()) if a != axis)]:
        if x.shape[a] < 2:
            continue
        if obs.low >= -ATOL and obs.high <= 1 + ATOL and _near(x.sum(a), 1.0):
            obs.kind, obs.axis = "probabilities", a
            return obs
        if obs.high <= ATOL and _near(torch.logsumexp(x, a), 0.0):
            obs.kind, obs.axis = "log-probabilities", a
            return obs
    if obs.low >= 0 and x.numel() >= 16:
        obs.kind = "non-negative"
    return obs


def _near(values: torch.Tensor, target: float) -> bool:
    return bool(((values - target).abs() <= ATOL).all())


# --- judging -------------------------------------------------------------------------------


def judge(seen: list[LossInputObs]) -> list[Finding]:
    """The first call whose input is not what its loss expects."""
    for obs in seen:
        finding = _finding(obs)
        if finding is not None:
            return [finding]
    return []


def _finding(obs: LossInputObs) -> Finding | None:
    if obs.low is None:
        return None  # empty or not finite: the finite-values finding names it
    call = f"`{obs.loss}`" + (f" at {obs.where}" if obs.where else "")
    got = f"its input {list(obs.shape)} (values {obs.low:.3g} to {obs.high:.3g})"
    on_class = obs.axis == obs.class_axis
    axis = f"axis {obs.axis}" + (" (the class axis)" if on_class else "")
    classes = f"the class axis {obs.class_axis}"
    if obs.kind is None:
        if obs.loss == "nll_loss":
            return Finding(
                "what the loss receives",
                f"{call} receives raw scores, not log-probabilities: {got} is not normalised "
                "along any axis",
                f"Apply `log_softmax(scores, dim={obs.class_axis})` before nll_loss, or pass the "
                "raw scores to cross_entropy instead.",
                cause="raw scores given to nll_loss",
            )
        return None
    if obs.kind == "non-negative":
        return Finding(
            "what the loss receives",
            f"{call} receives scores that are all non-negative: {got}; cross_entropy applies "
            "log_softmax to scores that may be any real number, and an activation at the "
            "output end (a ReLU, a sigmoid) keeps every class score at or above 0",
            "Remove the final activation from the output layer: return the last Linear's "
            "output as the logits.",
            cause="activation before the loss",
        )
    if obs.kind == "log-probabilities" and on_class:
        return None  # cross_entropy's log_softmax leaves log-probabilities as they are
    if not on_class:
        op = "softmax" if obs.kind == "probabilities" else "log_softmax"
        return Finding(
            "what the loss receives",
            f"{call} receives {obs.kind} normalised over {axis}, not over {classes}: {got}; "
            f"a {op} over the wrong `dim`",
            f"Normalise over the classes (`{op}(scores, dim={obs.class_axis})`)"
            + (
                ", or pass the raw scores to cross_entropy, which applies log_softmax itself."
                if obs.loss == "cross_entropy"
                else "."
            ),
            cause="normalised over the wrong axis",
        )
    if obs.loss == "cross_entropy":
        return Finding(
            "what the loss receives",
            f"{call} receives probabilities: {got} sums to 1 along {axis}; cross_entropy "
            "applies log_softmax itself, so the softmax is applied twice: the scores it sees "
            "are squashed into [0, 1] and the loss can barely fall",
            "Return the raw scores (logits) from forward and pass them to cross_entropy; apply "
            "softmax only where probabilities are shown (predict_step).",
            cause="softmax applied twice",
        )
    return Finding(
        "what the loss receives",
        f"{call} receives probabilities, not log-probabilities: {got} sums to 1 along {axis}",
        f"Use `log_softmax(scores, dim={obs.class_axis})` instead of softmax before nll_loss, "
        "or pass the raw scores to cross_entropy.",
        cause="softmax where log_softmax was meant",
    )


def details(seen: list[LossInputObs]) -> list[str]:
    """One line per loss call read, for a pass as well as a fail."""
    if not seen:
        return []
    parts = []
    for obs in seen:
        values = f"values {obs.low:.3g} to {obs.high:.3g}" if obs.low is not None else "not finite"
        kind = obs.kind or "scores"
        axis = f" along axis {obs.axis}" if obs.axis is not None else ""
        where = f" at {obs.where}" if obs.where else ""
        parts.append(f"`{obs.loss}`{where}: {list(obs.shape)}, {kind}{axis} ({values})")
    return ["Log-softmax losses in the first step: " + "; ".join(parts) + ".", ""]
