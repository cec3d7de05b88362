"""The fixed inputs of the regression check: the first K examples of the data module, or a file.

Data-module inputs go through the project's own dataset and collate function, so a change in
preprocessing (a normalisation constant, a tokenizer) changes the inputs and is caught. Files
are read without pickle: safetensors, `.npz`/`.npy` (allow_pickle=False), or a table read with
pandas (CSV, JSON lines, Parquet) turned into batches by a collate function from the config.
Examples are re-batched with the check's batch size, in dataset order. Each example is also
collated on its own, so the inputs hash the same whatever the batch size, even when the
collate function pads each batch to its longest sequence (dynamic padding).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch.utils.data import IterableDataset

from mltest.checks.regression.settings import TABLE_SUFFIXES
from mltest.errors import ProjectError, describe

DEFAULT_EXAMPLES = 64
DEFAULT_BATCH_SIZE = 32


@dataclass
class FixedInputs:
    """Batches ready for `predict_step`, and where they came from (for messages)."""

    batches: list[Any]
    examples: int
    description: str
    # each example collated on its own, for a batch-free hash; made when first asked for
    alone: Callable[[], list[Any]] | None = None

    def example_hash(self) -> str | None:
        """A hash of the inputs example by example, independent of batching (None when the
        examples cannot be collated one by one)."""
        import hashlib

        from mltest.checks.regression.golden import content_hash, flatten_batches
        from mltest.seeding import isolated_global_state

        if self.alone is None:
            return None
        with isolated_global_state():  # the user's dataset and collate, as when first read
            alone = self.alone()
        digest = hashlib.sha256()
        for one in alone:
            digest.update(content_hash(flatten_batches([one], "inputs")).encode())
        return "sha256:" + digest.hexdigest()


def from_datamodule(
    datamodule: Any, examples: int | None, batch_size: int | None, loader: str | None
) -> FixedInputs:
    """The first `examples` of the predict (else val) dataloader, re-batched in order.

    Args:
        datamodule: a set-up LightningDataModule.
        examples: how many examples (default 64; fewer if the dataset is smaller).
        batch_size: inference batch size (default: the loader's own).
        loader: `predict` or `val`; None picks predict when the data module defines it.
    """
    from torch.utils.data import DataLoader, Subset

    loader = loader or ("predict" if _overrides(datamodule, "predict_dataloader") else "val")
    hook = f"{loader}_dataloader"
    what = f"data.class `{hook}`"
    if not _overrides(datamodule, hook):
        raise ProjectError(
            f"{what} is not defined; define it, or give the regression check a file "
            "(`checks.regression.inputs.file`)"
        )
    try:
        original = getattr(datamodule, hook)()
    except Exception as exc:

        raise ProjectError(f"{what} raised {describe(exc)}") from exc
    if isinstance(original, (list, tuple)) and len(original) == 1:
        original = original[0]
    if not isinstance(original, DataLoader):
        raise ProjectError(
            f"{what} returned a {type(original).__name__}, not one torch DataLoader; the "
            "regression check needs one (or give `checks.regression.inputs.file`)"
        )
    wanted = examples or DEFAULT_EXAMPLES
    dataset = original.dataset
    if isinstance(dataset, IterableDataset):
        subset: Any = _FirstK(dataset, wanted)
        count = None
    else:
        count = min(wanted, len(dataset))
        subset = Subset(dataset, range(count))
    size = batch_size or original.batch_size or DEFAULT_BATCH_SIZE
    rebatched = DataLoader(subset, batch_size=size, shuffle=False, collate_fn=original.collate_fn)
    try:
        batches = list(rebatched)
    except Exception as exc:

        raise ProjectError(
            f"{what}: reading its first examples raised {describe(exc)}"
        ) from exc
    if not batches:
        raise ProjectError(f"{what} yielded no examples; the regression check needs some")
    count = count if count is not None else _count(batches)
    alone = None
    if isinstance(subset, Subset):
        collate = original.collate_fn or (lambda items: items)
        alone = functools.partial(_each_alone, subset, collate, count)
    described = f"first {count} examples of `{hook}` (batch size {size})"
    return FixedInputs(batches, count, described, alone)


def _each_alone(examples: Any, collate: Callable, count: int) -> list[Any]:
    """Each of the first `count` examples collated on its own."""
    return [collate([examples[i]]) for i in range(count)]


class _FirstK(IterableDataset):
    """The first k items of an iterable-style dataset."""

    def __init__(self, dataset: Any, k: int):
        self.dataset, self.k = dataset, k

    def __iter__(self):
        return itertools.islice(iter(self.dataset), self.k)


def _overrides(datamodule: Any, hook: str) -> bool:
    """Whether the user's class defines `hook` (Lightning's base only raises)."""
    for cls in type(datamodule).__mro__:
        if hook in vars(cls):
            return not cls.__module__.startswith(("pytorch_lightning", "lightning"))
    return False


def _count(batches: list[Any]) -> int:
    from mltest.checks.regression.golden import flatten_batches

    flat = flatten_batches(batches, "inputs")
    return max((len(v) for v in flat.values()), default=0)


def from_file(
    path: Path, shown: str, examples: int | None, batch_size: int | None, collate: Any
) -> FixedInputs:
    """Examples from a tensor file or a table, batched in file order.

    Args:
        path: the file.
        shown: the path as written in the config, for messages.
        examples: the first N examples only (default: all).
        batch_size: inference batch size (default 32).
        collate: fn(list of examples) -> batch; required for tables. Without one, a tensor
            file with one array gives tensor batches, with several a dict of tensors.
    """
    key = f"checks.regression.inputs.file: {shown}"
    if not path.is_file():
        raise ProjectError(f"`{key}`: file not found at {path}; the path is relative to the config")
    size = batch_size or DEFAULT_BATCH_SIZE
    if path.suffix in TABLE_SUFFIXES:
        rows = _read_table(path, key)[:examples]
        chunks = [rows[i : i + size] for i in range(0, len(rows), size)]
        count = len(rows)
    else:
        arrays = _read_tensors(path, key)
        count = min(len(a) for a in arrays.values()) if examples is None else examples
        tensors = {name: _to_torch(a[:count]) for name, a in arrays.items()}
        chunks = [_tensor_chunk(tensors, i, i + size, collate) for i in range(0, count, size)]
    if not count:
        raise ProjectError(f"`{key}`: the file holds no examples")
    batches = chunks
    if collate is not None:
        batches = []
        for index, chunk in enumerate(chunks):
            try:
                batches.append(collate(chunk))
            except Exception as exc:

                raise ProjectError(
                    f"checks.regression.inputs.collate raised on batch {index} of {shown}: "
                    f"{describe(exc)}"
                ) from exc
    alone = None
    if collate is not None and path.suffix in TABLE_SUFFIXES:
        rows = [row for chunk in chunks for row in chunk]
        alone = functools.partial(_each_alone, rows, collate, len(rows))
    described = f"{count} examples from `{shown}` (batch size {size})"
    return FixedInputs(batches, count, described, alone)


def _tensor_chunk(tensors: dict[str, Any], start: int, stop: int, collate: Any) -> Any:
    """Rows start:stop as a tensor (one array) or dict of tensors; or, for a collate function,
    as a list of examples, as a DataLoader's collate_fn would see them."""
    part = {name: t[start:stop] for name, t in tensors.items()}
    if collate is None:
        return next(iter(part.values())) if len(part) == 1 else part
    rows = range(len(next(iter(part.values()))))
    if len(part) == 1:
        return [next(iter(part.values()))[j] for j in rows]
    return [{name: t[j] for name, t in part.items()} for j in rows]


