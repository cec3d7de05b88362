"""Which step of the model judges the memorization target, refused before training when none can."""

from __future__ import annotations

from typing import Any

from mltest.checks.memorization.settings import Settings


def judge_for(model: Any, settings: Settings) -> str:
    """What judges the target: `training_step`, `validation_step` or `samples` (the built-in
    judgement of generated samples, `memorization.samples`).

    Raises:
        ConfigError: when that cannot judge (manual optimization's training_step steps the
            optimizers; a validation_step the model does not define; samples without a
            latent shape or a `sample_gap` target).
    """
    from mltest.errors import ConfigError

    manual = not getattr(model, "automatic_optimization", True)
    name = settings.judge
    if name == "auto":
        if not manual:
            name = "training_step"
        else:
            name = "validation_step" if _defines(model, "validation_step") else "samples"
    model_name = type(model).__name__
    if name == "training_step" and manual:
        raise ConfigError(
            f"checks.memorization.judge: {model_name} uses manual optimization "
            "(automatic_optimization = False), so its training_step steps the optimizers and "
            "cannot judge the target; use `judge: samples` (the built-in sample statistics), "
            "or define validation_step (log or return the target's metric) and set "
            "`judge: validation_step` or `auto`"
        )
    if name == "validation_step" and not _defines(model, "validation_step"):
        why = "uses manual optimization, so" if manual else "has `judge: validation_step`, but"
        raise ConfigError(
            f"checks.memorization: {model_name} {why} the target is judged by "
            "validation_step, which it does not define; add a validation_step that logs "
            "(self.log) or returns the target's metric: memorization runs it on the same "
            "fixed batches in eval mode, with no grad and no optimizer step"
        )
    if name == "samples":
        from mltest.checks.memorization.samples import METRIC, latent_shape

        latent_shape(model, settings.latent_shape)
        if settings.target.metric != METRIC:
            raise ConfigError(
                f"checks.memorization: {model_name} is judged by its samples "
                f"(judge `{settings.judge}`{', manual optimization' if manual else ''}), "
                f"which measure `{METRIC}`; set `target: {{metric: {METRIC}, at_most: ...}}` "
                "(`mltest init` proposes a value), or define a validation_step that logs a "
                "metric of your own"
            )
    return name


def judging_step(name: str, model: Any, settings: Settings) -> Any:
    """What memorization's judging loop calls: the name of the model's own step, or, for
    `samples`, the built-in judgement bound to the model (a callable)."""
    if name != "samples":
        return name
    from mltest.checks.memorization.samples import SampleJudge, latent_shape

    return SampleJudge(latent_shape(model, settings.latent_shape)).bind(model)


def _defines(model: Any, method: str) -> bool:
    """Whether the user's class (not Lightning's base class) defines `method`."""
    for cls in type(model).__mro__:
        if method in vars(cls):
            return cls.__name__ != "LightningModule"
    return False

