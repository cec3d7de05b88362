"""Where the model's input sits in a batch, the arguments forward was called with, and the
float tensors inside a module's output: what the step's callbacks and the eval-mode probes
both read."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import torch

from mltest.errors import ProjectError


def batch_input(batch: Any, key: int | str | None) -> Any:
    """The model's input inside a batch: `batch[key]`, or the batch itself / its first element."""
    if key is None:
        if isinstance(batch, torch.Tensor):
            return batch
        if isinstance(batch, (list, tuple)) and batch:
            return batch[0]
        raise ProjectError(
            f"checks.sanity: cannot tell the model's input in a batch of type "
            f"{type(batch).__name__}; set checks.sanity.input_key (a dict key or tuple index)"
        )
    try:
        return batch[key]
    except (KeyError, IndexError, TypeError) as exc:
        keys = list(batch) if isinstance(batch, dict) else f"indices 0..{len(batch) - 1}"
        raise ProjectError(
            f"checks.sanity.input_key {key!r} is not in the batch ({type(batch).__name__} with "
            f"{keys})"
        ) from exc


def probe_input(
    batch: Any, key: int | str | None, recorded: ForwardCall | None
) -> tuple[ForwardCall, str]:
    """What the eval-mode probes call forward with, and where it came from (for messages):
    `batch[key]` when the config names it, else the arguments training_step called forward
    with (however it built them from the batch), else the batch's input."""
    if key is None and recorded is not None:
        return recorded, "as training_step called it"
    where = "batch[0]" if key is None else f"batch[{key!r}]"
    return ForwardCall.of(batch_input(batch, key)), where


def float_tensors(value: Any) -> list[torch.Tensor]:
    """Floating-point tensors inside a module output (tensor, tuple, list, dict, nested)."""
    if isinstance(value, torch.Tensor):
        return [value] if value.is_floating_point() or value.is_complex() else []
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return [t for item in value for t in float_tensors(item)]
    return []


class ForwardCall:
    """The arguments of one call of the model's forward, to call it again with some replaced.

    Recorded as `training_step` called `self(...)`, this is the input forward really takes,
    however the step built it from the batch (a transform, a tokenizer's dict, `self(**batch)`).
    Tensors anywhere in the arguments (tuples, lists, dicts) are numbered in one fixed order.
    """

    def __init__(self, args: tuple, kwargs: dict[str, Any]):
        from lightning_utilities.core.apply_func import apply_to_collection

        self.args, self.kwargs = apply_to_collection(
            (tuple(args), dict(kwargs)), torch.Tensor, lambda t: t.detach().clone()
        )

    @classmethod
    def of(cls, value: Any) -> ForwardCall:
        """`forward(value)`: a batch element given as the input."""
        return value if isinstance(value, ForwardCall) else cls((value,), {})

    def tensors(self) -> list[torch.Tensor]:
        """Every tensor in the arguments, in the fixed order `replaced` numbers them by."""
        found: list[torch.Tensor] = []
        self._map(lambda _, t: found.append(t) or t)
        return found

    def replaced(self, new: dict[int, torch.Tensor]) -> ForwardCall:
        """A copy with the tensors numbered in `new` replaced."""
        call = ForwardCall.__new__(ForwardCall)
        call.args, call.kwargs = self._map(lambda i, t: new.get(i, t))
        return call

    def __call__(self, model) -> Any:
        return model(*self.args, **self.kwargs)

    def describe(self) -> str:
        """`forward(Tensor (16, 12), mask=Tensor (16, 12))`, for messages."""
        parts = [_shape(a) for a in self.args]
        parts += [f"{name}={_shape(value)}" for name, value in self.kwargs.items()]
        return f"forward({', '.join(parts)})"

    def _map(self, fn: Callable[[int, torch.Tensor], Any]) -> tuple[tuple, dict]:
        from lightning_utilities.core.apply_func import apply_to_collection

        counter = itertools.count()
        return apply_to_collection(
            (self.args, self.kwargs), torch.Tensor, lambda t: fn(next(counter), t)
        )


def _shape(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"Tensor {tuple(value.shape)}"
    return type(value).__name__


def redirected(module: torch.nn.Module) -> bool:
    """Whether this call of `module` is Lightning's forward redirection (DDP and other wrapping
    strategies call the module with `(batch, batch_idx)` and a patched `forward` that runs
    `training_step`): not a call of the model's own forward, so its arguments are no input."""
    patched = module.__dict__.get("forward")
    return getattr(patched, "__name__", "") == "wrapped_forward"
