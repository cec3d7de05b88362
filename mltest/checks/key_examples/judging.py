"""Judging each key example against its expectation (pure): minimum functionality,
invariance within a group, direction of a score against the group's reference."""

from __future__ import annotations

from dataclasses import dataclass

from mltest.checks.key_examples import measures
from mltest.checks.key_examples.predictions import Predictions
from mltest.checks.key_examples.table import Example
from mltest.errors import ProjectError


@dataclass
class Outcome:
    """How one example went. Reference rows of inv/dir groups are not tests (`tested` False)."""

    example: Example
    passed: bool
    expected: str
    got: str
    confidence: float | None = None
    severity: float = 0.0
    tested: bool = True
    new_failure: bool = False


def judge(
    examples: list[Example], preds: Predictions, class_axis: int | None = None
) -> list[Outcome]:
    """One outcome per example, in table order. `class_axis`: where a batch output holds class
    scores (for `measure: pixel_accuracy`)."""
    index = {ex.id: i for i, ex in enumerate(examples)}
    references: dict[str, Example] = {}
    for ex in examples:
        if ex.kind != "mft":
            references.setdefault(ex.group, ex)
    outcomes = []
    for i, ex in enumerate(examples):
        ref = references.get(ex.group) if ex.kind != "mft" else None
        if i in preds.nan_rows or (ref is not None and index[ref.id] in preds.nan_rows):
            # argmax of a NaN row is 0: a NaN prediction would otherwise pass as class 0
            where = "its own" if i in preds.nan_rows else f"the reference `{ref.id}`'s"
            outcomes.append(
                Outcome(ex, False, "a prediction without NaN", f"NaN in {where} prediction",
                        severity=1.0, tested=ref is not ex)
            )
            continue
        if ex.measured is not None:
            at = index[ref.id] if ref is not None else None
            outcomes.append(_measured(ex, i, ref, at, preds, class_axis))
            continue
        if ex.kind == "mft":
            outcomes.append(_mft(ex, i, preds))
            continue
        if ref is ex:
            outcomes.append(
                Outcome(ex, True, f"reference of group `{ex.group}`", preds.labels[i],
                        _confidence(preds, i), tested=False)
            )
        elif ex.kind == "inv":
            outcomes.append(_inv(ex, i, ref, index[ref.id], preds))
        else:
            outcomes.append(_dir(ex, i, ref, index[ref.id], preds))
    return outcomes


def _confidence(preds: Predictions, i: int) -> float | None:
    return preds.confidences[i]


def _expected_label(expected: str, classes: list[str] | None) -> str:
    """`1` means class 1 when names are known and `1` is not itself a name."""
    if classes and expected not in classes and expected.isdigit() and int(expected) < len(
        classes
    ):
        return classes[int(expected)]
    return expected


def _mft(ex: Example, i: int, preds: Predictions) -> Outcome:
    conf = _confidence(preds, i)
    if ex.tolerance is not None:
        got = _value(ex, i, preds)
        diff = abs(got - ex.expected)
        return Outcome(ex, diff <= ex.tolerance, f"{ex.expected:.4g} ± {ex.tolerance:g}",
                       f"{got:.4g}", conf, severity=diff)
    want = _expected_label(ex.expected, preds.classes)
    if ex.top_k is not None:
        col = preds.column(want, ex.where)
        row = preds.scores[i]
        rank = int((row > row[col]).sum())  # classes scoring strictly higher
        return Outcome(ex, rank < ex.top_k, f"{want} in top {ex.top_k}",
                       f"{want} ranked {rank + 1} (top: {preds.labels[i]})", conf,
                       severity=conf if conf is not None else 1.0)
    ok = preds.labels[i] == want
    return Outcome(ex, ok, want, preds.labels[i], conf,
                   severity=0.0 if ok else (conf if conf is not None else 1.0))


def _value(ex: Example, i: int, preds: Predictions, target: str | None = None) -> float:
    target = target if target is not None else ex.target
    if target is not None:
        return float(preds.scores[i, preds.column(target, ex.where)])
    if preds.values is not None:
        return float(preds.values[i])
    raise ProjectError(
        f"{ex.where}: needs a value, but the post-processed outputs are labels/scores; "
        "set `target` to the class whose score to use, or return `value`"
    )


def _score_target(ex: Example, ref_index: int, preds: Predictions) -> str | None:
    """The class whose score is compared: the row's `target`, else the reference's label."""
    if ex.target is not None:
        return ex.target
    return preds.labels[ref_index] if preds.scores is not None else None


