"""Causal leak (`checks.sanity.causal: true`): no output may see a later position's input.

A language model predicts position t from positions <= t. A causal mask that is missing,
inverted (`triu` for `tril`) or off by one (`diagonal=1`: position t attends to t + 1) lets it
read the answer, so it memorizes fast and generates nonsense. After the steps, in eval mode,
the model runs on the first samples of the first batch (the arguments `training_step` called
forward with, or `batch[input_key]`) and again with the input changed only after position t,
for a few t (0, 1, a quarter, half, the last but one): the per-position outputs (first two
axes: batch, position) at positions <= t must not move. On a leak, forward hooks name the
first module, in the order calls finish, whose output at positions <= t moved, and whether
it mixes positions itself or the code between its parent's submodules does.

The input is the first tensor of two or more axes in forward's arguments, with positions on
axis 1 (batch first). Token ids are changed to the next id in the batch's range, floats get
noise; masks and other arguments are left as they are.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning
import torch

from mltest.checks.sanity.findings import Finding
from mltest.checks.sanity.obs import CausalObs, LossInputObs, StepObs
from mltest.checks.sanity.tensors import ForwardCall, float_tensors, probe_input, redirected
from mltest.errors import ProjectError

RTOL = 1e-4  # an output may move by this share of the largest output (float sums)
SAMPLES = 2  # samples of the batch the probe runs on: the leak is structural


class CausalProbe(pytorch_lightning.Callback):
    """Records forward's arguments in the first step; probes the trained model at the end."""

    def __init__(self, obs: StepObs, settings):
        self.obs = obs
        self.settings = settings
        self.batch: Any = None
        self.call: ForwardCall | None = None
        self.handle = None
        self.error: Exception | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self.batch is None:
            self.batch = batch
            self.handle = pl_module.register_forward_pre_hook(self._record, with_kwargs=True)

    def _record(self, module, args, kwargs):
        if self.call is None and not redirected(module):
            self.call = ForwardCall(args, kwargs)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.handle is not None:
            self.handle.remove()
            self.handle = None

    def on_train_end(self, trainer, pl_module):
        if self.batch is None:
            return
        flags = {m: m.training for m in pl_module.modules()}
        pl_module.eval()
        try:
            call, source = probe_input(self.batch, self.settings.input_key, self.call)
            with torch.no_grad():
                self.obs.causal = probe(pl_module, call, source)
        except Exception as exc:  # raised after fit returns, so Lightning does not wrap it
            self.error = exc
        finally:
            for module, was_training in flags.items():
                module.training = was_training


def _outputs(model, call: ForwardCall, source: str) -> list[torch.Tensor]:
    """The float tensors forward returns; an exception of the model's is the config's."""
    try:
        return float_tensors(call(model))
    except Exception as exc:
        raise ProjectError(
            f"checks.sanity.causal: calling the model's {call.describe()} in eval mode "
            f"({source}) raised {type(exc).__name__}: {exc}; set checks.sanity.input_key to the "
            "batch element forward takes, or turn the probe off"
        ) from exc


