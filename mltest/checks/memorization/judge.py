"""Which step of the model judges the memorization target, refused before training when none can."""

from __future__ import annotations

from typing import Any

from mltest.checks.memorization.settings import Settings


def judge_for(model: Any, settings: Settings) -> str:
    """The name of the step that judges the target: `training_step` or `validation_step`.

    Raises:
        ConfigError: when that step cannot judge (manual optimization's training_step steps
            the optimizers; a validation_step the model does not define).
    """
    from mltest.errors import ConfigError

    manual = not getattr(model, "automatic_optimization", True)
    name = settings.judge
    if name == "auto":
        name = "validation_step" if manual else "training_step"
    model_name = type(model).__name__
    if name == "training_step" and manual:
        raise ConfigError(
            f"checks.memorization.judge: {model_name} uses manual optimization "
            "(automatic_optimization = False), so its training_step steps the optimizers and "
            "cannot judge the target; define validation_step (log or return the target's "
            "metric) and set `judge: validation_step` or `auto`"
        )
    if name == "validation_step" and not _defines(model, "validation_step"):
        why = "uses manual optimization, so" if manual else "has `judge: validation_step`, but"
        raise ConfigError(
            f"checks.memorization: {model_name} {why} the target is judged by "
            "validation_step, which it does not define; add a validation_step that logs "
            "(self.log) or returns the target's metric: memorization runs it on the same "
            "fixed batches in eval mode, with no grad and no optimizer step"
        )
    return name


def _defines(model: Any, method: str) -> bool:
    """Whether the user's class (not Lightning's base class) defines `method`."""
    for cls in type(model).__mro__:
        if method in vars(cls):
            return cls.__name__ != "LightningModule"
    return False

