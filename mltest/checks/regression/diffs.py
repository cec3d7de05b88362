"""What comparing outputs with golden ones finds: per-output differences and their totals.
Plain values, no numpy work: `compare` fills them, the report and charts read them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class Tolerance:
    """Allowed difference for one float output."""

    rtol: float = 1e-4
    atol: float = 1e-5


@dataclass
class Worst:
    """One of the most-moved values: where it is, what it was, what it is now."""

    index: tuple[int, ...]
    golden: Any
    got: Any
    abs_diff: float | None = None


@dataclass
class OutputDiff:
    """How one named output compares with its golden counterpart.

    Attributes:
        name: the output's flattened name (`output`, `0`, `logits`, `scores.top`...).
        problem: a structural mismatch in words (missing, unexpected, shape, kind); None if none.
        total: values compared.
        moved: values outside tolerance (or not equal, for exact outputs).
        exact: compared exactly (integers, booleans, strings).
        max_abs, mean_abs, max_rel, mean_rel: differences over all values (floats only).
        flipped: predicted labels that changed, for classifier outputs; else None.
        ties: of those, flips between labels the golden scored within tolerance of each other.
        judged_on: `values` (every value within tolerance) or `labels` (no flip but ties).
        examples: examples (first-axis rows) in the output.
        labels: predicted labels in a classifier output: one per example, or one per pixel
            or token when the classes are on another axis than the last of `[B, C]`.
        worst: the worst values, most-moved first.
    """

    name: str
    problem: str | None = None
    total: int = 0
    moved: int = 0
    exact: bool = False
    max_abs: float = 0.0
    mean_abs: float = 0.0
    max_rel: float = 0.0
    mean_rel: float = 0.0
    flipped: int | None = None
    ties: int = 0
    judged_on: Literal["values", "labels"] = "values"
    examples: int = 0
    labels: int = 0
    worst: list[Worst] = field(default_factory=list)
    histogram: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        if self.problem is not None:
            return False
        if self.judged_on == "labels":
            return self.real_flips == 0
        return self.moved == 0

    @property
    def real_flips(self) -> int:
        """Flipped labels that were not near-ties in the golden scores."""
        return (self.flipped or 0) - self.ties


@dataclass
class Comparison:
    """Every output's diff, plus totals."""

    outputs: list[OutputDiff]

    @property
    def ok(self) -> bool:
        return all(d.ok for d in self.outputs)

    @property
    def problems(self) -> list[str]:
        return [f"`{d.name}`: {d.problem}" for d in self.outputs if d.problem]

    @property
    def total(self) -> int:
        return sum(d.total for d in self.outputs)

    @property
    def moved(self) -> int:
        return sum(d.moved for d in self.outputs)

    @property
    def flipped(self) -> int | None:
        flips = [d.flipped for d in self.outputs if d.flipped is not None]
        return sum(flips) if flips else None

    @property
    def moved_outputs(self) -> list[OutputDiff]:
        return [d for d in self.outputs if not d.ok]
