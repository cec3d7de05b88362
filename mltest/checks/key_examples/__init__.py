"""Key examples (`checks.key_examples`): CheckList's three kinds of functionality test on the
model under test.

Reads: a table of examples (CSV, JSONL, Parquet, or a `module:function`), the user's
`collate`, the model under test's `predict_step` in eval mode plus the configured
post-processing, and the recorded set of passing examples.
Records: per environment, the ids of the examples that pass (so new failures are told from
old ones).

This entry imports no torch: the supervisor validates `Settings` without it, and `run` imports
the measuring side only where checks run (the worker).

Modules: `settings` (config), `table` (read and validate the examples table), `predictions`
(outputs as labels, scores, values), `judging` (each example against its expectation),
`verdict` (rates per tag, the baseline), `report` (cases and the details table), `check`
(`validate`, `run`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mltest.checks.key_examples.settings import KIND, Settings

if TYPE_CHECKING:
    from mltest.checks.base import CheckContext
    from mltest.report import CheckResult


__all__ = ["KIND", "Settings", "run", "validate"]


def validate(ctx: CheckContext, settings: Settings) -> None:
    """Before anything trains (see `mltest.checks.key_examples.check.validate`)."""
    from mltest.checks.key_examples.check import validate as validate_check

    validate_check(ctx, settings)


def run(ctx: CheckContext, settings: Settings) -> CheckResult:
    """Run the key-examples check (see `mltest.checks.key_examples.check.run`)."""
    from mltest.checks.key_examples.check import run as run_check

    return run_check(ctx, settings)
