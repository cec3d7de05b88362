"""One metric on one slice (a cell of the report's table), the limits it is judged against,
and the rule that keeps small slices from flapping. Pure values, no torch.

The rule, for every limit: a cell fails only when its point estimate is beyond the limit
**and** its confidence interval says so too:

- a drop against the previous result or the pinned reference fails when the drop is larger
  than its allowance and the interval of the difference lies below zero (a real drop);
- an absolute floor (`at_least`) fails when the value and the whole interval lie below it
  (`at_most`: above it);
- "beats the trivial predictor by a margin" fails when the advantage and the whole interval
  of the advantage lie below the margin;
- a gap between slices fails when the gap and the whole interval of the gap lie above its limit.

Past the limit but not significant is its own outcome: reported, never failing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum


class Outcome(str, Enum):
    """How a cell, comparison or gap came out; ordered from worst."""

    FAIL = "fail"
    NOT_SIGNIFICANT = "not significant"
    PASS = "pass"
    NEW = "new"  # nothing to compare with (a reference without this cell)


_ORDER = [Outcome.FAIL, Outcome.NOT_SIGNIFICANT, Outcome.PASS, Outcome.NEW]
AGAINST = ("previous", "pinned", "trivial")


def worst(outcomes) -> Outcome:
    found = list(outcomes)
    return min(found, key=_ORDER.index) if found else Outcome.PASS


@dataclass(frozen=True)
class Comparison:
    """The candidate against one reference on one cell.

    Attributes:
        against: `previous`, `pinned` or `trivial`.
        reference: the reference's value on the cell.
        delta: candidate minus reference, in the metric's units.
        low, high: the confidence interval of `delta`.
        paired: the interval came from the same examples predicted by both models.
        allowance: the allowed drop (previous, pinned) or the required margin (trivial), as a
            positive number in the metric's units.
        outcome: pass / fail / not significant.
    """

    against: str
    reference: float
    delta: float
    low: float
    high: float
    paired: bool
    allowance: float
    outcome: Outcome

    def severity(self, higher: bool) -> float:
        """How far past its allowance (or short of its margin) the difference is, relative to
        the allowance (or the reference's size when the allowance is 0)."""
        gain = self.delta if higher else -self.delta
        past = (self.allowance - gain) if self.against == "trivial" else (-gain - self.allowance)
        return past / max(self.allowance, abs(self.reference) * 0.01, 1e-12)


@dataclass(frozen=True)
class Bound:
    """An absolute limit: `at_least` (higher is better) or `at_most`."""

    kind: str
    limit: float
    outcome: Outcome


@dataclass
class Cell:
    """One metric on one slice of one data set."""

    dataset: str
    slice: str
    metric: str
    n: int
    value: float
    low: float
    high: float
    higher_is_better: bool
    bounded: bool
    bound: Bound | None = None
    comparisons: list[Comparison] = field(default_factory=list)

    @property
    def severity(self) -> float:
        """How far past its limits the cell is, relative to them (0 when within)."""
        parts = [c.severity(self.higher_is_better) for c in self.comparisons]
        if self.bound is not None and not math.isnan(self.value):
            past = self.bound.limit - self.value if self.bound.kind == "at_least" \
                else self.value - self.bound.limit  # fmt: skip
            parts.append(past / max(abs(self.bound.limit), 1e-12))
        return max([0.0, *(p for p in parts if not math.isnan(p))])

    @property
    def outcome(self) -> Outcome:
        parts = [c.outcome for c in self.comparisons]
        if self.bound is not None:
            parts.append(self.bound.outcome)
        return worst(o for o in parts if o is not Outcome.NEW)

    def against(self, name: str) -> Comparison | None:
        return next((c for c in self.comparisons if c.against == name), None)

    @property
    def where(self) -> str:
        return f"{self.dataset} / {self.slice}"


@dataclass(frozen=True)
class GapResult:
    """The spread of a metric across named slices of a data set."""

    dataset: str
    metric: str
    slices: tuple[str, ...]
    best: str
    worst: str
    gap: float
    low: float
    high: float
    at_most: float
    outcome: Outcome
    bounded: bool


def judge_drop(delta: float, low: float, high: float, allowance: float, higher: bool) -> Outcome:
    """A drop fails when it is beyond the allowance and its interval excludes no change."""
    if math.isnan(delta):
        return Outcome.NEW
    gain, gain_high = (delta, high) if higher else (-delta, -low)
    if gain >= -allowance:
        return Outcome.PASS
    return Outcome.FAIL if gain_high < 0 else Outcome.NOT_SIGNIFICANT


def judge_margin(delta: float, low: float, high: float, margin: float, higher: bool) -> Outcome:
    """Beating the trivial predictor fails when the advantage and its whole interval are short
    of the margin."""
    if math.isnan(delta):
        return Outcome.NEW
    gain, gain_high = (delta, high) if higher else (-delta, -low)
    if gain >= margin:
        return Outcome.PASS
    return Outcome.FAIL if gain_high < margin else Outcome.NOT_SIGNIFICANT


def judge_bound(kind: str, limit: float, value: float, low: float, high: float) -> Outcome:
    """An absolute limit fails when the value and its whole interval are on the wrong side."""
    if math.isnan(value):
        return Outcome.NEW
    if kind == "at_least":
        if value >= limit:
            return Outcome.PASS
        return Outcome.FAIL if high < limit else Outcome.NOT_SIGNIFICANT
    if value <= limit:
        return Outcome.PASS
    return Outcome.FAIL if low > limit else Outcome.NOT_SIGNIFICANT


def judge_gap(gap: float, low: float, high: float, at_most: float) -> Outcome:
    if math.isnan(gap) or gap <= at_most:
        return Outcome.PASS
    return Outcome.FAIL if low > at_most else Outcome.NOT_SIGNIFICANT


def allowance(setting: float | str | None, default: float | str, reference: float) -> float:
    """An allowance as a number in the metric's units: `0.02` as is, `"5%"` of the reference."""
    value = default if setting is None else setting
    if isinstance(value, str):
        return float(value.strip().rstrip("%")) / 100 * abs(reference)
    return float(value)


# --- words -----------------------------------------------------------------------------------

MINUS = "\u2212"


def amount(value: float, bounded: bool, signed: bool = True) -> str:
    """A difference as people read it: points for shares (`-1.8 points`), else the units."""
    if math.isnan(value):
        return "—"
    number = value * 100 if bounded else value
    text = f"{number:+.1f}" if bounded else f"{number:+.4g}"
    if not signed:
        text = text.lstrip("+")
    text = text.replace("-", MINUS)
    return f"{text} points" if bounded else text


def ci_text(low: float, high: float, bounded: bool, level: float) -> str:
    """`95% CI [-3.9, +0.2]` in the units `amount` uses."""
    if math.isnan(low) or math.isnan(high):
        return f"{level:.0%} CI undefined"

    def bare(v: float) -> str:
        return amount(v, bounded).removesuffix(" points")

    return f"{level:.0%} CI [{bare(low)}, {bare(high)}]"


def shown(value: float, bounded: bool) -> str:
    """A metric value: three decimals for shares, four significant digits otherwise."""
    if math.isnan(value):
        return "—"
    return f"{value:.3f}" if bounded else f"{value:.4g}"


def comparison_text(cell: Cell, comp: Comparison, level: float) -> str:
    """`accuracy on val / region=south: -1.8 points vs the previous result, 95% CI [-3.9,
    +0.2]: not significant`."""
    what = {"previous": "the previous result", "pinned": "the pinned reference",
            "trivial": "the trivial predictor"}[comp.against]  # fmt: skip
    verdict = {
        Outcome.FAIL: "significant",
        Outcome.NOT_SIGNIFICANT: "not significant",
        Outcome.PASS: "within the limit",
        Outcome.NEW: "",
    }[comp.outcome]
    limit = (
        f"needs {amount(comp.allowance, cell.bounded, signed=False)} over it"
        if comp.against == "trivial"
        else f"allowed {amount(-comp.allowance, cell.bounded)}"
    )
    ci = ci_text(comp.low, comp.high, cell.bounded, level)
    return (
        f"{cell.metric} on {cell.where}: {amount(comp.delta, cell.bounded)} vs {what} "
        f"({shown(comp.reference, cell.bounded)}), {ci}, {limit}: {verdict}"
    )


def bound_text(cell: Cell, level: float) -> str:
    relation = "≥" if cell.bound.kind == "at_least" else "≤"
    ci = f"[{shown(cell.low, cell.bounded)}, {shown(cell.high, cell.bounded)}]"
    verdict = {Outcome.FAIL: "below it" if relation == "≥" else "above it",
               Outcome.NOT_SIGNIFICANT: "not significantly past it",
               Outcome.PASS: "holds", Outcome.NEW: ""}[cell.bound.outcome]  # fmt: skip
    return (
        f"{cell.metric} on {cell.where}: {shown(cell.value, cell.bounded)} ({level:.0%} CI {ci}), "
        f"limit {relation} {cell.bound.limit:g}: {verdict}"
    )


def gap_text(gap: GapResult, level: float) -> str:
    verdict = {Outcome.FAIL: "significant", Outcome.NOT_SIGNIFICANT: "not significant",
               Outcome.PASS: "within the limit", Outcome.NEW: ""}[gap.outcome]  # fmt: skip
    return (
        f"{gap.metric} gap on {gap.dataset} between {gap.best} and {gap.worst}: "
        f"{amount(gap.gap, gap.bounded, signed=False)}, "
        f"{ci_text(gap.low, gap.high, gap.bounded, level)}, allowed "
        f"{amount(gap.at_most, gap.bounded, signed=False)}: {verdict}"
    )
