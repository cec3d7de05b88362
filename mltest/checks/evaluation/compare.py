"""Compute every cell (data set x slice x metric): the candidate's value with its confidence
interval, and its differences from the previous result, the pinned reference and the trivial
predictor, each with the interval of the difference; then the gaps between named slices.

Differences are paired whenever the reference's predictions on the very same examples are
recorded (the data set's fingerprint matches): both models are scored on the same bootstrap
resamples, so a rerun gives exactly 0 and the noise of the examples cancels. Otherwise the
reference's recorded value is taken as fixed and only the candidate is resampled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from mltest.checks.evaluation import stats
from mltest.checks.evaluation.catalog import DEFAULT_DROP
from mltest.checks.evaluation.cells import (
    Bound,
    Cell,
    Comparison,
    GapResult,
    allowance,
    judge_bound,
    judge_drop,
    judge_gap,
    judge_margin,
)
from mltest.checks.evaluation.data import EvalSet
from mltest.checks.evaluation.metrics import Metric, Predictions
from mltest.checks.evaluation.settings import Settings


@dataclass
class Reference:
    """A recorded result to compare with: the previous one or the pinned one.

    Attributes:
        name: `previous` or `pinned`.
        values: data set -> slice -> metric -> the recorded value.
        predictions: data set -> the recorded predictions, for the data sets whose examples
            are the same as now (paired comparisons).
    """

    name: str
    values: dict[str, dict[str, dict[str, float]]]
    predictions: dict[str, Predictions] = field(default_factory=dict)


@dataclass
class SetResult:
    """The cells of one data set, and the candidate's bootstrap values per (slice, metric)."""

    cells: list[Cell]
    boots: dict[tuple[str, str], Any]


class _Scorer:
    """Scores predictions on one slice: the point value and the bootstrap values, each
    computed once per distinct set of predictions (a rerun's candidate, the previous result
    and the pinned reference are often the very same tensors)."""

    def __init__(self, data: EvalSet, rows: Any, draws: Any, level: float):
        self.data, self.rows, self.draws, self.level = data, rows, draws, level
        self._memo: dict[tuple, Any] = {}

    def value(self, fn: Metric, preds: Predictions) -> float:
        return stats.quietly(fn, preds.take(self.rows), self.data.target[self.rows])

    def boot(self, fn: Metric, preds: Predictions) -> Any:
        import torch

        slim = fn.slim(preds)
        key = (id(fn), _digest(slim))
        if key not in self._memo:
            if math.isnan(self.value(fn, slim)):  # undefined here (AUROC on one class)
                self._memo[key] = torch.full((len(self.draws),), math.nan, dtype=torch.float64)
            else:
                self._memo[key] = stats.bootstrap(fn, slim, self.data.target, self.draws)
        return self._memo[key]


def _digest(preds: Predictions) -> str:
    import hashlib

    digest = hashlib.sha1()
    for name, tensor in sorted(preds.tensors().items()):
        digest.update(f"{name}{tensor.dtype}{tuple(tensor.shape)}".encode())
        digest.update(tensor.contiguous().numpy().tobytes())
    return digest.hexdigest()


def evaluate_set(
    data: EvalSet,
    candidate: Predictions,
    members: dict[str, Any],
    settings: Settings,
    functions: dict[str, Metric],
    references: list[Reference],
    trivial: Predictions,
    deadline: Any,
) -> SetResult:
    """Every cell of one data set. `functions` maps metric names to `fn(preds, target)`."""
    conf = settings.confidence
    cells, boots = [], {}
    correct = _correct(candidate, data.target)
    for slice_name, rows in members.items():
        deadline.check()
        draws = stats.resample_indices(rows, conf.resamples, conf.seed, f"{data.name}/{slice_name}")
        scorer = _Scorer(data, rows, draws, conf.level)
        for metric, fn in functions.items():
            info = settings.metric_info(metric)
            limits = settings.metrics[metric].limits_for(data.name, slice_name)
            value = scorer.value(fn, candidate)
            boot = boots[(slice_name, metric)] = scorer.boot(fn, candidate)
            low, high = stats.interval(boot, conf.level)
            exact = conf.method == "mcnemar" and metric == "accuracy" and correct is not None
            if exact:
                low, high = stats.clopper_pearson(int(correct[rows].sum()), len(rows), conf.level)
            cell = Cell(data.name, slice_name, metric, len(rows), value, low, high,
                        info.higher_is_better, info.bounded)  # fmt: skip
            kind = "at_least" if info.higher_is_better else "at_most"
            limit = getattr(limits, kind)
            if limit is not None:
                cell.bound = Bound(kind, limit, judge_bound(kind, limit, value, low, high))
            default_drop, default_pinned = DEFAULT_DROP[info.bounded]
            for ref in references:
                previous = ref.name == "previous"
                found = _compare(scorer, fn, value, boot, ref, metric, slice_name,
                                 correct if exact else None)  # fmt: skip
                if found is None:
                    continue
                ref_value, delta, d_low, d_high, paired = found
                setting = limits.max_drop if previous else limits.max_drop_pinned
                allowed = allowance(setting, default_drop if previous else default_pinned,
                                    ref_value)  # fmt: skip
                outcome = judge_drop(delta, d_low, d_high, allowed, info.higher_is_better)
                cell.comparisons.append(Comparison(ref.name, ref_value, delta, d_low, d_high,
                                                   paired, allowed, outcome))  # fmt: skip
            if limits.beat_trivial_by is not None and not math.isnan(value):
                ref = Reference("trivial", {}, {data.name: trivial})
                ref_value, delta, d_low, d_high, _ = _compare(
                    scorer, fn, value, boot, ref, metric, slice_name, correct if exact else None
                )
                margin = limits.beat_trivial_by
                outcome = judge_margin(delta, d_low, d_high, margin, info.higher_is_better)
                cell.comparisons.append(Comparison("trivial", ref_value, delta, d_low, d_high,
                                                   True, margin, outcome))  # fmt: skip
            cells.append(cell)
    return SetResult(cells, boots)


