"""What every check shares: its settings base, the context it runs in, its time budget."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field

from mltest.baselines import BaselineStore
from mltest.config import LoadedConfig, Strict
from mltest.errors import CheckTimeout, ConfigError

# Lightning strategies that start the other ranks as new processes of their own (spawn, fork):
# what a check observes in them (callbacks' records, the fitted model) never comes back.
_SPAWNING = ("ddp_spawn", "ddp_fork", "ddp_notebook", "spawn", "fork", "notebook")
# Strategies that shard parameters: the model outside the Trainer holds only a shard.
_SHARDING = ("fsdp", "deepspeed")


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


def strategy_of(trainer: dict[str, Any]) -> tuple[str, int]:
    """The config's Lightning strategy name (`auto` when unset) and how many processes it runs
    (devices x nodes; 1 when the device count is `auto` or a single device)."""
    strategy = trainer.get("strategy", "auto")
    name = strategy if isinstance(strategy, str) else type(strategy).__name__
    devices = trainer.get("devices", 1)
    if isinstance(devices, (list, tuple)):
        count = len(devices)
    elif isinstance(devices, str) and devices.strip().lstrip("-").isdigit():
        count = int(devices)
    elif isinstance(devices, int):
        count = devices
    else:
        count = 1
    count = max(count, 1)  # -1 (all devices) is not known before start; judged as one
    return name.lower(), count * max(int(trainer.get("num_nodes", 1) or 1), 1)


def refuse_strategy(ctx: CheckContext, *, sharded_ok: bool, why_not_sharded: str = "") -> None:
    """Refuse, before training, a strategy this check cannot run under.

    `ddp` (and the single-process strategies) run every check: each rank runs the same check on
    its share of the data and rank 0 reports. Strategies that spawn or fork their ranks lose
    what the check observes in them; sharded strategies (fsdp, deepspeed) leave the model
    outside the Trainer holding a shard, which checks that read or predict with the whole
    model (`sharded_ok=False`) cannot use.

    Raises:
        ConfigError: naming the check, the strategy and what to use instead.
    """
    name, processes = strategy_of(ctx.trainer_settings)
    if processes < 2 and not name.startswith(_SHARDING):
        return
    if any(name.startswith(s) or name.endswith(s) for s in _SPAWNING):
        raise ConfigError(
            f"checks.{ctx.name} cannot run under `trainer.strategy: {name}`: it starts its "
            "ranks as new processes, and what the check observes in them never comes back; "
            "use `strategy: ddp` (the ranks are mltest's worker started again), or run the "
            "suite on one device"
        )
    if name.startswith(_SHARDING) and not sharded_ok:
        raise ConfigError(
            f"checks.{ctx.name} cannot run under `trainer.strategy: {name}`: {why_not_sharded}; "
            f"use `strategy: ddp`, or leave `{ctx.name}` out of this suite (a second suite "
            "on one device can run it)"
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


def environment_mismatch(env_key: str, recorded: list[str], update_command: str) -> tuple[str, str]:
    """The sentence and hint for a run with no baseline for its own environment while others
    have one (another torch minor, device, precision or world size): not a model bug, so the
    check ends as an error (exit 2), never a failure.

    Returns:
        (`no baseline for this run's environment: recorded for X, this run is Y`, the hint).
    """
    more = f" and {len(recorded) - 4} more" if len(recorded) > 4 else ""
    shown = ", ".join(recorded[:4]) + more
    return (
        f"no baseline for this run's environment: recorded for {shown}, this run is {env_key}",
        f"A different torch, device, precision or world size is not a model bug: record with "
        f"`{update_command}` on this runner (the action's `baselines: update` workflow, "
        "docs/github-action.md, 'Record baselines on the runner') and commit what it writes.",
    )


@dataclass
class CheckContext:
    """Everything a check may use. Checks never touch GitHub or the report files.

    Attributes:
        name: the check's name (its key under `checks:`).
        loaded: the validated config and its location.
        project: builds fresh seeded models and data modules.
        baselines: the repo's baseline store.
        update_baselines: True under `mltest baseline update`: record instead of compare.
        pin_reference: True under `mltest baseline update --pin`: the evaluation gate also
            re-pins its reference (nothing else writes it).
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
    pin_reference: bool = False

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
