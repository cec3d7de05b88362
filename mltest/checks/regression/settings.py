"""`checks.regression` in mltest.yaml: where the fixed inputs come from and the tolerances.
Torch-free: the supervisor validates these without Lightning."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from mltest.checks.base import CheckSettings
from mltest.config import Strict

KIND = "regression"

# The kinds of file fixed inputs may come from (read by `fixed_inputs`).
TENSOR_SUFFIXES = (".safetensors", ".npz", ".npy")
TABLE_SUFFIXES = (".csv", ".jsonl", ".json", ".parquet")


class Inputs(Strict):
    """Where the fixed inputs come from: the data module (default) or a file."""

    source: Literal["datamodule", "file"] | None = Field(
        None, description="default: `file` when `file` is given, else `datamodule`"
    )
    dataloader: Literal["predict", "val"] | None = Field(
        None, description="data module loader; default predict when defined, else val"
    )
    file: str | None = Field(None, description="tensor file or table, relative to the config")
    collate: str | None = Field(None, description="import path of fn(list of examples) -> batch")
    examples: int | None = Field(None, ge=1, description="first K examples; default 64 / all")

    @model_validator(mode="after")
    def _consistent(self) -> Inputs:
        if self.kind == "file":
            if not self.file:
                raise ValueError("source `file` needs `file: path/to/inputs`")
            suffix = Path(self.file).suffix
            if suffix not in TENSOR_SUFFIXES + TABLE_SUFFIXES:
                raise ValueError(
                    f"`file` must end in one of {', '.join(TENSOR_SUFFIXES + TABLE_SUFFIXES)}"
                    f", got {self.file!r}"
                )
            if suffix in TABLE_SUFFIXES and not self.collate:
                raise ValueError(
                    "a table needs `collate: module:function` to turn rows into a batch"
                )
            if self.dataloader:
                raise ValueError("`dataloader` applies to data-module inputs, not to a file")
        else:
            if self.file:
                raise ValueError("`file` is given but `source` is `datamodule`; drop one")
            if self.collate:
                raise ValueError(
                    "`collate` applies to file inputs; data-module inputs use the loader's own "
                    "collate_fn"
                )
        return self

    @property
    def kind(self) -> str:
        return self.source or ("file" if self.file else "datamodule")


class OutputTolerance(Strict):
    """Tolerance for one named output; unset values fall back to the check's."""

    rtol: float | None = Field(None, ge=0)
    atol: float | None = Field(None, ge=0)


class CrossEnvironment(Strict):
    """Tolerance for non-classifier float outputs compared with another environment's golden
    (classifier outputs are judged on their labels there)."""

    rtol: float = Field(1e-2, ge=0)
    atol: float = Field(1e-3, ge=0)


class Settings(CheckSettings):
    """`checks.regression` in mltest.yaml."""

    inputs: Inputs = Field(default_factory=Inputs)
    batch_size: int | None = Field(None, ge=1, description="inference batch size")
    rtol: float = Field(1e-4, ge=0, description="relative tolerance for float outputs")
    atol: float = Field(1e-5, ge=0, description="absolute tolerance for float outputs")
    per_output: dict[str, OutputTolerance] = Field(
        default_factory=dict, description="output name -> {rtol, atol}"
    )
    task: Literal["auto", "classification", "regression"] = Field(
        "auto", description="classification: count argmax label flips on float outputs"
    )
    worst: int = Field(10, ge=1, le=200, description="rows in the worst-examples table")
    cross_environment: CrossEnvironment = Field(default_factory=lambda: CrossEnvironment())
    calibrate: bool = Field(
        True,
        description="source train: at baseline update, train once more with other float sums "
        "and widen atol to 4x how far the outputs moved",
    )

