"""`checks.memorization` in mltest.yaml: the target, the tolerance against the baseline, the
budget and how seeds run. Torch-free: the supervisor validates these without Lightning."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from mltest.checks.base import CheckSettings
from mltest.config import Strict

KIND = "memorization"
MAX_LATENT = 65_536


class Target(Strict):
    """When a batch counts as memorized: loss below a value, or a metric reaching one."""

    loss_below: float | None = None
    metric: str | None = Field(
        None, description="a key of the judging step's returned dict or of its self.log calls"
    )
    at_least: float | None = None
    at_most: float | None = Field(None, description="for a metric that falls (a distance)")

    @model_validator(mode="after")
    def _one_target(self) -> Target:
        bounds = [b for b in (self.at_least, self.at_most) if b is not None]
        if self.metric is None and not bounds:
            if self.loss_below is None:
                raise ValueError("give `loss_below`, or `metric` with `at_least` or `at_most`")
            return self
        if self.loss_below is not None:
            raise ValueError("give either `loss_below` or `metric` with a bound, not both")
        if self.metric is None or len(bounds) != 1:
            raise ValueError("`metric` goes with one of `at_least` or `at_most`")
        return self

    @property
    def quantity(self) -> str:
        """The name of what the target is about: the metric, or `loss`."""
        return self.metric or "loss"

    @property
    def value(self) -> float:
        """The target's threshold."""
        for bound in (self.loss_below, self.at_least, self.at_most):
            if bound is not None:
                return bound
        raise AssertionError("validated: one bound is set")

    @property
    def relation(self) -> str:
        """How the quantity must stand to the value: `<` (loss), `≥` or `≤` (a metric)."""
        if self.loss_below is not None:
            return "<"
        return "≤" if self.at_most is not None else "≥"

    @property
    def lower_is_better(self) -> bool:
        """True for a loss or a distance (`loss_below`, `at_most`), False for `at_least`."""
        return self.at_least is None

    def as_yaml(self, value: float | None = None) -> str:
        """The target as mltest.yaml writes it, e.g. `{loss_below: 0.1}`, optionally with
        another threshold."""
        value = self.value if value is None else value
        if self.loss_below is not None:
            return f"{{loss_below: {value:g}}}"
        bound = "at_most" if self.at_most is not None else "at_least"
        return f"{{metric: {self.metric}, {bound}: {value:g}}}"

    def describe(self) -> str:
        if self.loss_below is not None:
            return f"loss < {self.loss_below:g}"
        if self.at_most is not None:
            return f"{self.metric} <= {self.at_most:g}"
        return f"{self.metric} >= {self.at_least:g}"

    def met(self, loss: float | None, metrics: dict[str, float]) -> bool:
        if self.loss_below is not None:
            return loss < self.loss_below
        if self.at_most is not None:
            return metrics[self.metric] <= self.at_most
        return metrics[self.metric] >= self.at_least


class Tolerance(Strict):
    """How much slower than the baseline still passes: both limits must be exceeded to fail."""

    relative: float = Field(0.25, ge=0)
    epochs: int = Field(2, ge=0)


class Settings(CheckSettings):
    """`checks.memorization` in mltest.yaml."""

    batches: int = Field(1, ge=1, description="first N training batches, in dataset order")
    max_epochs: int = Field(200, ge=1, description="epoch budget per seed")
    target: Target = Field(default_factory=lambda: Target(loss_below=0.05))
    tolerance: Tolerance = Field(default_factory=Tolerance)
    faster_notice: float = Field(
        0.5, gt=0, le=1, description="median at or below this share of baseline -> notice"
    )
    faster_limit: float | None = Field(
        3.0, gt=1, description="median this many times below the baseline (and more than "
        "`tolerance.epochs` below it) -> fails as a finding to explain; null: a notice only",
    )
    history: int = Field(10, ge=0, description="earlier medians kept in the baseline")
    seeds: list[int] | None = Field(None, min_length=1, description="overrides top-level seeds")
    workers: int | Literal["auto"] = Field(
        1, description="seeds trained at once in forked CPU processes; `auto`: one per core"
    )
    threads: int = Field(
        1, ge=1, le=256,
        description="torch intra-op threads per seed on the CPU; counts depend on it",
    )
    judge: Literal["auto", "training_step", "validation_step", "samples"] = Field(
        "auto",
        description="what measures the target in eval mode, no grad; `samples`: the built-in "
        "`sample_gap` of generated samples against the real batch; `auto`: training_step, or "
        "under manual optimization validation_step when defined, else samples",
    )
    latent_shape: tuple[int, ...] | None = Field(
        None, description="shape of one latent vector for `judge: samples`; default: from "
        "the model's example_input_array or latent_dim",
    )
    hold: int = Field(
        1, ge=1, le=100,
        description="consecutive judgements the target must hold (oscillating metrics); the "
        "count is the epoch of the first",
    )

    @field_validator("latent_shape")
    @classmethod
    def _latent_sizes(cls, value):
        if value is not None and (not value or any(n < 1 or n > MAX_LATENT for n in value)):
            raise ValueError(f"a latent shape is 1 or more sizes in 1..{MAX_LATENT}")
        return value

    @field_validator("workers")
    @classmethod
    def _positive(cls, value):
        if value != "auto" and value < 1:
            raise ValueError("`workers` is a number of processes (1 or more) or `auto`")
        return value

