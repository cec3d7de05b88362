"""The supervisor's plan of a run: which checks run, in which order, and why the others do not.

Only this plan skips a check. A run whose plan holds nothing to run is refused before any
worker starts: exit 0 means that at least one check ran and passed, and a config without
checks, or a `--check` naming a check the config does not list, proves nothing.
Supervisor side: no torch, no user code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mltest.errors import MltestError


@dataclass(frozen=True)
class PlannedCheck:
    """One check of the run.

    Attributes:
        name: the check.
        settings: its validated settings (None when not configured).
        skip: why it does not run ("" when it runs).
    """

    name: str
    settings: Any
    skip: str = ""

    @property
    def budget_s(self) -> float:
        return float(self.settings.time_budget_s)


@dataclass(frozen=True)
class RunPlan:
    """Every known check in run order, each planned to run or skipped with a reason."""

    checks: tuple[PlannedCheck, ...]

    @property
    def to_run(self) -> list[str]:
        return [c.name for c in self.checks if not c.skip]

    @property
    def skipped(self) -> dict[str, str]:
        return {c.name: c.skip for c in self.checks if c.skip}

    @property
    def order(self) -> list[str]:
        return [c.name for c in self.checks]

    def budget_s(self, name: str) -> float:
        return next(c.budget_s for c in self.checks if c.name == name)


def make_plan(loaded: Any, only: list[str] | None, known: list[str]) -> RunPlan:
    """The plan for a validated config and the `--check` selection.

    Args:
        loaded: the validated config (`mltest.config.LoadedConfig`).
        only: the names given with `--check` (None or empty: every configured check).
        known: every check mltest has, in run order.

    Raises:
        MltestError: `--check` names an unknown check or one the config does not list, or
            nothing is left to run; the message says what to do.
    """
    where = loaded.display_path
    configured = [name for name in known if name in loaded.checks]
    if only:
        unknown = sorted(set(only) - set(known))
        if unknown:
            raise MltestError(
                f"--check {', '.join(unknown)}: no such check; known: {', '.join(known)}"
            )
        absent = [name for name in only if name not in loaded.checks]
        if absent:
            listed = ", ".join(configured) or "none"
            raise MltestError(
                f"--check {', '.join(absent)}: not configured in {where} (under `checks:`, "
                f"which lists: {listed}); add it to the config or drop the --check"
            )
    if not configured:
        raise MltestError(
            f"{where}: no check is configured under `checks:`, so nothing would be tested; "
            f"add at least one of {', '.join(known)} (see the README's Configuration)"
        )
    checks = []
    for name in known:
        settings = loaded.checks.get(name)
        skip = ""
        if settings is None:
            skip = "not configured"
        elif only and name not in only:
            skip = "not selected with --check"
        checks.append(PlannedCheck(name, settings, skip))
    return RunPlan(tuple(checks))
