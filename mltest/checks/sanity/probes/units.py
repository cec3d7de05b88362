"""Dead and saturated units, per activation module, on the first batch.

Forward hooks on activation modules during the first step: a unit (one position of the
module's output, batch dimension excluded) of a ReLU-like module is dead when it is never
positive on the batch, i.e. its input never is: ReLU and ReLU6 output 0 there, and the smooth
ReLUs of transformers and modern CNNs (GELU, SiLU/swish, Mish, Hardswish, ELU, SELU, CELU)
sit on a tail whose gradient vanishes; LeakyReLU/PReLU units there learn only through the
slope. For tanh/sigmoid/hardtanh modules the share is that of output values at a limit
(|tanh| > 0.99, sigmoid outside [0.01, 0.99], hardtanh at min/max), where the gradient is ~0.
Activation modules of other libraries (transformers' `GELUActivation`, timm's `Swish`) are
recognised by their class name: a module without submodules whose name holds gelu, silu,
swish, mish or relu (ReLU-like), or tanh or sigmoid (saturating). Healthy models have some of
both, so the shares are compared with the baseline, module by module; only a share near 1
fails without one. The baseline also lists which activation modules ran: one that no longer
runs (a missing ReLU makes two Linear layers one linear map) is named.
"""

from __future__ import annotations

import torch
from torch import nn

from mltest.checks.sanity.findings import Finding, names
from mltest.checks.sanity.obs import UnitObs

_DEAD = (
    nn.ReLU,
    nn.ReLU6,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Hardswish,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.LeakyReLU,
    nn.PReLU,
)
_SATURATING = (nn.Tanh, nn.Sigmoid, nn.Hardtanh, nn.Hardsigmoid)
# Class-name parts of other libraries' activation modules (transformers, timm), lower case.
_DEAD_NAMES = ("gelu", "silu", "swish", "mish", "relu")
_SATURATING_NAMES = ("tanh", "sigmoid")
ALWAYS = 0.95  # share of dead/saturated units that fails without a baseline
RISE = 0.3  # rise of the share over the baseline's that fails ...
AT_LEAST = 0.5  # ... when the share is now at least this


class UnitWatch:
    """Forward hooks: per ReLU unit, whether it was ever positive on the batch; per saturating
    module, how many of its values sat at a limit."""

    def __init__(self, model: nn.Module):
        self.alive: dict[str, torch.Tensor] = {}  # dead kind: unit -> ever positive
        self.stuck: dict[str, list] = {}  # saturated kind: [values at a limit, values]
        self.kinds: dict[str, tuple[str, str]] = {}
        self.handles = []
        for name, module in model.named_modules():
            kind = unit_kind(module)
            if kind is not None:
                self.kinds[name] = (type(module).__name__, kind)
                self.handles.append(module.register_forward_hook(self._hook(name, module, kind)))

    def _hook(self, name, module, kind):
        def hook(mod, args, output):
            if not isinstance(output, torch.Tensor) or output.dim() < 1 or not output.numel():
                return
            y = output.detach()
            if kind == "saturated":  # no sync: tensors summed, read once at the end
                count = _at_limit(module, y).sum()
                seen = self.stuck.setdefault(name, [0, 0])
                seen[0], seen[1] = seen[0] + count, seen[1] + y.numel()
                return
            alive = (y > 0).reshape(y.shape[0], -1).any(dim=0) if y.dim() > 1 else (y > 0).any()
            seen = self.alive.get(name)
            same = seen is not None and seen.shape == alive.shape
            self.alive[name] = seen | alive if same else alive

        return hook

    def remove(self) -> list[UnitObs]:
        """Remove the hooks; the share of dead/saturated units per module that ran."""
        for h in self.handles:
            h.remove()
        self.handles = []
        found = []
        for name in self.kinds:
            if name in self.alive:
                a = self.alive[name]
                share, units = float((~a).float().mean()), int(a.numel())
            elif name in self.stuck:
                count, units = self.stuck[name]
                share = float(count) / units
            else:
                continue
            found.append(
                UnitObs(name, self.kinds[name][0], self.kinds[name][1], round(share, 4), units)
            )
        return found


