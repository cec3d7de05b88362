"""Weight tying: parameters that are one tensor under several names (a language model's head
and its token embedding), recorded in the sanity baseline and compared on every run.

A tied pair that became two tensors trains two sets of weights where there was one: the model
still trains and every parameter moves, so nothing else in sanity sees it, and regression only
sees moved outputs. A pair that is one tensor now and was not is a notice (tying added).
Old baselines without the record are not compared.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from mltest.checks.sanity.findings import Finding
from mltest.checks.sanity.obs import StepObs, TyingObs
from mltest.errors import is_user_file

ASPECT = "shared parameters"


def observe(model) -> TyingObs:
    """Groups of parameter names that are one tensor, and where each module is built."""
    groups: dict[Any, list[str]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        groups.setdefault(_identity(param), []).append(name)
    inits: dict[str, str] = {}
    sites: dict[type, str] = {}  # one source lookup per class
    for path, module in model.named_modules(remove_duplicate=False):
        cls = type(module)
        if cls not in sites:
            sites[cls] = _init_site(cls)
        if sites[cls]:
            inits[path] = sites[cls]
    return TyingObs([g for g in groups.values() if len(g) > 1], inits)


def _identity(param) -> Any:
    """The same object, or the same elements of the same storage (a Parameter made from
    another's tensor); parameters without storage (meta) compare as objects."""
    try:
        pointer = param.untyped_storage().data_ptr()
    except (RuntimeError, NotImplementedError):
        pointer = 0
    if not pointer:
        return id(param)
    return (str(param.device), pointer, param.storage_offset(), tuple(param.shape), param.stride())


def _init_site(cls: type) -> str:
    """`GPT.__init__ at model.py:55` for a class defined in the user's files, else ""."""
    init = next((k.__dict__["__init__"] for k in cls.__mro__ if "__init__" in k.__dict__), None)
    try:
        filename = inspect.getsourcefile(init) if init else None
        line = inspect.getsourcelines(init)[1] if filename else 0
    except (OSError, TypeError):
        return ""
    if not filename or not is_user_file(filename):
        return ""
    return f"{cls.__name__}.__init__ at {Path(filename).name}:{line}"


def recorded(obs: StepObs) -> list[list[str]]:
    """What the baseline records: every shared group (even none, so a model that never tied
    is not mistaken for an old baseline)."""
    return obs.tying.shared if obs.tying else []


def judge(
    obs: StepObs, baseline: dict[str, Any] | None, update_command: str
) -> tuple[list[Finding], list[str]]:
    """Findings for tied groups that came apart, notices for groups newly tied."""
    if obs.tying is None or not baseline or "shared" not in baseline:
        return [], []
    now = obs.tying.shared
    group_of = {n: i for i, group in enumerate(now) for n in group}
    present = {p.name for p in obs.params} | set(group_of)
    findings = []
    for group in baseline["shared"]:
        here = [n for n in group if n in present]
        if not here:
            continue  # all renamed: the role-based comparison of what trains says so
        apart = len({group_of.get(n, n) for n in here})
        if apart > 1 or here[0] not in group_of:
            findings.append(_untied(group, here, apart, obs.tying.inits, update_command))
    tied_then = {n for group in baseline["shared"] for n in group}
    notices = [
        f"{_listed(group)} are one tensor now and were not in the baseline (weight tying "
        f"added?); `{update_command}` records the tying, so that removing it fails"
        for group in now
        if not tied_then & set(group)
    ]
    return findings, notices


def _untied(
    group: list[str], here: list[str], apart: int, inits: dict[str, str], update_command: str
) -> Finding:
    gone = [n for n in group if n not in here]
    message = f"{_listed(group)} were one tensor in the baseline; now "
    if len(here) == 1:
        message += f"{_listed(here)} shares it with no other parameter"
    else:
        message += {2: "two", 3: "three"}.get(apart, str(apart))
    if gone:
        message += f", and {_listed(gone)} no longer exist{'s' if len(gone) == 1 else ''}"
    parent = _common_parent(group)
    local = [n.removeprefix(parent + ".") if parent else n for n in group]
    site = inits.get(parent, "")
    where = f" ({site})" if site else ""
    tie = f"`self.{local[-1]} = self.{local[0]}`"
    return Finding(
        ASPECT,
        message + " (weight tying removed?)",
        f"Tie them again in `__init__`{where}, after both modules are built: {tie}. Untied, "
        "they train as two separate weights (more parameters, a different "
        "model) although every parameter still trains. Only if separate weights are intended: "
        f"`{update_command}` records them as correct, and the reviewer sees it in the "
        "baseline file's diff.",
        list(group),
        cause="weight tying removed",
    )


def _common_parent(names: list[str]) -> str:
    """The deepest module holding every name: `transformer` for `transformer.wte.weight` and
    `transformer.lm_head.weight`; "" for the model itself."""
    parts = [n.split(".")[:-1] for n in names]
    common = []
    for level in zip(*parts, strict=False):
        if len(set(level)) > 1:
            break
        common.append(level[0])
    return ".".join(common)


def _listed(names: list[str]) -> str:
    shown = [f"`{n}`" for n in names]
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]