def _inv(ex: Example, i: int, ref: Example, r: int, preds: Predictions) -> Outcome:
    conf = _confidence(preds, i)
    if ex.tolerance is None:
        ok = preds.labels[i] == preds.labels[r]
        return Outcome(ex, ok, f"same as `{ref.id}`: {preds.labels[r]}", preds.labels[i], conf,
                       severity=0.0 if ok else (conf if conf is not None else 1.0))
    target = _score_target(ex, r, preds)
    here, there = _value(ex, i, preds, target), _value(ex, r, preds, target)
    diff = abs(here - there)
    what = f"score[{target}]" if target is not None else "value"
    return Outcome(ex, diff <= ex.tolerance,
                   f"{what} within {ex.tolerance:g} of `{ref.id}` ({there:.4g})",
                   f"{here:.4g} (Δ {here - there:+.4g})", conf, severity=diff)


def _dir(ex: Example, i: int, ref: Example, r: int, preds: Predictions) -> Outcome:
    target = _score_target(ex, r, preds)
    here, there = _value(ex, i, preds, target), _value(ex, r, preds, target)
    delta = here - there
    margin = ex.tolerance or 0.0
    moved = delta if ex.direction == "up" else -delta
    ok = moved > margin  # strictly: a model that ignores the change does not pass
    what = f"score[{target}]" if target is not None else "value"
    bound = f" by more than {margin:g}" if margin else ""
    return Outcome(ex, ok, f"{what} {ex.direction}{bound} vs `{ref.id}` ({there:.4g})",
                   f"{here:.4g} (Δ {delta:+.4g})", _confidence(preds, i),
                   severity=max(0.0, margin - moved))


def _measured(
    ex: Example, i: int, ref: Example | None, r: int | None, preds: Predictions, class_axis
) -> Outcome:
    """A `measure` row: its output array judged as `measures` describes."""
    spec = ex.measured
    if preds.arrays is None:
        raise ProjectError(
            f"{ex.where}, column `measure`: needs one output array per example, but "
            "predict_step (after postprocess) returned something else; return a tensor"
        )
    out = preds.arrays[i]
    if ex.kind == "mft":
        got = measures.value(spec, out, ex.expected, class_axis, fallback=_as_array(ex.input))
        ok = measures.passes(spec, got, ex.expected, ex.tolerance)
        return Outcome(ex, ok, measures.expectation(spec, ex.expected, ex.tolerance),
                       f"{got:.4g}", severity=0.0 if ok else _miss(spec, got, ex))
    if ref is ex:
        return Outcome(ex, True, f"reference of group `{ex.group}`", "", tested=False)
    ref_out = preds.arrays[r]
    if spec.measure in measures.STATISTICS:
        here = measures.value(spec, out, None, class_axis)
        there = measures.value(spec, ref_out, None, class_axis)
        delta, margin = here - there, ex.tolerance or 0.0
        if ex.kind == "inv":
            ok = abs(delta) <= margin
            want = f"{spec.measure} within {margin:g} of `{ref.id}` ({there:.4g})"
        else:
            ok = (delta if ex.direction == "up" else -delta) > margin
            want = f"{spec.measure} {ex.direction} vs `{ref.id}` ({there:.4g})"
        return Outcome(ex, ok, want, f"{here:.4g} (Δ {delta:+.4g})",
                       severity=0.0 if ok else abs(delta))
    got = measures.value(spec, out, None, class_axis, fallback=ref_out)
    ok = measures.passes(spec, got, None, None)
    want = f"{measures.expectation(spec, None, None)} against `{ref.id}`'s output"
    return Outcome(ex, ok, want, f"{got:.4g}", severity=0.0 if ok else _miss(spec, got, ex))


def _miss(spec, got: float, ex: Example) -> float:
    """How far a measured value is from passing (orders the failures)."""
    if spec.at_least is not None and got < spec.at_least:
        return spec.at_least - got
    if spec.at_most is not None and got > spec.at_most:
        return got - spec.at_most
    if spec.measure in measures.LABELS:
        return 1.0 - got
    return abs(got - float(ex.expected)) if ex.expected is not None else 1.0


def _as_array(value):
    """An example's input as an array (the default `expected` of a reconstruction)."""
    import numpy as np

    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return array if array.ndim else None