def unit_kind(module: nn.Module) -> str | None:
    """`dead` for a ReLU-like activation module, `saturated` for a tanh/sigmoid-like one,
    None for any other module."""
    if isinstance(module, _DEAD):
        return "dead"
    if isinstance(module, _SATURATING):
        return "saturated"
    if next(module.children(), None) is not None:
        return None  # a block (`ConvBNReLU`) is not an activation, its last child may be
    name = type(module).__name__.lower()
    if any(part in name for part in _DEAD_NAMES):
        return "dead"
    if any(part in name for part in _SATURATING_NAMES):
        return "saturated"
    return None


def _at_limit(module, y: torch.Tensor) -> torch.Tensor:
    if isinstance(module, nn.Tanh) or "tanh" in type(module).__name__.lower():
        return y.abs() > 0.99
    if isinstance(module, nn.Hardtanh):
        return (y <= module.min_val) | (y >= module.max_val)
    return (y < 0.01) | (y > 0.99)  # sigmoid-like, in (0, 1)


def row(u: UnitObs) -> str:
    """The unit's baseline line: `head.1 ReLU dead 0.03`."""
    return f"{u.module} {u.type} {u.kind} {u.share:.2f}"


def parse(line: str) -> UnitObs:
    module, kind_type, kind, share = line.rsplit(" ", 3)
    return UnitObs(module, kind_type, kind, float(share), 0)


def judge(
    units: list[UnitObs], baseline: list[str] | None, update_command: str
) -> tuple[list[Finding], list[str]]:
    """Findings (units dead or saturated beyond the baseline, activations gone) and notices."""
    then = {u.module: u for u in map(parse, baseline)} if baseline is not None else None
    bad = []
    for u in units:
        before = then.get(u.module) if then else None
        extreme = u.share >= ALWAYS and not (before and before.share >= ALWAYS)
        rose = before is not None and u.share >= AT_LEAST and u.share - before.share >= RISE
        if extreme or rose:
            bad.append((u, before))
    found: list[Finding] = []
    notices: list[str] = []
    if bad:
        parts = [
            f"`{u.module}` ({u.type}): {u.share:.0%} of {u.units} "
            f"{'units dead' if u.kind == 'dead' else 'values saturated'}"
            + (f" (baseline {b.share:.0%})" if b else "")
            for u, b in bad
        ]
        found.append(
            Finding(
                "dead and saturated units",
                "units stuck on the first batch: " + "; ".join(parts),
                "Dead ReLUs: a large negative bias or weight init, a learning rate too high, "
                "inputs on the wrong scale. Saturated tanh/sigmoid units: unnormalised inputs "
                "(e.g. pixels 0-255) or too large an init; normalise the input or use a smaller "
                "init.",
                [u.module for u, _ in bad],
                cause="dead or saturated units",
            )
        )
    if then is None:
        return found, notices
    now = {u.module for u in units}
    gone = [m for m in then if m not in now]
    new = [u.module for u in units if u.module not in then]
    if gone and [then[m].type for m in then] == [u.type for u in units]:
        notices.append(
            f"activation modules were renamed since the baseline ({gone[0]} → "
            f"{new[0]}, ...); record the new names with `{update_command}`"
        )
    elif gone:
        kinds = ", ".join(f"{m} ({then[m].type})" for m in gone[:8])
        found.append(
            Finding(
                "dead and saturated units",
                f"activation module(s) of the baseline no longer run: {kinds}; without an "
                "activation, adjacent linear layers compose into one linear map",
                "Put the activation back between the layers. Only if it was replaced by a "
                f"functional call on purpose: `{update_command}` records the current modules "
                "as correct.",
                gone,
                cause="missing activation",
            )
        )
    elif new:
        notices.append(
            f"new activation module(s) since the baseline: {names(new)}; record them "
            f"with `{update_command}`"
        )
    return found, notices
