"""How many times each optimizer steps in one `training_step`, against the baseline.

With several optimizers (a GAN under manual optimisation), the baseline records each
optimizer step of the judged `training_step` in order. An optimizer that now steps more often
(the discriminator's `opt_d.step()` also called in the generator phase) or less often (a phase
that steps the wrong optimizer) is named as such, first: the extra step is the cause, and what
follows from it (the discriminator's gradients from the generator loss piling onto its own,
read as gradients that nothing cleared) comes after it in the details.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from mltest.checks.sanity.baseline import describe_steps
from mltest.checks.sanity.findings import Finding
from mltest.checks.sanity.obs import StepObs


def judge(obs: StepObs, baseline: dict[str, Any] | None, update_command: str) -> list[Finding]:
    """Each optimizer's step count in the judged training_step against the baseline's."""
    if len(obs.optimizer_params) < 2 or not baseline or "optimizer_steps" not in baseline:
        return []
    then = Counter(row["optimizer"] for row in baseline["optimizer_steps"])
    now = Counter(i for i, _ in obs.optimizer_steps)
    changed = [(i, now[i], then[i]) for i in sorted(set(then) | set(now)) if now[i] != then[i]]
    if not changed:
        return []
    changed.sort(key=lambda c: c[1] < c[2])  # an optimizer that stepped more often first
    parts = [
        f"{owner(obs, i)} " + (f"stepped {times(n)}" if n else "did not step")
        + f" in one training_step, {times(was)} in the baseline"
        for i, n, was in changed
    ]  # fmt: skip
    before = [(row["optimizer"], row["changed"]) for row in baseline["optimizer_steps"]]
    more = any(n > was for _, n, was in changed)
    return [
        Finding(
            "optimizer steps per training_step",
            _upper("; ".join(parts))
            + f" (now {describe_steps(obs.optimizer_steps)}; in the baseline "
            f"{describe_steps(before)})",
            (
                "Look for an extra `.step()` call (the discriminator's optimizer also stepped "
                "in the generator phase): an extra step applies whatever gradients its "
                "parameters hold at that point, e.g. the generator loss's, added to the "
                "discriminator's own when nothing cleared them. "
                if more
                else "Look for a phase that steps another optimizer than its own, or a "
                "condition that skips a `.step()` call. "
            )
            + "Only if the schedule changed on purpose (several critic steps per generator "
            f"step), record it with `{update_command}`.",
            [name for i, _, _ in changed for name in _params(obs, i)],
            cause="optimizer stepped more often than in the baseline"
            if more
            else "optimizer stepped less often than in the baseline",
        )
    ]


def owner(obs: StepObs, index: int) -> str:
    """`the discriminator's optimizer (optimizer 1)`, from the modules its parameters are in."""
    modules = list(dict.fromkeys(n.split(".")[0] for n in _params(obs, index)))
    if len(modules) == 1 and modules[0] != "?":
        return f"the {modules[0]}'s optimizer (optimizer {index})"
    return f"optimizer {index}"


def _upper(text: str) -> str:
    return text[:1].upper() + text[1:]


def _params(obs: StepObs, index: int) -> list[str]:
    return obs.optimizer_params[index] if index < len(obs.optimizer_params) else []


def times(count: int) -> str:
    """`not at all`, `once`, `twice`, `3 times`."""
    return {0: "not at all", 1: "once", 2: "twice"}.get(count, f"{count} times")
