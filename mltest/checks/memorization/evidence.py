"""Facts that name the cause of a count far from the baseline, measured rather than guessed.

- the learning rates the optimizers started from, against the ones the baseline recorded;
- normalisation layers that do not train as the baseline's did (in eval mode while the model
  trains, or with frozen affine parameters);
- a label-leak probe: one training_step, no grad, on the first fixed batch, recording what the
  first module called receives and the target the loss is given; an input element whose value
  is fixed by the target on every example means the label reaches the network's input.

The fit records the first two (`SeedRun.lr_groups` from `lr_groups.py`, `SeedRun.idle_norms`);
the probe runs only when a count is much faster than the baseline. Torch is imported inside the
functions that need it: `lines` and the comparisons are pure.
"""

from __future__ import annotations

import contextlib
import copy
from typing import Any

_LOSSES = frozenset((
    "cross_entropy", "nll_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits",
    "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss",
))  # fmt: skip
_SHOWN = 3  # leaked elements named in the sentence


def idle_norms(module: Any) -> list[str]:
    """Normalisation layers that do not train as such: `bn (BatchNorm1d, eval mode)`,
    `ln (LayerNorm, frozen)`. Read after a training_step, so a step that puts one in eval
    mode is seen."""
    import torch

    kinds = (
        torch.nn.modules.batchnorm._NormBase,
        torch.nn.LayerNorm,
        torch.nn.GroupNorm,
        torch.nn.LocalResponseNorm,
    )
    found = []
    for name, layer in module.named_modules():
        if not isinstance(layer, kinds):
            continue
        params = list(layer.parameters(recurse=False))
        why = [w for w, idle in (
            ("eval mode", not layer.training),
            ("frozen", bool(params) and not any(p.requires_grad for p in params)),
        ) if idle]  # fmt: skip
        if why:
            found.append(f"{name or 'the model'} ({type(layer).__name__}, {', '.join(why)})")
    return found


def lr_fact(now: list[float], baseline: dict[str, Any] | None) -> str:
    """The learning rates against the baseline's, in words ('' when none were seen)."""
    if not now:
        return ""
    shown = ", ".join(f"{lr:g}" for lr in now)
    then = (baseline or {}).get("learning_rates")
    if then is None:
        return (
            f"the learning rate is {shown}; the baseline predates recording it, so compare it "
            "with the value in the base branch"
        )
    if [round(x, 12) for x in then] == [round(x, 12) for x in now]:
        return f"the learning rate is the baseline's ({shown}): not the cause"
    ratios = [f"{a / b:.3g}x" for a, b in zip(now, then, strict=False) if b]
    times = f" ({', '.join(ratios)} the baseline's)" if ratios else ""
    return (
        f"the learning rate changed: {shown}{times}, "
        f"where the baseline had {', '.join(f'{lr:g}' for lr in then)}"
    )


def norm_fact(now: list[str], baseline: dict[str, Any] | None) -> str:
    """Normalisation layers that stopped training as the baseline's did, in words ('' when
    nothing changed or nothing was seen)."""
    then = (baseline or {}).get("idle_norms")
    new = [n for n in now if then is None or n not in then]
    if new:
        since = " (not so in the baseline)" if then is not None else ""
        return f"normalisation layer(s) not training: {', '.join(new[:_SHOWN])}{since}"
    return ""


