"""Eval-mode probes on the first batch: determinism first, then batch independence.

Randomness left on in eval mode (dropout called with training=True) makes two passes over the
same batch differ; with token inputs that would read as samples mixing. So determinism is
checked first and, when it fails, named as what it is: the same non-deterministic prediction
the regression check reports, with the same words.
"""

from __future__ import annotations

import torch

from mltest.checks.causes import NONDETERMINISTIC_PREDICTION
from mltest.checks.sanity.findings import SHOWN, Finding
from mltest.checks.sanity.obs import StepObs
from mltest.checks.sanity.tensors import ForwardCall, float_tensors
from mltest.errors import ProjectError


def unstable(model, x) -> tuple[int, int] | None:
    """(values that differ, of) between two eval passes over the same input; None if equal.

    `x` is the input tensor or the `ForwardCall` training_step made."""
    call = ForwardCall.of(x)
    with torch.no_grad():
        first = float_tensors(call(model))
        second = float_tensors(call(model))
    differ = sum(int((a != b).sum()) for a, b in zip(first, second, strict=False))
    total = sum(a.numel() for a in first)
    return (differ, total) if differ else None


def judge(obs: StepObs) -> list[Finding]:
    """Non-determinism (named once, as its cause), else samples that mix."""
    if obs.eval_unstable is not None:
        differ, total = obs.eval_unstable
        return [
            Finding(
                "batch independence",
                f"{NONDETERMINISTIC_PREDICTION.title}: two forward passes of the same batch in "
                f"eval mode differ in {differ} of {total} output values; batch independence "
                "cannot be judged",
                NONDETERMINISTIC_PREDICTION.hint,
                cause=NONDETERMINISTIC_PREDICTION.key,
            )
        ]
    mixed = {i: js for i, js in (obs.dependence or {}).items() if js}
    if not mixed:
        return []
    i, js = next(iter(mixed.items()))
    shown = ", ".join(map(str, js[:SHOWN])) + (" ..." if len(js) > SHOWN else "")
    return [
        Finding(
            "batch independence",
            f"in eval mode, output {i} depends on other samples of the batch "
            f"(inputs {shown} of {obs.batch_size}): the model mixes samples",
            "Look for a `view`/`reshape` that folds the batch dimension into another one "
            "(e.g. after a transpose), or a normalisation over the batch in eval mode.",
            cause="samples mixed",
        )
    ]


def dependence(model, x) -> tuple[int, dict[int, list[int]]]:
    """For the first and last sample i: which other samples j the output i depends on.

    `x` is the input tensor, or the `ForwardCall` training_step made: its tensors whose first
    dimension is the batch size (the first tensor's) are the batched inputs. With floating
    ones: the gradient of output i's sum with respect to them; rows j != i must be zero up to
    a 1e-6 share of row i's (independent samples give structural zeros). With none (token ids,
    masks): every other sample is replaced by a copy of sample i in each batched input, and
    output i must stay exactly the same.
    """
    call = ForwardCall.of(x)
    tensors = call.tensors()
    if not tensors or tensors[0].dim() == 0:
        raise ProjectError(
            "checks.sanity.batch_independence needs a tensor input with a batch dimension, "
            f"got {call.describe()}; set checks.sanity.input_key to the batch element the "
            "model takes"
        )
    size = tensors[0].shape[0]
    batched = [i for i, t in enumerate(tensors) if t.dim() and t.shape[0] == size]
    floating = [i for i in batched if tensors[i].is_floating_point()]
    found: dict[int, list[int]] = {}
    if size < 2:
        return size, found
    for i in sorted({0, size - 1}):
        if floating:
            leaves = {k: tensors[k].detach().clone().requires_grad_(True) for k in floating}
            out = [t for t in float_tensors(call.replaced(leaves)(model)) if _batched(t, size)]
            if not out:
                raise ProjectError(
                    "checks.sanity.batch_independence: the model's output has no tensor with "
                    f"the batch size {size} as its first dimension"
                )
            total = sum(t[i].float().sum() for t in out)
            grads = torch.autograd.grad(total, list(leaves.values()), allow_unused=True)
            rows = [g.detach().abs().flatten(1).amax(dim=1).float() for g in grads if g is not None]
            if not rows:
                continue
            per_row = torch.stack(rows).amax(dim=0)
            limit = 1e-6 * float(per_row[i]) if float(per_row[i]) > 0 else 0.0
            found[i] = [j for j in range(size) if j != i and float(per_row[j]) > limit]
        else:
            others = [j for j in range(size) if j != i]
            copies = {}
            for k in batched:
                copy = tensors[k].clone()
                copy[others] = tensors[k][i]  # every other sample replaced by sample i
                copies[k] = copy
            with torch.no_grad():
                base = float_tensors(call(model))
                moved = float_tensors(call.replaced(copies)(model))
            same = all(torch.equal(a[i], b[i]) for a, b in zip(base, moved, strict=False))
            found[i] = [] if same else others
    return size, found


def _batched(t: torch.Tensor, size: int) -> bool:
    return t.dim() > 0 and t.shape[0] == size