def probe(model: torch.nn.Module, call: ForwardCall, source: str = "") -> CausalObs:
    """Change the input after t for a few t; on the first leak, localise it."""
    call, index = _narrowed(call)
    x = call.tensors()[index]
    length = int(x.shape[1])
    obs = CausalObs(length=length)
    base = _per_position(_outputs(model, call, source), x.shape[0], length)
    if not base:
        raise ProjectError(
            f"checks.sanity.causal: no output of {call.describe()} has the input's batch and "
            f"position axes ({x.shape[0]}, {length}) first, so no output can be read per "
            "position; turn the probe off for this model"
        )
    obs.scale = max(_largest(t) for t in base)
    limit = RTOL * obs.scale

    def moved(start: int, stop: int, upto: int) -> tuple[ForwardCall, list[float]]:
        """The call with positions start..stop-1 changed, and the moves at positions <= upto."""
        changed = call.replaced({index: _perturbed(x, start, stop)})
        outputs = _per_position(_outputs(model, changed, source), x.shape[0], length)
        return changed, _moved_positions(base, outputs, upto)

    for t in sorted(p for p in {0, 1, length // 4, length // 2, length - 2} if p < length - 1):
        obs.tried.append(t)
        changed, moves = moved(t + 1, length, t)
        leaking = [p for p, amount in enumerate(moves) if amount > limit]
        if leaking:
            obs.after, obs.position, obs.change = t, leaking[0], max(moves)
            _localise(model, (call, changed), int(x.shape[0]), t, obs)
            p = obs.position
            obs.sees = [q for q in sorted({p + 1, length - 1}) if moved(q, q + 1, p)[1][p] > limit]
            break
    return obs


def _narrowed(call: ForwardCall) -> tuple[ForwardCall, int]:
    """The call on its first SAMPLES samples, and the index of the input among its tensors."""
    tensors = call.tensors()
    index = next(
        (i for i, t in enumerate(tensors) if t.dim() >= 2 and t.dtype != torch.bool), None
    )
    if index is None or tensors[index].shape[1] < 2:
        raise ProjectError(
            f"checks.sanity.causal: forward's arguments ({call.describe()}) hold no input "
            "with a position axis (a tensor of shape (batch, positions, ...) of 2 or more "
            "positions); set checks.sanity.input_key to the batch element holding the sequences"
        )
    size = tensors[index].shape[0]
    keep = {i: t[:SAMPLES] for i, t in enumerate(tensors) if t.dim() and t.shape[0] == size}
    return call.replaced(keep), index


def _perturbed(x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """`x` with positions start..stop-1 changed: token ids to the next id in the input's range
    (the largest wraps to the smallest), floats by noise on the input's scale."""
    changed = x.clone()
    tail = changed[:, start:stop]
    if x.is_floating_point() or x.is_complex():
        gen = torch.Generator(device="cpu").manual_seed(0)
        noise = torch.randn(tail.shape, generator=gen, dtype=tail.dtype).to(tail.device)
        scale = float(x.float().std()) if x.numel() > 1 else 1.0
        changed[:, start:stop] = tail + noise * (scale or 1.0)
        return changed
    lo, hi = x.min(), x.max()
    if lo == hi:
        raise ProjectError(
            f"checks.sanity.causal: the input holds one value ({int(lo)}) only, so it cannot "
            "be changed to another valid one; the probe needs a batch of varied sequences"
        )
    changed[:, start:stop] = torch.where(tail == hi, lo, tail + 1)
    return changed


def _position_axis(t: torch.Tensor, batch: int, length: int) -> int | None:
    """The position axis of a module's output: the first after the batch axis of the input's
    length ((B, T, D), (B, heads, T, D)), or 0 for a sequence-first (T, B, D) one."""
    if t.dim() >= 2 and t.shape[0] == batch:
        return next((a for a in range(1, t.dim()) if t.shape[a] == length), None)
    if t.dim() >= 2 and t.shape[0] == length and t.shape[1] == batch:
        return 0
    return None


def _per_position(tensors: list[torch.Tensor], batch: int, length: int) -> list[torch.Tensor]:
    """The outputs with the batch and position axes first, as (batch, positions, rest)."""
    return [
        t.detach().float().reshape(batch, length, -1)
        for t in tensors
        if t.dim() >= 2 and t.shape[0] == batch and t.shape[1] == length
    ]


def _moved_positions(base: list, changed: list, t: int) -> list[float]:
    """Per position p <= t: the largest move of an output there (NaN to NaN does not move)."""
    moved = torch.zeros(t + 1)
    for a, b in zip(base, changed, strict=False):
        step = _difference(a[:, : t + 1], b[:, : t + 1]).amax(dim=(0, 2)).cpu()
        moved = torch.maximum(moved, step)
    return moved.tolist()


def _largest(t: torch.Tensor) -> float:
    """The largest finite absolute value (0 for an empty tensor)."""
    return float(t.abs().nan_to_num(posinf=0, neginf=0).amax()) if t.numel() else 0.0


def _difference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    both_nan = a.isnan() & b.isnan()
    return torch.where(both_nan, 0.0, (a - b).abs().nan_to_num(nan=float("inf")))


def _rows(value: Any, batch: int, length: int, t: int) -> list[torch.Tensor]:
    """A module input or output's tensors, cut to positions <= t (those without a position
    axis left out)."""
    rows = []
    for tensor in float_tensors(value):
        axis = _position_axis(tensor, batch, length)
        if axis is not None:
            rows.append(tensor.detach().float().narrow(axis, 0, t + 1).clone())
    return rows


def _trace(model, call: ForwardCall, batch: int, length: int, t: int) -> list[tuple]:
    """(module name, its inputs at <= t, its outputs at <= t) for each call, as calls finish."""
    calls: list[tuple] = []
    handles = []

    def hook(name):
        def record(module, args, output):
            calls.append((name, _rows(args, batch, length, t), _rows(output, batch, length, t)))

        return record

    for name, module in model.named_modules():
        if name:  # the model itself is the whole: its submodules and own code are what leak
            handles.append(module.register_forward_hook(hook(name)))
    try:
        call(model)
    finally:
        for handle in handles:
            handle.remove()
    return calls


def _moved(a: list, b: list) -> bool:
    for x, y in zip(a, b, strict=False):
        scale = max(_largest(x), 1e-12)
        if x.shape != y.shape or bool((_difference(x, y) > RTOL * scale).any()):
            return True
    return False


def _localise(model, calls: tuple, batch: int, t: int, obs: CausalObs) -> None:
    """The first module whose output at positions <= t moved between the two calls."""
    first, second = (_trace(model, call, batch, obs.length, t) for call in calls)
    types = {n: type(m).__name__ for n, m in model.named_modules()}
    types[""] = type(model).__name__
    for k, ((name, ins, outs), (_, ins2, outs2)) in enumerate(zip(first, second, strict=False)):
        if not _moved(outs, outs2):
            continue
        obs.module, obs.module_type = name, types.get(name, "")
        obs.inside = not _moved(ins, ins2)
        obs.parent = name.rpartition(".")[0]
        obs.parent_type = types.get(obs.parent, "")
        siblings = [c[0] for c in first[:k] if c[0].rpartition(".")[0] == obs.parent]
        if siblings:
            obs.previous = siblings[-1]
            obs.previous_type = types.get(obs.previous, "")
        return


# --- judging -------------------------------------------------------------------------------


def judge(obs: CausalObs | None, model_name: str) -> list[Finding]:
    """A leak, named by position and module."""
    if obs is None or obs.after is None:
        return []
    t = obs.after
    where = (
        f"changing the input only after position {t} moved the output at position "
        f"{obs.position} by {obs.change:.3g} (largest output {obs.scale:.3g})"
    )
    return [
        Finding(
            "no output sees later positions",
            f"the model sees the future: in eval mode, {where}{_reach(obs)}; "
            + _module(obs, model_name),
            "Mask the attention scores before the softmax so that position t attends to "
            "positions <= t only: `scores.masked_fill(~torch.tril(torch.ones(T, T, "
            "dtype=torch.bool)), float('-inf'))` (`tril`, not `triu`; diagonal 0, not 1), or "
            "`scaled_dot_product_attention(q, k, v, is_causal=True)`; a convolution over "
            "positions must pad on the left only. A model whose outputs may see the whole "
            "sequence (a tagger, an encoder) must not set checks.sanity.causal.",
            [obs.module] if obs.module else [],
            cause="future positions leak",
        )
    ]


def judge_targets(seen: list[LossInputObs]) -> list[Finding]:
    """Targets that are the very token ids the model reads: each position learns to copy."""
    call = next((obs for obs in seen if obs.copies_input), None)
    if call is None:
        return []
    where = f" at {call.where}" if call.where else ""
    return [
        Finding(
            "no output sees later positions",
            f"the targets are not shifted: `{call.loss}`{where} receives as its targets the "
            "very token ids forward reads, so the output at each position is trained to give "
            "back the token it already sees instead of the next one (the model memorizes "
            "fast and predicts nothing)",
            "Shift the targets by one position: `x, y = tokens[:, :-1], tokens[:, 1:]` in the "
            "data, or `logits[:, :-1]` against `ids[:, 1:]` in training_step.",
            cause="targets not shifted",
        )
    ]


def _reach(obs: CausalObs) -> str:
    """How far ahead the leaking position sees: the next one only, or the end."""
    p, last = obs.position, obs.length - 1
    if obs.sees == [p + 1] and p + 1 < last:
        return f"; position {p} sees position {p + 1} but not {last}: a mask off by one"
    if last in obs.sees:
        return f"; position {p} sees as far as position {last}: no causal mask, or an inverted one"
    return ""


def _module(obs: CausalObs, model_name: str) -> str:
    if not obs.module:
        return f"no submodule's output moved there: the leak is in `{model_name}.forward` itself"
    moved = f"the first module whose output there moved is `{obs.module}` ({obs.module_type})"
    if obs.inside:
        return f"{moved}, whose input had not moved: it mixes positions itself"
    parent = f"`{obs.parent}` ({obs.parent_type})" if obs.parent else f"`{model_name}`"
    after = f", after `{obs.previous}` ({obs.previous_type})" if obs.previous else ""
    return (
        f"{moved}, but its input had already moved: the code of {parent}'s own forward mixes "
        f"positions before it{after}"
    )


def details(obs: CausalObs | None) -> list[str]:
    """The probe's figures, for a pass as well as a fail."""
    if obs is None:
        return []
    tried = ", ".join(map(str, obs.tried))
    if obs.after is None:
        return [
            f"Causal probe: the input changed after position {tried} in turn ({obs.length} "
            f"positions); no output at or before the change moved (largest output "
            f"{obs.scale:.3g}).",
            "",
        ]
    return [f"Causal probe: positions tried {tried}; the change after {obs.after} leaked.", ""]


def suggestion(kind: str | None, source: str) -> str | None:
    """The notice suggesting the probe to a sequence model that has not chosen (one whose
    loss scores each position of a token input)."""
    if kind != "sequence":
        return None
    return (
        f"the model's task is sequence (from {source}): if each position must be predicted from "
        "the ones before it (a language model), set checks.sanity.causal: true to check that "
        "no output sees a later position; set it to false to silence this notice"
    )
