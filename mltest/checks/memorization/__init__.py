"""Memorization (`checks.memorization`): can a fresh model overfit a few fixed batches, and how
many epochs does it take?

Reads: the user's `training_step` / `configure_optimizers` (and `validation_step` under manual
optimization), the first N training batches, and the recorded epoch-count baseline.
Records: per environment, the median epoch count over the seeds, each seed's count (`null`
for a seed that did not reach the target), the schedule length, the median learning curve, a
short history of earlier medians, the optimizers' starting learning rates and the normalisation
layers that did not train (what a count far from the baseline is explained with).

This entry imports no torch: the supervisor validates `Settings` without it, and `run` imports
the measuring side only where checks run (the worker).

Modules: `settings` (config), `judge` (which step judges the target), `samples` (the built-in
judgement of a generative model's samples), `fit` (one seeded, observed Lightning fit),
`seed_run` (what a fit observed), `decide` (the verdict), `hints` (what each kind of failure
asks to check), `evidence` (the facts that name a cause: learning rates, idle normalisation
layers, the label-leak probe), `report` (table and charts), `check`
(`validate`, `run`: train the seeds, decide, compare or record; `explore`: the curves
`mltest init` picks a target from).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mltest.checks.memorization.settings import KIND, Settings, Target, Tolerance

if TYPE_CHECKING:
    from mltest.checks.base import CheckContext
    from mltest.report import CheckResult


__all__ = ["KIND", "Settings", "Target", "Tolerance", "explore", "run", "validate"]


def validate(ctx: CheckContext, settings: Settings) -> None:
    """Before anything trains (see `mltest.checks.memorization.check.validate`)."""
    from mltest.checks.memorization.check import validate as validate_check

    validate_check(ctx, settings)


def run(ctx: CheckContext, settings: Settings) -> CheckResult:
    """Run the memorization check (see `mltest.checks.memorization.check.run`)."""
    from mltest.checks.memorization.check import run as run_check

    return run_check(ctx, settings)


def explore(ctx: CheckContext, settings: Settings) -> list:
    """Each seed's learning curve over the whole budget, for `mltest init` (see
    `mltest.checks.memorization.check.explore`)."""
    from mltest.checks.memorization.check import explore as explore_seeds

    return explore_seeds(ctx, settings)
