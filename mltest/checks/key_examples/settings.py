"""`checks.key_examples` in mltest.yaml: the table, collate, labels and allowed failure rates.
Torch-free: the supervisor validates these without Lightning."""

from __future__ import annotations

from pydantic import Field, field_validator

from mltest.checks.base import CheckSettings

KIND = "key_examples"


class Settings(CheckSettings):
    """`checks.key_examples` in mltest.yaml."""

    examples: str = Field(
        description="table file (.csv/.jsonl/.parquet, relative to the config) or "
        "`module:function` returning a list of dicts or a DataFrame"
    )
    collate: str = Field(description="import path of fn(list of inputs) -> batch")
    labels: list[str] | None = Field(
        None, min_length=1, description="class names, index order; outputs give indices"
    )
    batch_size: int = Field(256, ge=1, description="examples per predicted batch")
    allowed_failure_rate: float = Field(0.0, ge=0, le=1, description="default for every tag")
    tag_failure_rates: dict[str, float] = Field(
        default_factory=dict, description="tag -> allowed failure rate (0..1)"
    )
    require_baseline: bool = Field(False, description="fail when no baseline is recorded")
    show_failures: int = Field(30, ge=1, description="failing examples listed in the details")

    @field_validator("tag_failure_rates")
    @classmethod
    def _rates(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {k: v for k, v in value.items() if not 0 <= v <= 1}
        if bad:
            raise ValueError(f"rates must be between 0 and 1, got {bad}")
        return value

