"""Slices: which examples of a data set fall into each named slice.

Every data set has the slice `all`. A `column` slicing makes `column=value` slices, a `tags`
slicing one slice per tag (a `;`-separated column, or a list), a `function` slicing the names
the user's function returns for each example (a name, a list of names, or None). An example
may be in several slices.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from mltest.checks.evaluation.data import EvalSet
from mltest.checks.evaluation.settings import ALL, Slicing
from mltest.errors import ConfigError, ProjectError, describe

MAX_SLICES = 50  # per slicing: every slice is bootstrapped for every metric


def slice_members(
    data: EvalSet, slicings: list[Slicing], functions: dict[str, Callable]
) -> dict[str, Any]:
    """Slice name -> the sorted example indices in it (`all` first), for one data set.

    Args:
        data: the data set.
        slicings: the config's slicings (those limited to other data sets are skipped).
        functions: import path -> the imported slicing function.

    Raises:
        ConfigError: a column is missing, a slicing makes too many slices, or the examples
            cannot be reached one by one.
        ProjectError: a slicing function raised or returned something that is not a name.
    """
    import torch

    members: dict[str, list[int]] = {}
    for slicing in slicings:
        if slicing.datasets and data.name not in slicing.datasets:
            continue
        if data.example is None:
            raise ConfigError(
                f"checks.evaluation.slices ({slicing.spec}): data set `{data.name}` comes from "
                "a loader whose examples cannot be read one by one (an iterable dataset or a "
                "batch sampler of its own); slice a map-style dataset or a table"
            )
        found: dict[str, list[int]] = {}
        for index in range(data.count):
            for name in _names(slicing, data.example(index), functions, data.name, index):
                found.setdefault(name, []).append(index)
        if len(found) > MAX_SLICES:
            raise ConfigError(
                f"checks.evaluation.slices ({slicing.spec}): data set `{data.name}` has "
                f"{len(found)} slices; at most {MAX_SLICES} per slicing (each is bootstrapped "
                "for every metric): bucket the values with a `function` slicing"
            )
        for name, indices in found.items():
            members.setdefault(name, []).extend(indices)
    out = {ALL: torch.arange(data.count)}
    for name in sorted(members):
        if name != ALL:
            out[name] = torch.tensor(sorted(set(members[name])), dtype=torch.long)
    return out


def _names(
    slicing: Slicing, example: Any, functions: dict[str, Callable], dataset: str, index: int
) -> list[str]:
    where = f"checks.evaluation.slices ({slicing.spec}), data set `{dataset}` example {index}"
    if slicing.function:
        try:
            got = functions[slicing.function](example)
        except Exception as exc:
            raise ProjectError(f"{where}: the function raised {describe(exc)}") from exc
        names = [] if got is None else [got] if isinstance(got, str) else got
        if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
            raise ProjectError(
                f"{where}: the function returned {got!r}; return a slice name, a list of "
                "names, or None"
            )
        return [n for n in names if n]
    column = slicing.column or slicing.tags
    if not isinstance(example, dict):
        raise ConfigError(
            f"{where}: `{'column' if slicing.column else 'tags'}: {column}` reads a column, "
            f"but the example is a {type(example).__name__}; slice tables or datasets of "
            "dicts by column, others with a `function`"
        )
    if column not in example:
        columns = ", ".join(map(str, example))
        raise ConfigError(f"{where}: no column `{column}` (columns: {columns})")
    value = example[column]
    if _blank(value):
        return []
    if slicing.column:
        return [f"{column}={_text(value)}"]
    tags = value.split(";") if isinstance(value, str) else list(value)
    return [t for t in (str(tag).strip() for tag in tags) if t]


def _text(value: Any) -> str:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value == ""
