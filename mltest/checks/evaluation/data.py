"""The held-out data sets: a data-module loader or a table, read in a fixed order, with the
targets taken out of each batch (loaders) or a column (tables), and each example reachable for
slicing and for the hard-example list.

Tables are read here before anything trains (`read_table` from `validate`); loaders are built
from a fresh data module in `run`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mltest.checks.evaluation.settings import Dataset
from mltest.errors import ConfigError, ProjectError, describe

TABLE_SUFFIXES = (".csv", ".jsonl", ".json", ".parquet", ".pq")
_TARGET_KEYS = ("target", "label", "labels", "y")


@dataclass
class EvalSet:
    """One data set, ready to predict.

    Attributes:
        name: the data set's name in the config.
        source: where it came from, for the report (`val loader`, `table holdout.csv`).
        batches: what `predict_step` receives, in example order.
        target: the targets, example-first.
        example: example `i` as slicing sees it (a table row, or the dataset's item `i`); None
            when the examples cannot be reached one by one (an iterable dataset).
        ids: the table's `id` column, when it has one.
    """

    name: str
    source: str
    batches: list
    target: Any
    example: Callable[[int], Any] | None = None
    ids: list[str] | None = None
    rows: list[dict] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.target)


def key(index: int) -> str:
    return f"checks.evaluation.datasets.{index}"


def read_table(spec: Dataset, index: int, root: Path, project: Any) -> list[dict[str, Any]]:
    """The rows of a table data set: a file (relative to the config) or `module:function`
    returning a list of dicts or a DataFrame. Checked for the target column.

    Raises:
        ConfigError: the file is missing, unreadable, empty, or has no target column.
        ProjectError: the function could not be imported or raised.
    """
    import pandas as pd

    where = f"`{key(index)}.table: {spec.table}`"
    if spec.table.lower().endswith(TABLE_SUFFIXES):
        path = root / spec.table
        if not path.is_file():
            raise ConfigError(f"{where}: file not found at {path}; the path is relative to the "
                              "config file")  # fmt: skip
        suffix = path.suffix.lower()
        try:
            if suffix == ".csv":
                frame = pd.read_csv(path)
            elif suffix in (".jsonl", ".json"):
                frame = pd.read_json(path, lines=True)
            else:
                frame = pd.read_parquet(path)
        except ImportError as exc:
            raise ConfigError(f"{where}: Parquet needs pyarrow: pip install "
                              "'mltest-action[parquet]'") from exc  # fmt: skip
        except Exception as exc:
            raise ConfigError(f"{where}: cannot be read as {suffix[1:]}: {exc}") from exc
    elif ":" in spec.table:
        fn = project.resolve(spec.table, key=f"{key(index)}.table")
        try:
            frame = fn()
        except Exception as exc:
            raise ProjectError(f"{where} raised {describe(exc)}") from exc
    else:
        raise ConfigError(f"{where}: give a table file ending in {', '.join(TABLE_SUFFIXES)} "
                          "or a function as `module:function`")  # fmt: skip
    if isinstance(frame, pd.DataFrame):
        rows = frame.to_dict(orient="records")
    elif isinstance(frame, list) and all(isinstance(r, dict) for r in frame):
        rows = frame
    else:
        raise ProjectError(f"{where} gave {type(frame).__name__}; give a list of dicts or a "
                           "DataFrame")  # fmt: skip
    if not rows:
        raise ConfigError(f"{where}: the table has no rows")
    column = spec.target if isinstance(spec.target, str) else "target"
    missing = [i for i, row in enumerate(rows) if _blank(row.get(column))]
    if missing:
        columns = ", ".join(map(str, rows[0]))
        raise ConfigError(
            f"{where}: row {missing[0]} ({len(missing)} in all) has no value in the target "
            f"column `{column}` (columns: {columns}); set `{key(index)}.target` to the column "
            "holding the targets"
        )
    return rows[: spec.examples] if spec.examples else rows


def table_set(spec: Dataset, index: int, rows: list[dict], collate: Callable, batch: int,
              task: str) -> EvalSet:  # fmt: skip
    """A table data set: `collate` turns each chunk of rows into a batch."""
    import torch

    column = spec.target if isinstance(spec.target, str) else "target"
    values = [row[column] for row in rows]
    try:
        target = torch.as_tensor(values)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ConfigError(f"`{key(index)}`: target column `{column}` cannot become a tensor "
                          f"({exc}); it must hold numbers") from exc  # fmt: skip
    target = _typed_target(target, task, f"`{key(index)}` column `{column}`")
    batches = []
    for start in range(0, len(rows), batch):
        chunk = rows[start : start + batch]
        try:
            batches.append(collate(chunk))
        except Exception as exc:
            raise ProjectError(
                f"`{key(index)}.collate: {spec.collate}` raised {describe(exc)} on rows "
                f"{start}..{start + len(chunk) - 1}"
            ) from exc
    ids = [str(row["id"]) for row in rows] if all("id" in row for row in rows) else None
    return EvalSet(spec.name, f"table {spec.table}", batches, target, rows.__getitem__, ids, rows)


def loader_set(spec: Dataset, index: int, datamodule: Any, task: str) -> EvalSet:
    """A loader data set, read in dataset order (a shuffling loader is rebuilt sequential)."""
    import torch
    from torch.utils.data import DataLoader, IterableDataset, Subset

    what = f"`{key(index)}.loader: {spec.loader}` ({spec.loader}_dataloader)"
    make = getattr(datamodule, f"{spec.loader}_dataloader", None)
    try:
        loader = make()
    except Exception as exc:
        raise ProjectError(f"{what} raised {describe(exc)}") from exc
    dataset = getattr(loader, "dataset", None)
    mapped = dataset is not None and not isinstance(dataset, IterableDataset)
    if isinstance(loader, DataLoader) and mapped and loader.batch_size is not None:
        if spec.examples:
            dataset = Subset(dataset, range(min(spec.examples, len(dataset))))
        loader = DataLoader(
            dataset,
            batch_size=loader.batch_size,
            shuffle=False,
            collate_fn=loader.collate_fn,
            num_workers=loader.num_workers,
        )
    else:
        mapped = False  # a batch sampler of its own, or an iterable: order as it comes
    batches, targets, seen = [], [], 0
    try:
        for batch in loader:
            batches.append(batch)
            targets.append(_batch_target(batch, spec.target, what))
            seen += len(targets[-1])
            if spec.examples and seen >= spec.examples:
                break
    except ProjectError:
        raise
    except Exception as exc:
        raise ProjectError(f"{what}: iterating it raised {describe(exc)}") from exc
    if not batches:
        raise ProjectError(f"{what} yielded no batches")
    # A loader mltest could not rebuild may end past `examples`: predictions are cut to match.
    target = _typed_target(torch.cat(targets)[: spec.examples or None], task, what)
    example = dataset.__getitem__ if mapped else None
    return EvalSet(spec.name, f"{spec.loader} loader", batches, target, example)


def _batch_target(batch: Any, spec: str | int | None, what: str) -> Any:
    import torch

    found = None
    if isinstance(batch, dict):
        names = [spec] if spec is not None else [k for k in _TARGET_KEYS if k in batch]
        found = batch.get(names[0]) if names else None
    elif isinstance(batch, (list, tuple)) and batch:
        position = spec if isinstance(spec, int) else -1
        if isinstance(spec, str):
            raise ProjectError(f"{what}: batches are sequences, so `target` is a position "
                               f"(e.g. 1), not {spec!r}")  # fmt: skip
        found = batch[position] if -len(batch) <= position < len(batch) else None
    if not isinstance(found, torch.Tensor):
        raise ProjectError(
            f"{what}: cannot find the targets in a batch of type {type(batch).__name__}; "
            "batches should be (inputs, targets) or a dict with `target`/`label`/`y`, or set "
            "`target` to the position or key that holds them"
        )
    return found.detach().cpu()


def _typed_target(target: Any, task: str, what: str) -> Any:
    if task == "regression":
        return target.float()
    if target.is_floating_point() and not bool((target == target.round()).all()):
        raise ProjectError(
            f"{what}: task `{task}` needs class indices as targets, but they hold fractions"
        )
    return target.long()


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value == ""


def inline_input(example: Any, rows: bool, target_column: str, limit: int = 256) -> Any:
    """An example's input as JSON values for the hard-example list, or None when too large:
    a table row without its target, or the first tensor of a dataset item."""
    if rows:
        return {k: _plain(v) for k, v in example.items() if k != target_column}
    first = example[0] if isinstance(example, (list, tuple)) and example else example
    if hasattr(first, "numel") and first.numel() <= limit:
        return first.tolist()
    return None


def _plain(value: Any) -> Any:
    if hasattr(value, "item") and getattr(value, "size", 1) == 1:
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
