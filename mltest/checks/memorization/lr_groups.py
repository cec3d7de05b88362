"""Starting learning rates per optimizer and param group, with where each optimizer is built.

The fit records one entry per param group: `{"optimizer": 0, "class": "Adam", "group": 0,
"params": "generator.*", "lr": 0.005, "where": "model.py:63 in configure_optimizers"}`. The
baseline keeps them (`lr_groups`); a group whose starting rate differs from its baseline
group's is named with its optimizer, group, parameters and the line that built the optimizer.

The starting rate is `initial_lr` when a scheduler set one (the rate before the scheduler moves
it), so a scheduler added with the same starting rate is not a change. Baselines recorded
before `lr_groups` hold only the flat `learning_rates` list: each group is then compared with
the rate at its position in that list, and still named from this run's record.

`sites` and `groups` import torch; the comparison is pure.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any

from mltest.errors import is_user_file

_SAME = 1e-9  # relative difference under which two rates are the same number written apart


@contextlib.contextmanager
def sites():
    """While active, each optimizer built records the model code's line that built it:
    yields {id(optimizer): (optimizer, 'model.py:63 in configure_optimizers')}. Wrapping
    `Optimizer.__init__` sees every optimizer however `configure_optimizers` returns it (a
    list, a dict with a scheduler, a tuple of lists)."""
    import torch

    found: dict[int, tuple[Any, str]] = {}
    original = torch.optim.Optimizer.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        frame = sys._getframe(1)  # the subclass's __init__, then whoever built it
        while frame is not None and not is_user_file(frame.f_code.co_filename):
            frame = frame.f_back
        if frame is not None and id(self) not in found:  # a subclass calling super() twice
            name = Path(frame.f_code.co_filename).name
            found[id(self)] = (self, f"{name}:{frame.f_lineno} in {frame.f_code.co_name}")

    torch.optim.Optimizer.__init__ = init
    try:
        yield found
    finally:
        torch.optim.Optimizer.__init__ = original


def groups(trainer: Any, module: Any, where: dict[int, tuple[Any, str]]) -> list[dict]:
    """Each optimizer param group's record (module docstring), read at the start of training."""
    names = {id(p): n for n, p in module.named_parameters()}
    every = len(names)
    found = []
    for index, optimizer in enumerate(trainer.optimizers):
        site = where.get(id(optimizer), (None, ""))[1]
        for number, group in enumerate(optimizer.param_groups):
            params = [names.get(id(p), "") for p in group["params"]]
            found.append({
                "optimizer": index,
                "class": type(optimizer).__name__,
                "group": number,
                "params": owner(params, every),
                "lr": float(group.get("initial_lr", group.get("lr", 0.0))),
                "where": site,
            })  # fmt: skip
    return found


def owner(params: list[str], every: int) -> str:
    """The group's parameters in a few words: `generator.*`, `all parameters`, `head.weight`,
    `enc.*, dec.* and 2 more`."""
    named = [p for p in params if p]
    if not named:
        return ""
    if len(named) == 1:
        return named[0]
    if len(named) == every:
        return "all parameters"
    parts = [p.split(".") for p in named]
    common = []
    for level in zip(*parts, strict=False):
        if len(set(level)) != 1:
            break
        common.append(level[0])
    if common:
        return ".".join(common) + ".*"
    tops = list(dict.fromkeys(p[0] for p in parts))
    more = f" and {len(tops) - 2} more" if len(tops) > 2 else ""
    return ", ".join(f"{t}.*" for t in tops[:2]) + more


def fact(now: list[dict], baseline: dict[str, Any] | None) -> str:
    """The starting learning rates against the baseline's, in words ('' when none were seen).

    Each changed group is one clause naming it and where its optimizer is built; a run with
    every rate unchanged says so (the rate is then not the cause)."""
    if not now:
        return ""
    shown = ", ".join(f"{g['lr']:g}" for g in now)
    base = baseline or {}
    then = _pair(now, base.get("lr_groups"), base.get("learning_rates"))
    if then is None:
        return (
            f"the learning rate is {shown}; the baseline predates recording it, so compare it "
            "with the value in the base branch"
        )
    changed = [_changed(g, b) for g, b in zip(now, then, strict=True) if not _same(g, b)]
    if not changed:
        return f"the learning rate is the baseline's ({shown}): not the cause"
    return "; ".join(changed)


def _pair(now: list[dict], recorded: list[dict] | None, flat: list[float] | None):
    """The baseline's rate for each of this run's groups (None where it had no such group);
    None when the baseline recorded no rates at all."""
    if recorded is not None:
        # .get: a hand-edited baseline missing a key compares what it still holds.
        by_params = {(b.get("optimizer"), b.get("params")): b.get("lr") for b in recorded
                     if b.get("params")}  # fmt: skip
        by_index = {(b.get("optimizer"), b.get("group")): b.get("lr") for b in recorded}
        # The same parameters first: param groups reordered are not a change of rate.
        return [
            by_params.get((g["optimizer"], g["params"]), by_index.get((g["optimizer"], g["group"])))
            for g in now
        ]
    if flat is None:
        return None
    return [flat[i] if i < len(flat) else None for i in range(len(now))]


def _same(group: dict, then: float | None) -> bool:
    if then is None:
        return False
    return abs(group["lr"] - then) <= _SAME * max(abs(group["lr"]), abs(then))


def _changed(group: dict, then: float | None) -> str:
    """`optimizer 0 (Adam) group 0 (generator.*) starts at lr 0.5, 100x the baseline's
    0.005 — set at model.py:63 in configure_optimizers`."""
    params = f" ({group['params']})" if group["params"] else ""
    name = f"optimizer {group['optimizer']} ({group['class']}) group {group['group']}{params}"
    if then is None:
        how = f"is new: it starts at lr {group['lr']:g} and the baseline had no such group"
    elif then:
        how = f"starts at lr {group['lr']:g}, {group['lr'] / then:.3g}x the baseline's {then:g}"
    else:
        how = f"starts at lr {group['lr']:g} where the baseline's was 0"
    where = f" — set at {group['where']}" if group["where"] else ""
    return f"{name} {how}{where}"
