"""Fixed-input prediction regression (`checks.regression`): do fixed inputs still give the
golden outputs?

Reads: the model under test (`model_under_test:` in the config: a checkpoint, a short seeded
training run, or the seeded fresh init), its `predict_step` in eval mode plus the configured
post-processing, the fixed inputs (the first K examples of the data module, or a file) and the
golden outputs stored in the repo.
Records: per environment, the golden outputs (safetensors) with their metadata (inputs'
hashes and statistics, versions, device, the training noise measured at update) and the
module trace of the prediction (each submodule call's fingerprint), listed in `baselines.json`
with a short history.

This entry imports no torch: the supervisor validates `Settings` without it, and `run` imports
the measuring side only where checks run (the worker).

Modules: `settings` (config), `fixed_inputs` (read the inputs), `golden` (the record's file
format), `lookup` (which record a run compares with), `compare` (outputs against a record),
`tolerances`, `report` (verdict and the words for it), `record` (baseline update), `trace`,
`fingerprints` and `locate` (which module moved first), `check` (`validate`, `run`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mltest.checks.regression.settings import KIND, Settings

if TYPE_CHECKING:
    from mltest.checks.base import CheckContext
    from mltest.report import CheckResult


__all__ = ["KIND", "Settings", "run", "validate"]


def validate(ctx: CheckContext, settings: Settings) -> None:
    """Before anything trains (see `mltest.checks.regression.check.validate`)."""
    from mltest.checks.regression.check import validate as validate_check

    validate_check(ctx, settings)


def run(ctx: CheckContext, settings: Settings) -> CheckResult:
    """Run the regression check (see `mltest.checks.regression.check.run`)."""
    from mltest.checks.regression.check import run as run_check

    return run_check(ctx, settings)
