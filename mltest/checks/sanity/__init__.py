"""Training sanity (`checks.sanity`): a few steps of the user's own training code, judged.

Reads: the user's `training_step` / `configure_optimizers` on the first training batch (a
fresh seeded model), the config's frozen parameters and output range, and the recorded
sanity baseline.
Records: per environment, which parameters train (and, with several optimizers, which each
optimizer's step changes), the loss at init and the activation statistics of each layer.

This package's entry imports no torch: the supervisor validates `Settings` without it, and
`run` imports the measuring side only where checks run (the worker).

Modules: `settings` (config), `obs` (plain observations), `step` (the observed Lightning fit),
`tensors` (the input in a batch, the tensors in an output), `findings` (the first
step's findings), `probes/` (one module per diagnosis), `baseline`,
`details`, `check` (`run`: observe, judge, compare or record).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mltest.checks.sanity.settings import KIND, Padding, Settings

if TYPE_CHECKING:
    from mltest.checks.base import CheckContext
    from mltest.report import CheckResult


__all__ = ["KIND", "Padding", "Settings", "run", "validate"]


def validate(ctx: CheckContext, settings: Settings) -> None:
    """Before anything trains: refuse a strategy the check cannot observe under."""
    from mltest.checks.base import refuse_strategy

    refuse_strategy(
        ctx,
        sharded_ok=False,
        why_not_sharded="it compares every parameter before and after a step, and a sharded "
        "strategy flattens and splits the parameters, so no parameter can be named",
    )


def run(ctx: CheckContext, settings: Settings) -> CheckResult:
    """Run the sanity check (see `mltest.checks.sanity.check.run`)."""
    from mltest.checks.sanity.check import run as run_check

    return run_check(ctx, settings)