def _read_table(path: Path, key: str) -> list[dict[str, Any]]:
    import pandas as pd

    try:
        if path.suffix == ".csv":
            frame = pd.read_csv(path)
        elif path.suffix == ".parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_json(path, lines=path.suffix == ".jsonl")
    except Exception as exc:
        raise ProjectError(
            f"`{key}`: cannot be read as a table ({type(exc).__name__}: {exc})"
        ) from exc
    return frame.to_dict("records")


def _read_tensors(path: Path, key: str) -> dict[str, Any]:
    import numpy as np

    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            # Mapped, not copied: pages are read as the inputs are hashed and predicted (half
            # the time of a copy for 100 MB of inputs), and a write (a predict_step that
            # normalises in place) lands in private pages, never in the file.
            tensors = load_file(str(path))
            _refuse_without_numpy_type(tensors, key)
            arrays = {name: t.numpy() for name, t in tensors.items()}
        elif path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
        else:
            arrays = {"input": np.load(path, allow_pickle=False)}
    except ProjectError:
        raise
    except Exception as exc:
        raise ProjectError(
            f"`{key}`: cannot be read ({type(exc).__name__}: {exc}); tensor files must load "
            "without pickle (safetensors, or numpy arrays saved with allow_pickle=False)"
        ) from exc
    if not arrays:
        raise ProjectError(f"`{key}`: the file holds no arrays")
    lengths = {name: (a.shape[0] if a.ndim else None) for name, a in arrays.items()}
    if None in lengths.values() or len(set(lengths.values())) > 1:
        raise ProjectError(
            f"`{key}`: every array needs the same first (example) dimension; got {lengths}"
        )
    return arrays


def _refuse_without_numpy_type(tensors: dict[str, Any], key: str) -> None:
    """Inputs are hashed and compared as numpy arrays, which have no bfloat16 or float8."""
    import torch

    for name, tensor in tensors.items():
        try:
            torch.empty(0, dtype=tensor.dtype).numpy()
        except TypeError:
            raise ProjectError(
                f"`{key}`: array `{name}` is {str(tensor.dtype).removeprefix('torch.')}, "
                "which has no numpy type to hash and compare the inputs with; save it as "
                "float32 (float32 holds every bfloat16 value exactly) and cast it in "
                "predict_step if the model needs the narrower type"
            ) from None


def _to_torch(array: Any) -> Any:
    import torch

    # The arrays were just read for this check alone: shared, not copied, unless read-only
    # (torch warns on those, and a predict_step may write into its input).
    return torch.from_numpy(array if array.flags.writeable else array.copy())