def _compare(scorer: _Scorer, fn: Metric, value: float, boot: Any, ref: Reference, metric: str,
             slice_name: str, correct: Any) -> tuple | None:  # fmt: skip
    """(reference value, delta, low, high, paired) of the candidate against `ref`, or None
    when `ref` knows nothing of this cell. `correct` (per-example correctness) asks for
    McNemar's exact interval instead of the bootstrap."""
    import torch

    if math.isnan(value):
        return None
    data, rows, level = scorer.data, scorer.rows, scorer.level
    theirs = ref.predictions.get(data.name)
    if theirs is not None:
        ref_value = scorer.value(fn, theirs)
        if correct is not None:
            their_ok = _correct(theirs, data.target)
            delta, low, high = stats.mcnemar(correct[rows], their_ok[rows], level)
            return ref_value, delta, low, high, True
        low, high = stats.interval(boot - scorer.boot(fn, theirs), level)
        return ref_value, value - ref_value, low, high, True
    recorded = ref.values.get(data.name, {}).get(slice_name, {}).get(metric)
    if not isinstance(recorded, int | float) or isinstance(recorded, bool):
        return None
    low, high = stats.interval(boot - torch.tensor(float(recorded), dtype=torch.float64), level)
    return float(recorded), value - recorded, low, high, False


def _correct(p: Predictions, target: Any) -> Any:
    """Per-example correctness of a classifier (None for other tasks)."""
    if p.labels is None or p.labels.shape != target.shape or p.labels.ndim != 1:
        return None
    return p.labels == target


def gaps(settings: Settings, boots: dict[str, dict[tuple[str, str], Any]],
         cells: list[Cell]) -> tuple[list[GapResult], list[str]]:  # fmt: skip
    """The configured gaps, judged on each data set's bootstrap values; and notices for gaps
    naming slices a data set does not have."""
    import torch

    values = {(c.dataset, c.slice, c.metric): c.value for c in cells}
    results, notices = [], []
    for gap in settings.gaps:
        dataset = gap.dataset or settings.datasets[0].name
        info = settings.metric_info(gap.metric)
        have = [s for s in gap.slices if (dataset, s, gap.metric) in values]
        missing = [s for s in gap.slices if s not in have]
        if missing:
            notices.append(
                f"gap on {gap.metric} ({', '.join(gap.slices)}): data set `{dataset}` has no "
                f"slice {', '.join(missing)}; the gap is judged on the others"
            )
        points = {s: values[(dataset, s, gap.metric)] for s in have}
        points = {s: v for s, v in points.items() if not math.isnan(v)}
        if len(points) < 2:
            continue
        sign = 1 if info.higher_is_better else -1
        best = max(points, key=lambda s: sign * points[s])
        low_slice = min(points, key=lambda s: sign * points[s])
        spread = abs(points[best] - points[low_slice])
        stacked = torch.stack([boots[dataset][(s, gap.metric)] for s in points])
        boot_gap = stacked.amax(0) - stacked.amin(0)
        low, high = stats.interval(boot_gap, settings.confidence.level)
        results.append(GapResult(dataset, gap.metric, tuple(points), best, low_slice, spread,
                                 low, high, gap.at_most, judge_gap(spread, low, high, gap.at_most),
                                 info.bounded))  # fmt: skip
    return results, notices

