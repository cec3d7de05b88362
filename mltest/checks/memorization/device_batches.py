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
    moves it. On the CPU `.to` returns the tensor itself, so the step gets the fixed batch
    itself: a copy of its values is kept, and put back when the step wrote into it (`x /= 255`),
    as a data loader would give the next epoch fresh tensors.
    """

    def __init__(self, device: Any, move: Callable[[Any, Any], Any]):
        self.device = device
        self.move = move  # the Lightning package's own move_data_to_device
        self.copies: dict[int, tuple[Any, int, Any, int]] = {}
        self.pristine: dict[int, Any] = {}  # id(host) -> its values, where the copy is the host

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
        import torch

        kept = self.copies.get(id(host))
        if kept is not None:
            source, source_version, copy, copy_version = kept
            if source is host and host._version == source_version and copy._version == copy_version:
                return copy
            if source is host and id(host) in self.pristine:  # written into on the CPU
                with torch.no_grad():
                    host.copy_(self.pristine[id(host)])
        copy = self._lightning_move(host)
        if copy is host and id(host) not in self.pristine:
            self.pristine[id(host)] = host.clone()
        self.copies[id(host)] = (host, host._version, copy, copy._version)
        return copy

    def _lightning_move(self, data: Any) -> Any:
        return self.move(data, self.device)


class Restored:
    """Batches whose tensors get their first values back before each use when model code wrote
    into them (by their version counters): a judgement must see the batch the data gave."""

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
