"""The sanity check's core findings about the first step: finite values, a loss that is not
zero, parameters that train or stay frozen, running statistics, output range, batch
independence. Torch-free: plain observations in, findings out, most fundamental first."""

from __future__ import annotations

from dataclasses import dataclass, field

from mltest.checks.sanity.obs import ParamObs, StepObs, matches
from mltest.checks.sanity.settings import Settings

SHOWN = 8  # names listed in a one-line summary; the details list every one


@dataclass
class Finding:
    """One thing the steps got wrong: which aspect (the symptom), the sentence, the names it
    points at, what to do, and the likely cause (grouping findings of several checks)."""

    aspect: str
    message: str
    hint: str = ""
    names: list[str] = field(default_factory=list)
    cause: str = ""  # the likely cause, shared by every check that can see it


def judge_step(obs: StepObs, settings: Settings) -> list[Finding]:
    """Every absolute problem of the step, most fundamental first (NaN explains the rest)."""
    found: list[Finding] = []
    found += _finiteness(obs)
    if obs.loss == 0.0:
        found.append(
            Finding(
                "loss is not zero",
                "the loss is exactly 0 at the first step: it cannot drive learning",
                "Check the loss: cross-entropy over a single output is always 0; so is a loss "
                "computed on constant or detached tensors.",
            )
        )
    found += _shared_optimizers(obs)
    found += _untrained(obs, settings)
    found += _frozen_moved(obs, settings)
    found += _stuck_buffers(obs)
    if settings.output_range is not None and obs.output_outside:
        lo, hi = settings.output_range
        found.append(
            Finding(
                "output range",
                f"{obs.output_outside} of {obs.output_count} output values lie outside "
                f"[{lo:g}, {hi:g}] (min {obs.output_min:.4g}, max {obs.output_max:.4g}; "
                f"{obs.output_source})",
                "A missing or wrong final activation (sigmoid/softmax), or the range in "
                "checks.sanity.output_range is wrong.",
            )
        )
    return found


def _shared_optimizers(obs: StepObs) -> list[Finding]:
    """Several optimizers that hold the same parameters: each one's step moves the other's
    network (the classic GAN bug: the generator's optimizer also updates the discriminator)."""
    owners: dict[str, list[int]] = {}
    for index, group in enumerate(obs.optimizer_params):
        for name in dict.fromkeys(group):
            owners.setdefault(name, []).append(index)
    shared = [n for n, held in owners.items() if len(held) > 1]
    if len(obs.optimizer_params) < 2 or not shared:
        return []
    pairs = sorted({tuple(owners[n]) for n in shared})
    which = ", ".join(" and ".join(f"optimizer {i}" for i in pair) for pair in pairs)
    return [
        Finding(
            "each optimizer steps its own parameters",
            f"{len(shared)} parameter(s) are in more than one optimizer ({which}): "
            f"{names(shared)}; each optimizer's step also moves them, so one network's step "
            "trains the other's (a generator's optimizer that updates the discriminator)",
            "Build each optimizer over its own network only, e.g. "
            "`Adam(self.generator.parameters())` and `Adam(self.discriminator.parameters())`, "
            "not `self.parameters()`.",
            shared,
            cause="optimizers sharing parameters",
        )
    ]


def _finiteness(obs: StepObs) -> list[Finding]:
    bad_grads = [p.name for p in obs.params if p.grad == "nonfinite"]
    loss_bad = obs.loss is not None and not finite(obs.loss)
    if not (loss_bad or obs.nonfinite_module is not None or bad_grads):
        return []
    parts = []
    if loss_bad:
        parts.append(f"the loss is {obs.loss:g}")
    if obs.nonfinite_module is not None:
        parts.append(f"the first non-finite output came from {_module(obs)}")
    elif loss_bad:
        parts.append("every module output was finite, so it arose in training_step's loss code")
    if bad_grads:
        parts.append(f"non-finite gradients in {names(bad_grads)}")
    return [
        Finding(
            "finite values",
            "; ".join(parts),
            "Look for log/sqrt/division of zero or negatives, an overflow, or a learning rate "
            "far too high in the module named above.",
            [obs.nonfinite_module or "", *bad_grads] if obs.nonfinite_module else bad_grads,
        )
    ]


def _module(obs: StepObs) -> str:
    if obs.nonfinite_module == "":
        return f"`{obs.model_name}.forward` itself (outside any submodule)"
    return f"module `{obs.nonfinite_module}` ({obs.nonfinite_type})"


_REASONS = {
    "none": "no gradient (not used in the loss: a layer never wired in, its output discarded, "
    "or a detached tensor)",
    "zero": "an all-zero gradient (its output is multiplied by zero or cut off)",
    "not optimized": "a gradient, but it is in no optimizer's param groups",
    "no change": "a gradient and is in the optimizer, yet did not change (learning rate 0?)",
    "vanishing": "a gradient a million times smaller than the largest one, too small to move "
    "it (e.g. a bias right before batch norm, which cancels it)",
}


