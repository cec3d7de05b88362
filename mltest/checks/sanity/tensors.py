"""Where the model's input sits in a batch, and the float tensors inside a module's output:
what the step's callbacks and the eval-mode probes both read."""

from __future__ import annotations

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


def float_tensors(value: Any) -> list[torch.Tensor]:
    """Floating-point tensors inside a module output (tensor, tuple, list, dict, nested)."""
    if isinstance(value, torch.Tensor):
        return [value] if value.is_floating_point() or value.is_complex() else []
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return [t for item in value for t in float_tensors(item)]
    return []
