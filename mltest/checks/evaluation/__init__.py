"""Evaluation gate (`checks.evaluation`): is the candidate model at least as good, on every
held-out data set and slice that matters, as the previous recorded result and a pinned older
reference, beyond noise?

Reads: the candidate (a longer seeded training run, or a checkpoint), the data module's
val/test loaders or named tables, slices (a column, a tags column or a function), metrics
(torchmetrics or the user's function) with their limits, and the recorded previous result and
pinned reference of this environment.
Records: per environment, the previous result (values per data set, slice and metric, the
predictions behind them, a history of earlier recordings) and, with `--pin` or on the first
recording, the pinned reference, in files of its own.

This entry imports no torch: the supervisor validates `Settings` without it, and `run` imports
the measuring side only where checks run (the worker).

Modules: `settings` and `catalog` (config, the built-in metrics), `data` (data sets), `slices`,
`candidate` (the model and its predictions), `metrics` (torchmetrics), `stats` (bootstrap,
McNemar), `cells` (the limits and the no-flap rule), `compare` (every cell and gap), `records`
(previous and pinned), `decide` (the verdict), `report` (table, metrics), `hard` (hardest
examples), `restore` (checkpoint restore / resume), `check` (`validate`, `run`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mltest.checks.evaluation.settings import KIND, Settings

if TYPE_CHECKING:
    from mltest.checks.base import CheckContext
    from mltest.report import CheckResult


__all__ = ["KIND", "Settings", "run", "validate"]


def validate(ctx: CheckContext, settings: Settings) -> None:
    """Before anything trains (see `mltest.checks.evaluation.check.validate`)."""
    from mltest.checks.evaluation.check import validate as validate_check

    validate_check(ctx, settings)


def run(ctx: CheckContext, settings: Settings) -> CheckResult:
    """Run the evaluation gate (see `mltest.checks.evaluation.check.run`)."""
    from mltest.checks.evaluation.check import run as run_check

    return run_check(ctx, settings)
