"""What every check shares: its settings base, the context it runs in, its time budget."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field

from mltest.baselines import BaselineStore
from mltest.config import LoadedConfig, Strict
from mltest.errors import CheckTimeout


class CheckSettings(Strict):
    """Settings every check accepts."""

    time_budget_s: float = Field(600.0, gt=0, description="wall-clock seconds before error")


class Deadline:
    """A wall-clock budget that long-running loops check cooperatively."""

    def __init__(self, check: str, seconds: float):
        self.check_name = check
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def check(self) -> None:
        """Raise CheckTimeout once the budget is spent."""
        if time.monotonic() > self.end:
            raise CheckTimeout(
                f"check `{self.check_name}` ran past its time budget of {self.seconds:g} s "
                f"(checks.{self.check_name}.time_budget_s); raise the budget or make the "
                "check cheaper (fewer seeds, epochs or examples)"
            )


def record_hint(update_command: str, env_key: str, what: str = "one") -> str:
    """`Record one with `cmd` and commit ...`, plus the runner route for GPU environments."""
    hint = f"Record {what} with `{update_command}` and commit what it writes."
    if not env_key.startswith("cpu"):
        hint += (
            " Without this device locally, record it on the runner with the action's "
            "`baselines: update` workflow (docs/github-action.md, 'Record baselines on the "
            "runner')."
        )
    return hint


@dataclass
class CheckContext:
    """Everything a check may use. Checks never touch GitHub or the report files.

    Attributes:
        name: the check's name (its key under `checks:`).
        loaded: the validated config and its location.
        project: builds fresh seeded models and data modules.
        baselines: the repo's baseline store.
        update_baselines: True under `mltest baseline update`: record instead of compare.
        deadline: the check's time budget.
        shared: values computed by one check and reused by a later one in the same run.
    """

    name: str
    loaded: LoadedConfig
    project: Any
    baselines: BaselineStore
    update_baselines: bool
    deadline: Deadline
    shared: dict[str, Any] = field(default_factory=dict)

    @property
    def seeds(self) -> list[int]:
        return list(self.loaded.config.seeds)

    @property
    def trainer_settings(self) -> dict[str, Any]:
        return dict(self.loaded.config.trainer)

    @property
    def update_command(self) -> str:
        """The command that rewrites this suite's baselines, for hints in messages."""
        return f"mltest baseline update --config {self.loaded.display_path}"
