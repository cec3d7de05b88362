"""The sanity baseline: which parameters train, the loss at init, the activation modules.

Recorded by `mltest baseline update` when the steps are sane; compared on every other run.
"""

from __future__ import annotations

import datetime
from typing import Any

from mltest.checks.base import CheckContext
from mltest.checks.sanity.findings import Finding, names
from mltest.checks.sanity.obs import ParamObs, StepObs
from mltest.checks.sanity.probes import tying
from mltest.report import Status


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

    Compared by role, not only by name. A parameter under the same name fails when it trained
    and stops, or was still and trains. Parameters that are gone or new (a renamed, split or
    fused layer) are compared as a whole: it fails only when fewer elements train among the
    new than among the gone while some new one is still (something that trained stopped), or
    more train while some gone one was still (something frozen trains); otherwise it is a
    notice, e.g. a fused q/k/v projection split into three whose parameters all train.
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
    then_by, now_by = {n: t for n, _, t in then}, {n: t for n, _, t in now}
    if then_by == now_by:
        return [], None
    stopped = [n for n, _, t in then if t and now_by.get(n) is False]
    started = [n for n, _, t in now if t and then_by.get(n) is False]
    gone = [(n, _size(s), t) for n, s, t in then if n not in now_by]
    new = [(n, _size(s), t) for n, s, t in now if n not in then_by]
    parts = []
    if stopped:
        parts.append(f"trained in the baseline but not now: {names(stopped)}")
    if started:
        parts.append(f"train now but did not in the baseline: {names(started)}")
    trained_gone = sum(size for _, size, t in gone if t)
    trained_new = sum(size for _, size, t in new if t)
    new_still = [n for n, _, t in new if not t]
    gone_still = [n for n, _, t in gone if not t]
    if trained_new < trained_gone and new_still:  # part of what trained now sits still
        parts.append(
            f"{names(new_still)} do not train, in place of the baseline's "
            f"{names([n for n, _, t in gone if t])}, which trained ({trained_new} of "
            f"{trained_gone} elements train now)"
        )
        stopped += new_still
    if trained_new > trained_gone and gone_still:  # what was frozen may train now
        trains = [n for n, _, t in new if t]
        parts.append(
            f"{names(trains)} train, in place of the baseline's {names(gone_still)}, which "
            f"did not ({trained_new} elements train now, {trained_gone} did)"
        )
        started += trains
    if not parts:
        return [], _restructured(gone, new, update_command)
    return [
        Finding(
            "baseline",
            "the set of parameters that train changed; " + "; ".join(parts),
            "Check where these parameters are frozen or left out: `requires_grad_(False)`, "
            "a module missing from configure_optimizers' parameters, a `.detach()` or "
            "`torch.no_grad()` around its forward, a layer no longer called. Only if the "
            f"change in what trains is intended: `{update_command}` records the current set "
            "as correct, and the reviewer sees it in the baseline file's diff.",
            stopped + started,
        )
    ], None


def _size(shape: str) -> int:
    """Elements of a parameter from its row's shape (`16x6`, `scalar`)."""
    size = 1
    for dim in shape.split("x") if shape != "scalar" else []:
        size *= int(dim)
    return size


def _restructured(gone: list, new: list, update_command: str) -> str:
    """The notice for renamed, split or fused parameters whose training is unchanged."""
    renamed = len(gone) == len(new) and all(
        a[1:] == b[1:] for a, b in zip(gone, new, strict=True)
    )
    shown = ", ".join(f"{a[0]} → {b[0]}" for a, b in zip(gone[:3], new[:3], strict=False))
    parts = [
        f"{names([p[0] for p in group])} ({sum(p[1] for p in group)} elements) {verb}"
        for group, verb in ((gone, "no longer exist"), (new, "are new"))
        if group
    ]
    if renamed:
        what = f"{len(gone)} parameter(s) were renamed since the baseline ({shown})"
    else:
        what = f"parameters changed since the baseline: {'; '.join(parts)}"
    return (
        f"{what}; nothing that trained stopped and nothing frozen trains. Record the new "
        f"names with `{update_command}`: it records the current set as correct."
    )


def step_rows(obs: StepObs) -> list[dict[str, Any]]:
    """The per-optimizer signature as baseline rows: each optimizer step of the judged
    training_step, in order, with the parameters it changed."""
    return [{"optimizer": i, "changed": list(changed)} for i, changed in obs.optimizer_steps]


