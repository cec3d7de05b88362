"""Training sanity: one optimisation step of the user's own code, and what it must have done.

From a seeded fresh init, one step of `training_step` + `configure_optimizers` on the first
training batch (dataset order), run by Lightning. Afterwards every trainable parameter has a
gradient and has changed, every frozen one has not, norm layers' running statistics moved,
loss, outputs and gradients are finite, the loss is not 0, the optional output range and batch
independence hold, and the set of parameters that train is the one in the baseline.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field, field_validator

from mltest.checks.base import CheckContext, CheckSettings
from mltest.checks.sanity_obs import ParamObs, StepObs, matches
from mltest.errors import ConfigError
from mltest.report import Case, CheckResult, Status

KIND = "sanity"
SHOWN = 8  # names listed in a one-line summary; the details list every one


class Settings(CheckSettings):
    """`checks.sanity` in mltest.yaml."""

    seed: int | None = Field(None, description="seed of the fresh model; default: first of seeds")
    frozen: list[str] = Field(
        default_factory=list, description="glob patterns of parameters that must not change"
    )
    allow_unchanged: list[str] = Field(
        default_factory=list, description="trainable parameters allowed not to train this step"
    )
    moving_buffers: list[str] = Field(
        default_factory=list, description="extra buffers that must move (norm stats always do)"
    )
    ignore_buffers: list[str] = Field(
        default_factory=list, description="norm-layer buffers not required to move"
    )
    output_range: tuple[float, float] | None = Field(
        None, description="[lo, hi] every forward output value must lie in"
    )
    input_key: int | str | None = Field(
        None, description="where the model's input sits in a batch; default batch[0]"
    )
    batch_independence: bool = False

    @field_validator("output_range")
    @classmethod
    def _ordered(cls, value):
        if value is not None and not value[0] < value[1]:
            raise ValueError(f"expected [lo, hi] with lo < hi, got {list(value)}")
        return value


@dataclass
class Finding:
    """One thing the step got wrong: which aspect, the sentence, the names, what to do."""

    aspect: str
    message: str
    hint: str = ""
    names: list[str] = field(default_factory=list)


ASPECTS = (
    "finite values",
    "loss is not zero",
    "trainable parameters change",
    "frozen parameters stay",
    "running statistics move",
    "output range",
    "batch independence",
    "baseline",
)


def run(ctx: CheckContext, settings: Settings) -> CheckResult:
    """Observe one step, judge it, compare the set of trained parameters with the baseline."""
    seed = settings.seed if settings.seed is not None else ctx.seeds[0]
    from mltest.checks.sanity_step import observe_step  # torch: only where checks run

    obs = observe_step(ctx, settings, seed)
    _validate_patterns(obs, settings)
    findings = judge(obs, settings)
    notices = _notices(obs, settings)
    from mltest.seeding import nondeterminism_notice

    unstable = nondeterminism_notice(obs.nondeterministic)
    notices += [unstable] if unstable else []
    baseline, baseline_key = _baseline(ctx, obs.env_key)
    if ctx.update_baselines:
        status, summary, hint = _record(ctx, obs, findings, baseline)
    else:
        if baseline_key and baseline_key != obs.env_key:
            notices.append(
                f"no baseline for {obs.env_key}; compared with the one recorded for "
                f"{baseline_key} (which parameters train does not depend on the device)"
            )
        found, notice = compare_baseline(obs.params, baseline, obs.env_key, ctx.update_command)
        findings += found
        notices += [notice] if notice else []
        status, summary, hint = summarize(obs, findings)
    return CheckResult(
        name=ctx.name,
        kind=KIND,
        status=status,
        summary=summary,
        hint=hint,
        notices=notices,
        details=_details(obs, findings, baseline),
        metrics={
            "environment": obs.env_key,
            "seed": obs.seed,
            "loss": obs.loss,
            "learning_rates": obs.learning_rates,
            "parameters": len(obs.params),
            "trained": [p.name for p in obs.params if p.moved],
            "problems": {f.aspect: f.names for f in findings},
            "output_min": obs.output_min,
            "output_max": obs.output_max,
            "step_seconds": round(obs.seconds, 3),
        },
        cases=[
            Case(aspect, Status.FAIL, " ".join(f.message for f in findings if f.aspect == aspect))
            if any(f.aspect == aspect for f in findings)
            else Case(aspect, Status.PASS)
            for aspect in _aspects(settings, ctx.update_baselines)
        ],
    )


def summarize(obs: StepObs, findings: list[Finding]) -> tuple[Status, str, str]:
    """The verdict, the sentence a person reads (the root-cause finding first), the hint."""
    if not findings:
        trained = sum(p.moved for p in obs.params)
        loss = f"loss {obs.loss:.4g}" if obs.loss is not None else "loss not reported"
        return (
            Status.PASS,
            f"one step trained {trained} of {len(obs.params)} parameters as expected; {loss}",
            "",
        )
    first = findings[0]
    more = f" (+{len(findings) - 1} more problem(s), see details)" if len(findings) > 1 else ""
    return Status.FAIL, first.message + more, first.hint


def judge(obs: StepObs, settings: Settings) -> list[Finding]:
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
    mixed = {i: js for i, js in (obs.dependence or {}).items() if js}
    if mixed:
        i, js = next(iter(mixed.items()))
        shown = ", ".join(map(str, js[:SHOWN])) + (" ..." if len(js) > SHOWN else "")
        found.append(
            Finding(
                "batch independence",
                f"in eval mode, output {i} depends on other samples of the batch "
                f"(inputs {shown} of {obs.batch_size}): the model mixes samples",
                "Look for a `view`/`reshape` that folds the batch dimension into another one "
                "(e.g. after a transpose), or a normalisation over the batch in eval mode.",
            )
        )
    return found


def _finiteness(obs: StepObs) -> list[Finding]:
    bad_grads = [p.name for p in obs.params if p.grad == "nonfinite"]
    loss_bad = obs.loss is not None and not _finite(obs.loss)
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
        parts.append(f"non-finite gradients in {_names(bad_grads)}")
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
    names = [n for group in by_reason.values() for n in group]
    total = sum(_trainable(p, settings) for p in obs.params)
    lrs = ", ".join(f"{x:g}" for x in obs.learning_rates) or "unknown"
    parts = [
        f"{_names(group)}: {_REASONS[reason]}"
        + (f" [learning rates at the step: {lrs}]" if reason == "no change" else "")
        for reason, group in by_reason.items()
    ]
    hints = {
        "none": "Wire the layer into forward and use its output; remove a stray `.detach()`.",
        "zero": "Find what cuts the gradient off (a multiplication by zero, a dead activation).",
        "not optimized": "Build the optimizer over every trainable parameter "
        "(e.g. `self.parameters()`).",
        "no change": "Check the learning rate and scheduler at the first step (a warm-up from 0?).",
        "vanishing": "Drop the redundant parameter (bias=False before batch norm).",
    }
    hint = " ".join(hints[r] for r in by_reason) + (
        " If a parameter must not train, set requires_grad=False, or list it in "
        "checks.sanity.frozen (or allow_unchanged)."
    )
    return [
        Finding(
            "trainable parameters change",
            f"{len(names)} of {total} trainable parameters did not train: " + "; ".join(parts),
            hint,
            names,
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
    parts = [
        f"`{module or obs.model_name}` {why[modes[module]]} ({', '.join(bufs)} unchanged)"
        for module, bufs in stuck.items()
    ]
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


# --- the baseline: which parameters train ------------------------------------------------


def _row(p: ParamObs) -> str:
    shape = "x".join(map(str, p.shape)) or "scalar"
    return f"{p.name} {shape} {'trains' if p.moved else 'still'}"


def _parse(row: str) -> tuple[str, str, bool]:
    name, shape, state = row.rsplit(" ", 2)
    return name, shape, state == "trains"


def compare_baseline(
    params: list[ParamObs], baseline: dict[str, Any] | None, env_key: str, update_command: str
) -> tuple[list[Finding], str | None]:
    """Findings and a notice from comparing the parameters that moved with the baseline.

    Renamed submodules are a harmless refactor: when names differ but shapes and train/still
    flags agree position by position, it passes with a notice to record the new names.
    """
    if baseline is None:
        return [
            Finding(
                "baseline",
                f"no baseline of which parameters train is recorded for {env_key}",
                f"Record one with `{update_command}` and commit the baseline file.",
            )
        ], None
    then = [_parse(r) for r in baseline["parameters"]]
    now = [_parse(_row(p)) for p in params]
    if {n: t for n, _, t in then} == {n: t for n, _, t in now}:
        return [], None
    if [(s, t) for _, s, t in then] == [(s, t) for _, s, t in now]:
        renamed = [(a[0], b[0]) for a, b in zip(then, now, strict=True) if a[0] != b[0]]
        shown = ", ".join(f"{a} → {b}" for a, b in renamed[:3])
        return [], (
            f"{len(renamed)} parameter(s) were renamed since the baseline ({shown}); the same "
            f"parameters train. Record the new names with `{update_command}`."
        )
    trained_then = {n for n, _, t in then if t}
    trained_now = {n for n, _, t in now if t}
    stopped = [n for n, _, _ in then if n in trained_then - trained_now]
    started = [n for n, _, _ in now if n in trained_now - trained_then]
    parts = []
    if stopped:
        parts.append(f"trained in the baseline but not now: {_names(stopped)}")
    if started:
        parts.append(f"train now but did not in the baseline: {_names(started)}")
    return [
        Finding(
            "baseline",
            "the set of parameters that train changed; " + "; ".join(parts),
            "If a layer was frozen or unfrozen on purpose, record the new set with "
            f"`{update_command}` and commit the baseline file.",
            stopped + started,
        )
    ], None


def _baseline(ctx: CheckContext, env_key: str) -> tuple[dict | None, str | None]:
    """This environment's entry, else another environment's: the trained set is device-free."""
    entry = ctx.baselines.get(ctx.name, env_key)
    if entry is not None:
        return entry, env_key
    for key in ctx.baselines.keys(ctx.name):
        return ctx.baselines.get(ctx.name, key), key
    return None, None


def _record(ctx, obs: StepObs, findings: list[Finding], previous) -> tuple[Status, str, str]:
    """Under `mltest baseline update`: record the trained set when the step is sane."""
    if findings:
        return Status.FAIL, f"baseline not recorded: {findings[0].message}", findings[0].hint
    import pytorch_lightning
    import torch

    rows = [_row(p) for p in obs.params]
    ctx.baselines.put(
        ctx.name,
        obs.env_key,
        {
            "parameters": rows,
            "seed": obs.seed,
            "torch": torch.__version__,
            "lightning": pytorch_lightning.__version__,
            "recorded": datetime.date.today().isoformat(),
        },
    )
    trained = sum(p.moved for p in obs.params)
    was = ""
    if previous is not None:
        was = " (unchanged)" if previous["parameters"] == rows else " (changed)"
    return (
        Status.PASS,
        f"baseline recorded for {obs.env_key}: {trained} of {len(rows)} parameters train{was}",
        "",
    )


# --- helpers -------------------------------------------------------------------------------


def _validate_patterns(obs: StepObs, settings: Settings) -> None:
    """A `frozen` pattern that matches nothing is a stale claim (a renamed module): say so."""
    names = [p.name for p in obs.params]
    for pattern in settings.frozen:
        if not any(matches(n, [pattern]) for n in names):
            raise ConfigError(
                f"checks.sanity.frozen: pattern {pattern!r} matches no parameter of "
                f"{obs.model_name}; parameters are named like {', '.join(names[:4])}; "
                "fix the pattern (globs, e.g. `backbone.*`)"
            )


def _notices(obs: StepObs, settings: Settings) -> list[str]:
    notices = []
    if obs.loss is None:
        notices.append("training_step gave no loss to check (manual optimisation?)")
    names = [p.name for p in obs.params]
    for pattern in settings.allow_unchanged:
        if not any(matches(n, [pattern]) for n in names):
            notices.append(f"checks.sanity.allow_unchanged: {pattern!r} matches no parameter")
    if settings.batch_independence and (obs.batch_size or 0) < 2:
        notices.append("batch independence not checked: the first batch holds one sample")
    return notices


def _aspects(settings: Settings, updating: bool) -> list[str]:
    skip = set()
    if settings.output_range is None:
        skip.add("output range")
    if not settings.batch_independence:
        skip.add("batch independence")
    if updating:
        skip.add("baseline")
    return [a for a in ASPECTS if a not in skip]


def _names(names: list[str]) -> str:
    extra = f" and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
    return ", ".join(names[:SHOWN]) + extra


def _finite(value: float) -> bool:
    return value == value and abs(value) != float("inf")


def _details(obs: StepObs, findings: list[Finding], baseline: dict | None) -> str:
    loss = f"{obs.loss:.6g}" if obs.loss is not None else "not reported"
    lrs = ", ".join(f"{x:g}" for x in obs.learning_rates) or "—"
    lines = [
        f"One step of `{obs.model_name}` from seed {obs.seed} on the first training batch: "
        f"loss {loss}, learning rate(s) {lrs}, {obs.seconds:.2f} s.",
        "",
    ]
    if findings:
        lines += [f"- **{f.aspect}**: {f.message}" for f in findings] + [""]
    flagged = {n for f in findings for n in f.names}
    rows = [p for p in obs.params if p.name in flagged] or obs.params
    if len(obs.params) <= 60:
        rows = obs.params
    lines += [
        "| parameter | shape | requires_grad | in optimizer | max abs grad | max change |",
        "|---|---|---|---|---|---|",
    ]
    for p in rows:
        grad = f"{p.grad_max:.3g}" if p.grad_max is not None else "none"
        mark = " ⚠" if p.name in flagged else ""
        lines.append(
            f"| `{p.name}`{mark} | {tuple(p.shape)} | {p.requires_grad} | "
            f"{p.in_optimizer} | {grad} | {p.change:.3g} |"
        )
    if len(rows) < len(obs.params):
        lines.append(f"\n{len(obs.params) - len(rows)} more parameters trained as expected.")
    if obs.buffers:
        lines += ["", "| buffer | module ran in | moved |", "|---|---|---|"]
        lines += [f"| `{b.name}` | {b.mode} | {b.moved} |" for b in obs.buffers]
    if obs.output_min is not None:
        lines += [
            "",
            f"Output range: [{obs.output_min:.4g}, {obs.output_max:.4g}] ({obs.output_source}).",
        ]
    if baseline is not None and any(f.aspect == "baseline" for f in findings):
        then = [r.rsplit(" ", 2)[0] for r in baseline["parameters"] if r.endswith(" trains")]
        now = [p.name for p in obs.params if p.moved]
        lines += [
            "",
            f"Trained in the baseline ({len(then)}): {', '.join(then) or '—'}",
            "",
            f"Train now ({len(now)}): {', '.join(now) or '—'}",
        ]
    return "\n".join(lines)
