"""A gradient check: autograd against finite differences, in float64, on a copy of the model.

The loss is the user's own `training_step` on the first batch, on a float64 CPU copy of the
fresh model (dropout draws the same masks on every evaluation: the RNG is re-seeded each time).
Autograd's directional derivative g·v is compared with the central difference
(L(θ + εv) - L(θ - εv)) / 2ε along the gradient itself and one random direction (an
embedding's padding_idx row, which autograd leaves out by design, is never perturbed). A forward
that writes through `.data`, a custom op whose backward is wrong or a tensor detached and
re-attached makes them disagree; float64 makes the difference quotient exact to ~1e-9.
When they disagree, each parameter is checked on its own, so the finding names the
parameters whose gradients are wrong and where, in call order, the backward pass goes wrong.
Where the model cannot run in float64 on the CPU, the probe is skipped with a notice.
"""

from __future__ import annotations

import copy
import math
import time
from typing import Any

import torch

from mltest.checks.sanity.findings import Finding, names
from mltest.checks.sanity.obs import GradCheckObs

EPS = 1e-6  # step along a unit direction; float64 keeps round-off near 1e-10
TOLERANCE = 1e-3  # relative disagreement that counts as a wrong gradient
MAX_PARAMETERS = 20_000_000  # float64 copy and a few forwards: keep it to small models
MAX_LOCALISED = 64  # parameter tensors checked one by one after a disagreement


class Skip(Exception):
    """The probe cannot run on this model; the message says why."""


def prepare(model) -> Any:
    """A float64 CPU copy of the fresh model, taken before training touches it."""
    count = sum(p.numel() for p in model.parameters())
    if count > MAX_PARAMETERS:
        raise Skip(f"the model has {count:,} parameters (more than {MAX_PARAMETERS:,})")
    if not getattr(model, "automatic_optimization", True):
        raise Skip("the model uses manual optimisation (no loss to differentiate)")
    try:
        return copy.deepcopy(model).to(device="cpu", dtype=torch.float64)
    except Exception as exc:
        raise Skip(f"copying the model raised {type(exc).__name__}: {exc}") from exc


def check(model, batch: Any, seed: int) -> GradCheckObs:
    """Compare autograd with finite differences on the float64 copy `model`."""
    started = time.perf_counter()
    batch = _to_float64(batch)
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    obs = GradCheckObs()
    frozen_rows = _padding_rows(model)
    with _float64_default():
        loss = _loss(model, batch, seed)
        model.zero_grad(set_to_none=True)
        loss.backward()
        grads = {
            n: (p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p))
            for n, p in params
        }
        total = math.sqrt(sum(float(g.pow(2).sum()) for g in grads.values()))
        gen = torch.Generator().manual_seed(seed)
        directions = [grads] if total > 0 else []
        directions.append({n: _random(p, n, gen, frozen_rows) for n, p in params})
        for v in directions:
            obs.errors.append(_disagreement(model, batch, seed, params, grads, v, total))
        if _disagrees(obs.errors):
            obs.modules = _owners(model, params, _call_order(model, batch, seed))
            _localise(model, batch, seed, params, grads, total, gen, obs, frozen_rows)
    obs.seconds = time.perf_counter() - started
    return obs


def _disagrees(errors: list[float]) -> bool:
    return any(e > TOLERANCE for e in errors)


def _padding_rows(model) -> dict[str, int]:
    """Embedding weights -> their padding_idx row: autograd leaves it out by design, though
    the loss may depend on it, so no direction perturbs it."""
    rows = {}
    for name, module in model.named_modules():
        embedding = isinstance(module, (torch.nn.Embedding, torch.nn.EmbeddingBag))
        if embedding and module.padding_idx is not None:
            rows[f"{name}.weight" if name else "weight"] = module.padding_idx
    return rows


def _random(p, name: str, gen, frozen_rows: dict[str, int]) -> torch.Tensor:
    v = torch.randn(p.shape, generator=gen, dtype=p.dtype)
    if name in frozen_rows:
        v[frozen_rows[name]] = 0
    return v


def _disagreement(model, batch, seed, params, grads, v, total, floor_share=1e-4) -> float:
    """Relative difference between autograd's and the finite difference's slope along v."""
    norm = math.sqrt(sum(float(t.pow(2).sum()) for t in v.values()))
    if norm == 0:
        return 0.0
    v = {n: t / norm for n, t in v.items()}
    analytic = sum(float((grads[n] * v[n]).sum()) for n in v)
    numeric = _slope(model, batch, seed, params, v)
    scale = max(abs(analytic), abs(numeric), floor_share * total, 1e-12)
    return abs(analytic - numeric) / scale


def _slope(model, batch, seed, params, v) -> float:
    """The central difference of the loss along the unit direction v."""
    with torch.no_grad():
        saved = {n: p.detach().clone() for n, p in params if n in v}
        values = []
        for sign in (1.0, -1.0):
            for n, p in params:
                if n in v:
                    p.copy_(saved[n] + sign * EPS * v[n])
            values.append(float(_loss(model, batch, seed)))
        for n, p in params:
            if n in v:
                p.copy_(saved[n])
    return (values[0] - values[1]) / (2 * EPS)


def _localise(
    model, batch, seed, params, grads, total, gen, obs: GradCheckObs, frozen_rows: dict[str, int]
) -> None:
    """Check each parameter along its own gradient (a random direction where it is zero)."""
    ranked = sorted(params, key=lambda item: obs.modules[item[0]][2])
    for name, p in ranked[:MAX_LOCALISED]:
        g = grads[name]
        v = {name: g if bool(g.ne(0).any()) else _random(p, name, gen, frozen_rows)}
        error = _disagreement(model, batch, seed, params, grads, v, total, floor_share=1e-3)
        if error > TOLERANCE:
            obs.wrong.append((name, error))
        else:
            obs.right.append(name)