def compare_optimizer_steps(
    obs: StepObs, baseline: dict[str, Any] | None, update_command: str
) -> tuple[list[Finding], str | None]:
    """Findings and a notice from comparing which parameters each optimizer step changed
    with the baseline (models with several optimizers only).

    Catches a step that changes another network's parameters even when the optimizers hold
    no parameter in common. An optimizer that steps more or less often, and changes only its
    own parameters, is `probes.step_count`'s finding alone. Renamed modules compare by
    position.
    """
    if len(obs.optimizer_params) < 2 or baseline is None:
        return [], None
    if "optimizer_steps" not in baseline:
        return [], (
            "the baseline predates the per-optimizer signature (which parameters each "
            f"optimizer's step changed); record it again with `{update_command}` to compare it"
        )
    rename = _renames(baseline["parameters"], [_row(p) for p in obs.params])
    then = [
        (row["optimizer"], [rename.get(n, n) for n in row["changed"]])
        for row in baseline["optimizer_steps"]
    ]
    now = [(i, list(changed)) for i, changed in obs.optimizer_steps]
    if [(i, set(c)) for i, c in then] == [(i, set(c)) for i, c in now]:
        return [], None
    parts = [f"now {describe_steps(now)}", f"in the baseline {describe_steps(then)}"]
    owned = {}  # parameter -> the optimizers whose steps changed it in the baseline
    for i, changed in then:
        for name in changed:
            owned.setdefault(name, set()).add(i)
    strays = [
        (i, [n for n in changed if n in owned and i not in owned[n]]) for i, changed in now
    ]
    for i, names_ in strays:
        if names_:
            whose = sorted({j for n in names_ for j in owned[n]})
            parts.append(
                f"optimizer {i}'s step now changes {names(names_)}, which in the baseline only "
                f"optimizer {' and '.join(map(str, whose))}'s step changed"
            )
    counted = {i for i in {j for j, _ in now + then} if _count(now, i) != _count(then, i)}
    steps_now, steps_then = ({(i, frozenset(c)) for i, c in s} for s in (now, then))
    if not any(c for _, c in strays) and all(i in counted for i, _ in steps_now ^ steps_then):
        return [], None  # the same steps, repeated or left out: probes.step_count names it
    changed_names = sorted({n for _, c in now for n in c} ^ {n for _, c in then for n in c})
    return [
        Finding(
            "what each optimizer's step changes",
            "the optimizer steps of one training_step changed other parameters than in the "
            "baseline: " + "; ".join(parts),
            "Each phase should step only its own optimizer on its own loss: e.g. the "
            "generator phase calls `opt_g.step()` only, and the discriminator's gradients "
            "from the generator loss are cleared (`opt_d.zero_grad()`) before D's next step. "
            f"Only if the new steps are intended: `{update_command}` records them as correct.",
            list(dict.fromkeys(n for _, c in strays for n in c)) or changed_names,
            cause="a step that changes another network's parameters"
            if any(names_ for _, names_ in strays)
            else "",
        )
    ], None


def _count(steps: list[tuple[int, list[str]]], index: int) -> int:
    return sum(1 for i, _ in steps if i == index)


def describe_steps(steps: list[tuple[int, list[str]]]) -> str:
    """`optimizer 1 → discriminator (4), then optimizer 0 → generator (4)`."""
    if not steps:
        return "no optimizer step"
    return ", then ".join(f"optimizer {i} → {_modules(changed)}" for i, changed in steps)


def _modules(changed: list[str]) -> str:
    """Parameter names grouped by their top-level module: `generator (4), head.bias (1)`."""
    if not changed:
        return "nothing"
    groups: dict[str, int] = {}
    for name in changed:
        groups[name.split(".")[0]] = groups.get(name.split(".")[0], 0) + 1
    return ", ".join(f"{g} ({n})" for g, n in groups.items())


def _renames(then_rows: list[str], now_rows: list[str]) -> dict[str, str]:
    """Baseline name -> current name when the rows agree position by position but for names."""
    then = [_parse(r) for r in then_rows]
    now = [_parse(r) for r in now_rows]
    if [(s, t) for _, s, t in then] != [(s, t) for _, s, t in now]:
        return {}
    return {a[0]: b[0] for a, b in zip(then, now, strict=True) if a[0] != b[0]}


def lookup(ctx: CheckContext, env_key: str) -> tuple[dict | None, str | None]:
    """This environment's entry, else another environment's: the trained set is device-free."""
    entry = ctx.baselines.get(ctx.name, env_key)
    if entry is not None:
        return entry, env_key
    for key in ctx.baselines.keys(ctx.name):
        return ctx.baselines.get(ctx.name, key), key
    return None, None


def record(
    ctx, obs: StepObs, findings: list[Finding], previous, unit_rows: list[str]
) -> tuple[Status, str, str, list[str]]:
    """Under `mltest baseline update`: record the steps' facts when the steps are sane.

    The loss at init is a soft finding: a model that starts away from ln C on purpose
    (pretrained) records its own first loss, with a notice, and is compared with it from then on.
    """
    soft = [f for f in findings if f.aspect == "loss at init"]
    hard = [f for f in findings if f.aspect != "loss at init"]
    if hard:
        return Status.FAIL, f"baseline not recorded: {hard[0].message}", hard[0].hint, []
    import pytorch_lightning
    import torch

    rows = [_row(p) for p in obs.params]
    entry: dict[str, Any] = {"parameters": rows}
    if len(obs.optimizer_params) > 1:
        entry["optimizer_steps"] = step_rows(obs)
    if obs.init is not None:
        entry["init_loss"] = round(obs.init.loss, 6)
    entry["activations"] = unit_rows  # even none: a model without activations is not stale
    entry["shared"] = tying.recorded(obs)  # even none, likewise
    entry.update(
        seed=obs.seed,
        torch=torch.__version__,
        lightning=pytorch_lightning.__version__,
        recorded=datetime.date.today().isoformat(),
    )
    ctx.baselines.put(ctx.name, obs.env_key, entry)
    trained = sum(p.moved for p in obs.params)
    was = ""
    if previous is not None:
        was = " (unchanged)" if previous["parameters"] == rows else " (changed)"
    notices = [
        f"recorded although {f.message[0].lower()}{f.message[1:]}; from now on the first loss is "
        "compared with this one"
        for f in soft
    ]
    return (
        Status.PASS,
        f"baseline recorded for {obs.env_key}: {trained} of {len(rows)} parameters train{was}",
        "",
        notices,
    )
