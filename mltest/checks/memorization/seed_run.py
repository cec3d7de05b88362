"""How one seed's memorization fit went: plain values the fit records and the verdict reads."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SeedRun:
    """How one seed went. `epochs` is set only when the target was reached after training."""

    seed: int
    epochs: int | None = None
    initial_loss: float | None = None
    met_before_training: bool = False
    nonfinite: str | None = None
    final_loss: float | None = None
    losses: list[float] = field(default_factory=list)
    initial_metric: float | None = None  # the target metric's value at init (metric targets)
    metric_values: list[float] = field(default_factory=list)  # and after each epoch
    seconds: float = 0.0
    nondeterministic: list[str] = field(default_factory=list)  # ops without such a kernel
    quantity: str = "loss"  # what the target is about: `loss` or the metric's name
    judge: str = "training_step"  # the step that measured it
    loop: str = ""  # why Lightning's own fit loop ran instead of mltest's lean one ('' if not)
    learning_rates: list[float] = field(default_factory=list)  # each param group's, at start
    lr_groups: list[dict] = field(default_factory=list)  # the same per optimizer and group
    idle_norms: list[str] = field(default_factory=list)  # normalisation layers not training

    @property
    def initial_value(self) -> float | None:
        """The target quantity at init."""
        return self.initial_loss if self.quantity == "loss" else self.initial_metric

    @property
    def final_value(self) -> float | None:
        """The target quantity at the last judgement."""
        if self.quantity == "loss":
            return self.final_loss
        return self.metric_values[-1] if self.metric_values else None

    @property
    def curve(self) -> list[float]:
        """The target quantity at init, then after each epoch (empty when never measured)."""
        first = self.initial_value
        rest = self.losses if self.quantity == "loss" else self.metric_values
        return ([] if first is None else [first]) + list(rest)

    def shown(self, when: str) -> str:
        """`loss 0.7` / `d_gap 0.31` at init (`when="init"`) or at the last judgement."""
        value = self.initial_value if when == "init" else self.final_value
        return f"{self.quantity} {shown_number(value)}"

    @property
    def problem(self) -> str | None:
        """Why this seed failed, in words; None when it memorized."""
        if self.met_before_training:
            return (
                f"seed {self.seed}: target already met before any training "
                f"({self.shown('init')} at init)"
            )
        if self.nonfinite:
            return f"seed {self.seed}: {self.nonfinite}"
        if self.epochs is None:
            return f"seed {self.seed}: not memorized, {self.shown('last')} at the last epoch"
        return None


def shown_number(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"