def _loss(model, batch, seed) -> torch.Tensor:
    """The training_step loss, with the same dropout masks and the same batch on every call
    (a copy: a training_step that scales its batch in place must not scale the next call's)."""
    from mltest.engine import copy_batch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        out = model.training_step(copy_batch(batch), 0)
    loss = out.get("loss") if isinstance(out, dict) else out
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise Skip("training_step returned no scalar loss tensor")
    return loss.reshape(())


def _call_order(model, batch, seed) -> dict[str, int]:
    """Module name -> position of its first call in one forward of the training step."""
    order: dict[str, int] = {}

    def hook(name):
        def record(module, args):  # returns None: a pre-hook's return value replaces the args
            order.setdefault(name, len(order))

        return record

    handles = [m.register_forward_pre_hook(hook(name)) for name, m in model.named_modules()]
    try:
        with _float64_default(), torch.no_grad():
            _loss(model, batch, seed)
    finally:
        for h in handles:
            h.remove()
    return order


def _owners(model, params, order) -> dict[str, tuple[str, str, int]]:
    modules = dict(model.named_modules())
    owners = {}
    for name, _ in params:
        owner = name.rpartition(".")[0]
        position = order.get(owner, len(order) + len(owners))
        owners[name] = (owner, type(modules.get(owner, model)).__name__, position)
    return owners


class _float64_default:
    """Tensors the model creates itself (torch.zeros(...)) come out in float64 too, and its
    casts to float32 (`x.float()`, `logits.to(torch.float32)`, common in steps written for
    mixed precision) give float64: a float32 input would not meet the float64 weights, and a
    float32 loss would round the finite differences to noise (a false "wrong gradient")."""

    _CASTS = ("float", "to")

    def __enter__(self):
        self.before = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)
        # Shadow the methods on torch.Tensor (they live on its C base); put back on exit.
        self.shadowed = {name: vars(torch.Tensor).get(name) for name in self._CASTS}
        torch.Tensor.float = _wide_float
        torch.Tensor.to = _wide_to

    def __exit__(self, *exc):
        torch.set_default_dtype(self.before)
        for name, method in self.shadowed.items():
            if method is None:
                delattr(torch.Tensor, name)
            else:
                setattr(torch.Tensor, name, method)


_BASE_TO = torch._C.TensorBase.to


def _wide_float(self, memory_format=torch.preserve_format):
    """`Tensor.float` in the gradient check: float64."""
    return self.double(memory_format=memory_format)


def _wide_to(self, *args, **kwargs):
    """`Tensor.to` in the gradient check: a float32 target dtype becomes float64."""
    args = tuple(torch.float64 if arg is torch.float32 else arg for arg in args)
    if kwargs.get("dtype") is torch.float32:
        kwargs["dtype"] = torch.float64
    return _BASE_TO(self, *args, **kwargs)


def _to_float64(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        return value.double() if value.is_floating_point() else value
    if isinstance(value, dict):
        return {k: _to_float64(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [_to_float64(v) for v in value]
        return type(value)(*items) if hasattr(value, "_fields") else type(value)(items)
    return value


def run(model_copy, batch, seed: int) -> tuple[GradCheckObs | None, str | None]:
    """The observation, or None and the reason it was skipped."""
    try:
        return check(model_copy, batch, seed), None
    except Skip as exc:
        return None, str(exc)
    except Exception as exc:  # the user's code in float64: anything may refuse
        return None, f"training_step in float64 on a CPU copy raised {type(exc).__name__}: {exc}"


def judge(obs: GradCheckObs | None) -> list[Finding]:
    """A wrong gradient, with the parameters it touches and where the backward goes wrong."""
    if obs is None or not _disagrees(obs.errors):
        return []
    worst = max(obs.errors)
    if not obs.wrong:
        return [
            Finding(
                "gradient matches finite differences",
                f"autograd's gradient disagrees with the finite-difference slope of the loss "
                f"(by {worst:.0%}), though no single parameter's does on its own",
                _HINT,
                cause="wrong gradient",
            )
        ]
    wrong = [n for n, _ in obs.wrong]
    deepest = max(wrong, key=lambda n: obs.modules[n][2])
    owner, kind, position = obs.modules[deepest]
    after = [n for n in obs.right if obs.modules[n][2] > position]
    where = f"`{owner or 'the model'}` ({kind})"
    if after:
        nxt = min(after, key=lambda n: obs.modules[n][2])
        where = (
            f"between {where} and `{obs.modules[nxt][0]}` ({obs.modules[nxt][1]}), "
            "whose gradients are right"
        )
    else:
        where = f"at or after {where}"
    errors = max(e for _, e in obs.wrong)
    return [
        Finding(
            "gradient matches finite differences",
            f"the gradient is wrong: autograd disagrees with the finite-difference slope of the "
            f"loss for {names(wrong)} (by up to {errors:.0%}); the backward pass goes wrong "
            f"{where}",
            _HINT,
            wrong,
            cause="wrong gradient",
        )
    ]


_HINT = (
    "Look in the code between those modules for writes through `.data` (an activation applied "
    "in place on `.data` runs forward but backward sees an identity), tensors detached and "
    "re-attached, in-place ops on saved tensors, or a custom autograd Function whose backward "
    "does not match its forward. If the model is only piecewise smooth at this batch, turn the "
    "probe off with checks.sanity.gradient_check: false."
)