def _untrained(obs: StepObs, settings: Settings) -> list[Finding]:
    by_reason: dict[str, list[str]] = {}
    largest = max((p.grad_max for p in obs.params if p.grad == "ok"), default=0.0)
    for p in obs.params:
        if not _trainable(p, settings) or matches(p.name, settings.allow_unchanged):
            continue
        reason = _why_untrained(p, largest)
        if reason:
            by_reason.setdefault(reason, []).append(p.name)
    if not by_reason:
        return []
    offending = [n for group in by_reason.values() for n in group]
    total = sum(_trainable(p, settings) for p in obs.params)
    lrs = ", ".join(f"{x:g}" for x in obs.learning_rates) or "unknown"
    at = f"step {obs.judged_step}" if obs.zero_lr_steps else "the step"
    parts = [
        f"{names(group)}: {_REASONS[reason]}"
        + (f" [learning rates at {at}: {lrs}]" if reason == "no change" else "")
        for reason, group in by_reason.items()
    ]
    hints = {
        "none": "Wire the layer into forward and use its output; remove a stray `.detach()`.",
        "zero": "Find what cuts the gradient off (a multiplication by zero, a dead activation).",
        "not optimized": "Build the optimizer over every trainable parameter "
        "(e.g. `self.parameters()`).",
        "no change": "Check the learning rate and scheduler at the first step (a warm-up that "
        "stays at 0 longer than checks.sanity.zero_lr_steps?).",
        "vanishing": "Drop the redundant parameter (bias=False before batch norm).",
    }
    hint = " ".join(hints[r] for r in by_reason) + (
        " If a parameter must not train, set requires_grad=False, or list it in "
        "checks.sanity.frozen (or allow_unchanged)."
    )
    return [
        Finding(
            "trainable parameters change",
            f"{len(offending)} of {total} trainable parameters did not train: " + "; ".join(parts),
            hint,
            offending,
        )
    ]


def _why_untrained(p: ParamObs, largest: float) -> str | None:
    if p.grad == "nonfinite":
        return None  # reported under finite values
    if p.grad in ("none", "zero"):
        return p.grad  # even if weight decay moved it: the loss does not reach it
    if p.moved:
        return None
    if not p.in_optimizer:
        return "not optimized"
    return "vanishing" if p.grad_max < 1e-6 * largest else "no change"


def _trainable(p: ParamObs, settings: Settings) -> bool:
    return p.requires_grad and not matches(p.name, settings.frozen)


def _frozen_moved(obs: StepObs, settings: Settings) -> list[Finding]:
    moved = [p for p in obs.params if not _trainable(p, settings) and p.moved]
    if not moved:
        return []
    how = [
        f"{p.name} ({'requires_grad=False' if not p.requires_grad else 'frozen in config'}, "
        f"{'in' if p.in_optimizer else 'not in'} the optimizer, change {p.change:.3g})"
        for p in moved[:SHOWN]
    ]
    extra = f" and {len(moved) - SHOWN} more" if len(moved) > SHOWN else ""
    return [
        Finding(
            "frozen parameters stay",
            f"{len(moved)} frozen parameter(s) changed: {', '.join(how)}{extra}",
            "Give the optimizer only the parameters that should train (e.g. "
            "`self.head.parameters()`, or filter on requires_grad), or drop the pattern from "
            "checks.sanity.frozen if they are meant to train now.",
            [p.name for p in moved],
        )
    ]


def _stuck_buffers(obs: StepObs) -> list[Finding]:
    stuck: dict[str, list[str]] = {}
    modes: dict[str, str] = {}
    for b in obs.buffers:
        if not b.moved:
            stuck.setdefault(b.module, []).append(b.name.rpartition(".")[2])
            modes[b.module] = b.mode
    if not stuck:
        return []
    why = {
        "eval": "ran in eval mode during the training step",
        "never ran": "never ran in the training step",
        "train": "ran in train mode, yet did not update",
    }
    # One sentence per reason, naming its layers: nine BatchNorms forced to eval read as one
    # cause, not nine repetitions of the same words.
    by_mode: dict[str, list[str]] = {}
    for module in stuck:
        by_mode.setdefault(modes[module], []).append(f"`{module or obs.model_name}`")
    parts = []
    for mode, layers in by_mode.items():
        bufs = sorted({b for m in stuck if modes[m] == mode for b in stuck[m]})
        subject = f"{len(layers)} layers ({names(layers)})" if len(layers) > 1 else layers[0]
        parts.append(f"{subject} {why[mode]} ({', '.join(bufs)} unchanged)")
    hint = (
        "Do not call `.eval()` on layers inside training (or override `train()` to keep them "
        "in eval) unless freezing them is intended; then list their buffers in "
        "checks.sanity.ignore_buffers."
    )
    return [
        Finding(
            "running statistics move",
            "running statistics did not move: " + "; ".join(parts),
            hint,
            [b.name for b in obs.buffers if not b.moved],
        )
    ]


def names(items: list[str]) -> str:
    """Up to SHOWN names, comma-separated, with a count of the rest."""
    extra = f" and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
    return ", ".join(items[:SHOWN]) + extra


def finite(value: float) -> bool:
    """Neither NaN nor infinite."""
    return value == value and abs(value) != float("inf")
