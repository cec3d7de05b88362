"""`checks.sanity` settings. Torch-free: the supervisor validates a config without torch."""

from __future__ import annotations

from pydantic import Field, field_validator

from mltest.checks.base import CheckSettings
from mltest.config import Strict

KIND = "sanity"


class Padding(Strict):
    """`checks.sanity.padding`: where the padding sits in a batch, for the padding probes."""

    input_key: int | str = Field(description="batch element holding the padded sequences")
    pad_value: int = Field(0, ge=0, description="the token id (or value) used for padding")
    mask_key: int | str | None = Field(
        None, description="batch element holding the mask, padded alongside the input"
    )
    extra: int = Field(5, ge=1, le=64, description="padding positions added by the probe")


class Settings(CheckSettings):
    """`checks.sanity` in mltest.yaml."""

    seed: int | None = Field(None, description="seed of the fresh model; default: first of seeds")
    frozen: list[str] = Field(
        default_factory=list, description="glob patterns of parameters that must not change"
    )
    allow_unchanged: list[str] = Field(
        default_factory=list, description="trainable parameters allowed not to train this step"
    )
    moving_buffers: list[str] = Field(
        default_factory=list, description="extra buffers that must move (norm stats always do)"
    )
    ignore_buffers: list[str] = Field(
        default_factory=list, description="norm-layer buffers not required to move"
    )
    output_range: tuple[float, float] | None = Field(
        None, description="[lo, hi] every forward output value must lie in"
    )
    input_key: int | str | None = Field(
        None, description="where the model's input sits in a batch; default batch[0]"
    )
    batch_independence: bool = False
    steps: int = Field(
        3, ge=1, le=20, description="optimisation steps on the first batch (1: no step probes)"
    )
    gradient_check: bool = Field(
        True, description="compare autograd with finite differences in float64 on a copy"
    )
    init_loss: bool = Field(True, description="compare the loss at init with ln C / the baseline")
    classes: int | None = Field(
        None, ge=2, description="classes of a classifier, when the batch does not tell"
    )
    units: bool = Field(True, description="dead and saturated units per activation module")
    padding: Padding | None = Field(None, description="where the padding sits, for its probes")
    zero_lr_steps: int = Field(
        10,
        ge=0,
        le=1000,
        description="steps at learning rate 0 (a warm-up from 0) passed over before the judged "
        "step",
    )
    causal: bool | None = Field(
        None,
        description="check that no output sees a later position (a language model); unset: "
        "a notice suggests it to a sequence model",
    )
    gan: bool = Field(
        True, description="check that a GAN's discriminator and generator losses agree on 'real'"
    )
    loss_growth_limit: float = Field(
        100.0, gt=1, description="largest factor the loss may grow by over the steps"
    )
    lr_drop_limit: float = Field(
        2.0, gt=1, le=1e6, description="largest fall of a learning rate over the steps"
    )

    @field_validator("output_range")
    @classmethod
    def _ordered(cls, value):
        if value is not None and not value[0] < value[1]:
            raise ValueError(f"expected [lo, hi] with lo < hi, got {list(value)}")
        return value
