"""The fixed batches on the training device, moved once instead of every epoch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class DeviceBatches:
    """Batches on the training device, copied once, not every epoch, while nothing changed them.

    Lightning moves each batch to the device every epoch (`move_data_to_device`: `.to(device)`
    on each tensor, a new container around them). That is exact to keep when the batch is plain
    tensors in lists, tuples and dicts and neither the host tensor nor its device copy was
    modified in place since (their version counters); anything else is moved as Lightning
    moves it. On the CPU `.to` returns the tensor itself, so both ways are the same objects.
    """

    def __init__(self, device: Any, move: Callable[[Any, Any], Any]):
        self.device = device
        self.move = move  # the Lightning package's own move_data_to_device
        self.copies: dict[int, tuple[Any, int, Any, int]] = {}

    def get(self, batch: Any) -> Any:
        import torch

        if isinstance(batch, torch.Tensor):
            return self._tensor(batch)
        if type(batch) in (list, tuple):
            return type(batch)(self.get(item) for item in batch)
        if type(batch) is dict:
            return {key: self.get(value) for key, value in batch.items()}
        return self._lightning_move(batch)

    def _tensor(self, host: Any) -> Any:
        kept = self.copies.get(id(host))
        if kept is not None:
            source, source_version, copy, copy_version = kept
            if source is host and host._version == source_version and copy._version == copy_version:
                return copy
        copy = self._lightning_move(host)
        self.copies[id(host)] = (host, host._version, copy, copy._version)
        return copy

    def _lightning_move(self, data: Any) -> Any:
        return self.move(data, self.device)


class Restored:
    """Batches whose tensors get their first values back before each use when model code wrote
    into them (by their version counters), as a data loader gives every step new tensors: a
    step or judgement must see the batch the data gave, not one a `training_step` scaled in
    place (`x /= 255`) the step before. Nothing is copied while nothing writes."""

    def __init__(self, batches: list):
        import torch
        from lightning_utilities.core.apply_func import apply_to_collection

        self.batches = batches
        found: list = []
        apply_to_collection(batches, torch.Tensor, found.append)
        self.kept = [(t, t.clone(), t._version) for t in found]

    def get(self) -> list:
        import torch

        for index, (tensor, values, version) in enumerate(self.kept):
            if tensor._version != version:
                with torch.no_grad():
                    tensor.copy_(values)
                self.kept[index] = (tensor, values, tensor._version)
        return self.batches
