"""Memorization targets from learning curves: a level every seed reaches with margin.

Pure and torch-free: `mltest init` (supervisor side) proposes a target from the curves its
exploration measured, and a failing memorization check (worker side) suggests one from the
curves of the seeds it trained. A curve is the target quantity at init (index 0), then after
each epoch (index e), as the memorization check judges it.

A proposal is a round number T (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times a power of ten)
such that, for every seed:

- the fresh init is clear of it (at least `INIT_MARGIN` times T), so it is never met by chance
  before training;
- the seed reaches it, held `hold` judgements in a row, within `budget / headroom` epochs, so
  `max_epochs: budget` leaves `headroom` times the slowest seed's count;
- the seed goes on to `T / margin` within the budget, so T is crossed on the way down, not at
  a plateau where float noise decides whether, and when, it is met (the knife edge).

Of the levels that hold, the lowest (the latest count) is proposed: the more epochs a count
takes, the finer it tells a slowdown. When no level holds for every seed, the lowest that
holds for a majority is proposed with the seeds that miss it named, which the baseline records
as "not reached" (see the README, "Seeds that do not reach the target").
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

HEADROOM = 3.0  # the budget is at least this many times the slowest seed's count
MARGIN = 2.0  # ... and every seed goes this factor beyond the target within the budget
INIT_MARGIN = 1.25  # ... and starts this factor above it
_MANTISSAS = (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8)


@dataclass(frozen=True)
class Proposal:
    """A target and what it means for each seed.

    Attributes:
        value: the proposed threshold.
        lower_is_better: True for `loss_below` / `at_most` targets, False for `at_least`.
        counts: seed -> epoch count the target gives (None: not reached within the budget).
        missed: seeds that do not reach it with margin (empty when every seed does).
    """

    value: float
    lower_is_better: bool
    counts: dict[int, int | None] = field(default_factory=dict)
    missed: tuple[int, ...] = ()

    @property
    def slowest(self) -> int:
        """The largest count among the seeds that reach it."""
        return max((c for c in self.counts.values() if c is not None), default=0)

    def describe(self) -> str:
        """`reached by every seed, by epochs 40, 52, 47` (or naming the seeds that miss)."""
        reached = ", ".join(str(c) for c in self.counts.values() if c is not None)
        if not self.missed:
            return f"every seed reaches it, by epochs {reached}"
        missed = ", ".join(map(str, self.missed))
        return f"seeds reach it by epochs {reached}; seed(s) {missed} do not"


def count(curve: Sequence[float], value: float, lower_is_better: bool, hold: int = 1) -> int | None:
    """The epoch a target is counted at: the first of `hold` consecutive judgements after
    training began (index 1 on) that meet it; None when that never happens in the curve."""
    streak = 0
    for epoch in range(1, len(curve)):
        if _meets(curve[epoch], value, lower_is_better):
            streak += 1
            if streak >= hold:
                return epoch + 1 - hold
        else:
            streak = 0
    return None


def best(curve: Sequence[float], lower_is_better: bool) -> tuple[float, int] | None:
    """The best finite value of the curve after training began, and its epoch (first one)."""
    found = [(v, e) for e, v in enumerate(curve) if e >= 1 and math.isfinite(v)]
    if not found:
        return None
    if lower_is_better:
        return min(found, key=lambda pair: (pair[0], pair[1]))
    return max(found, key=lambda pair: (pair[0], -pair[1]))


def propose(
    curves: Mapping[int, Sequence[float]],
    *,
    lower_is_better: bool,
    budget: int,
    hold: int = 1,
    headroom: float = HEADROOM,
    margin: float = MARGIN,
) -> Proposal | None:
    """The lowest round target every seed reaches with margin (see the module docstring), else
    the lowest one a majority reaches, else None.

    Args:
        curves: seed -> the target quantity at init, then after each epoch.
        lower_is_better: a loss or distance (True), or a score such as accuracy (False).
        budget: the epochs a run may take (`max_epochs`).
        hold: consecutive judgements the target must hold.
    """
    if not curves:
        return None
    if not lower_is_better:
        return _propose_score(curves, budget=budget, hold=hold, headroom=headroom)
    values = [v for c in curves.values() for v in c if math.isfinite(v) and v > 0]
    if not values:
        return None
    within = max(1, int(budget / headroom))
    fallback = None
    for level in _round_levels(min(values), max(values)):
        counts: dict[int, int | None] = {}
        missed = []
        for seed, curve in curves.items():
            counts[seed] = count(curve[: budget + 1], level, True, hold)
            settled = best(curve[: budget + 1], True)
            fresh = curve[0] if curve and math.isfinite(curve[0]) else math.inf
            ok = (
                counts[seed] is not None
                and counts[seed] <= within
                and settled is not None
                and settled[0] <= level / margin
                and fresh >= level * INIT_MARGIN
            )
            if not ok:
                missed.append(seed)
        if not missed:
            return Proposal(level, True, counts, ())
        if fallback is None and 2 * len(missed) < len(curves):
            fallback = Proposal(level, True, counts, tuple(missed))
    return fallback


def _propose_score(curves, *, budget: int, hold: int, headroom: float) -> Proposal | None:
    """For scores (accuracy): the highest round level every seed held within the budget."""
    within = max(1, int(budget / headroom))
    levels = sorted(
        {_round_down(v) for c in curves.values() for v in c[1 : within + 1] if math.isfinite(v)},
        reverse=True,
    )
    for level in levels:
        counts = {s: count(c[: within + 1], level, False, hold) for s, c in curves.items()}
        if all(c is not None for c in counts.values()) and all(
            not _meets(c[0], level, False) for c in curves.values() if c
        ):
            return Proposal(level, False, counts, ())
    return None


def _meets(value: float, level: float, lower_is_better: bool) -> bool:
    if not math.isfinite(value):
        return False
    return value < level if lower_is_better else value >= level


def _round_levels(low: float, high: float) -> list[float]:
    """Round numbers (`_MANTISSAS` times powers of ten) from below `low` to above `high`,
    ascending."""
    levels = []
    for exponent in range(math.floor(math.log10(low)) - 1, math.ceil(math.log10(high)) + 1):
        for mantissa in _MANTISSAS:
            levels.append(float(f"{mantissa}e{exponent}"))
    return levels


def _round_down(value: float) -> float:
    """Two significant digits, rounded towards zero (0.987 -> 0.98, 1.0 -> 1.0)."""
    if value <= 0:
        return value
    scale = 10 ** (math.floor(math.log10(value)) - 1)
    return round(math.floor(value / scale + 1e-9) * scale, 12)