def leak_probe(model: Any, batch: Any) -> str | None:
    """A sentence naming input elements fixed by the loss target; '' when none is; None when
    the step showed no loss target and module input to compare. Steps a copy of `model`; the
    caller's is left untouched."""
    import torch

    model = copy.deepcopy(model)
    first: list[tuple[str, list[Any]]] = []
    targets: list[Any] = []

    def pre_hook(name):
        def hook(_module, args):
            if not first:
                first.append((name, [a for a in args if isinstance(a, torch.Tensor)]))

        return hook

    handles = [m.register_forward_pre_hook(pre_hook(n)) for n, m in model.named_modules()]
    shadowed = {n: model.__dict__[n] for n in ("log", "log_dict") if n in model.__dict__}
    model.log = model.log_dict = lambda *args, **kwargs: None  # no Trainer to log to
    try:
        with torch.no_grad(), _targets_recorder(targets), contextlib.suppress(Exception):
            model.training_step(batch, 0)  # a step that raises is judged by what it reached
    finally:
        for handle in handles:
            handle.remove()
        del model.log, model.log_dict
        model.__dict__.update(shadowed)
    if not first or not targets:
        return None
    where, inputs = first[0]
    judged = False
    for target in targets:
        for index, tensor in enumerate(inputs):
            leaked = fixed_by_target(tensor, target)
            judged = judged or leaked is not None
            if leaked:
                shown = ", ".join(_element(tensor.shape[1:], i) for i in leaked[:_SHOWN])
                more = f" and {len(leaked) - _SHOWN} more" if len(leaked) > _SHOWN else ""
                return (
                    f"label leak: input {index} of `{where or type(model).__name__}` has "
                    f"element(s) {shown}{more} whose value is fixed by the loss target on all "
                    f"{tensor.shape[0]} examples of the first batch: the label reaches the "
                    "network's input"
                )
    return "" if judged else None


def fixed_by_target(inputs: Any, target: Any) -> list[int] | None:
    """Flat indices (per example) of input elements that the target determines: for class
    targets, constant within every class and not constant overall; for a value target, a
    near-exact affine copy of it. None when this cannot be judged: not one target per
    example, or too few repeated labels to tell a copy from chance."""
    import torch

    if inputs.dim() < 2 or target.dim() == 0 or target.shape[0] != inputs.shape[0]:
        return None
    x = inputs.detach().reshape(inputs.shape[0], -1).double()
    y = target.detach()
    if y.dim() == 2 and y.shape[1] > 1 and y.is_floating_point():
        y = y.argmax(1)  # one-hot rows
    y = y.reshape(y.shape[0], -1)
    if y.shape[1] != 1:
        return None  # one target per position (segmentation, sequences): not judged here
    y = y[:, 0]
    if y.is_floating_point() and not _looks_like_classes(y):
        centred = x - x.mean(0)
        ty = (y.double() - y.double().mean())
        denom = centred.norm(dim=0) * ty.norm()
        corr = (centred * ty[:, None]).sum(0) / denom.clamp_min(1e-12)
        return torch.nonzero((corr.abs() > 0.9999) & (denom > 0)).flatten().tolist()
    groups = [x[y == c] for c in torch.unique(y)]
    shared = [g for g in groups if g.shape[0] >= 2]
    if len(shared) < 2:
        return None  # too few repeated labels to tell a copy from chance
    constant = torch.ones(x.shape[1], dtype=torch.bool)
    for g in shared:
        constant &= (g.max(0).values - g.min(0).values) <= 1e-6 * (g.abs().max(0).values + 1)
    varies = (x.max(0).values - x.min(0).values) > 1e-6
    return torch.nonzero(constant & varies).flatten().tolist()


def _element(shape: Any, flat: int) -> str:
    """`x[:, 0]` or `x[:, 0, 3, 5]`: a flat per-example index as a position."""
    position = []
    for size in reversed(tuple(shape)):
        position.append(flat % size)
        flat //= size
    return f"x[:, {', '.join(map(str, reversed(position)))}]"


def _looks_like_classes(y: Any) -> bool:
    """A float target holding a few whole numbers (0/1 labels given as floats)."""
    return bool((y == y.round()).all()) and len(set(y.tolist())) <= max(2, y.shape[0] // 4)


def _targets_recorder(targets: list):
    """A torch function mode that appends each loss call's target (its second tensor)."""
    import torch
    from torch.overrides import TorchFunctionMode

    class LossTargets(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            if getattr(func, "__name__", "") in _LOSSES:
                tensors = [a for a in args if isinstance(a, torch.Tensor)]
                target = (kwargs or {}).get("target")
                if target is None and len(tensors) > 1:
                    target = tensors[1]
                if isinstance(target, torch.Tensor):
                    targets.append(target)
            return func(*args, **(kwargs or {}))

    return LossTargets()
