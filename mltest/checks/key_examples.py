"""Key examples: CheckList's three kinds of functionality test on the model under test.

A table of examples (see `mltest.examples_table`) is collated into batches by the user's
`collate`, predicted with `predict_step` in eval mode plus the configured post-processing, and
judged: minimum functionality (expected label / value / top-k), invariance (a group gets the
same prediction) and directional (a score moves up or down). The verdict is per tag, each
with an allowed failure rate; examples that passed in the baseline and fail now come first.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import Field, field_validator

from mltest.checks.base import CheckContext, CheckSettings, record_hint
from mltest.errors import CheckFailed, ProjectError
from mltest.examples_table import Example, load_examples
from mltest.report import Case, CheckResult, Status

KIND = "key_examples"
UNTAGGED = "(untagged)"


class Settings(CheckSettings):
    """`checks.key_examples` in mltest.yaml."""

    examples: str = Field(
        description="table file (.csv/.jsonl/.parquet, relative to the config) or "
        "`module:function` returning a list of dicts or a DataFrame"
    )
    collate: str = Field(description="import path of fn(list of inputs) -> batch")
    labels: list[str] | None = Field(
        None, min_length=1, description="class names, index order; outputs give indices"
    )
    batch_size: int = Field(256, ge=1, description="examples per predicted batch")
    allowed_failure_rate: float = Field(0.0, ge=0, le=1, description="default for every tag")
    tag_failure_rates: dict[str, float] = Field(
        default_factory=dict, description="tag -> allowed failure rate (0..1)"
    )
    require_baseline: bool = Field(False, description="fail when no baseline is recorded")
    show_failures: int = Field(30, ge=1, description="failing examples listed in the details")

    @field_validator("tag_failure_rates")
    @classmethod
    def _rates(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {k: v for k, v in value.items() if not 0 <= v <= 1}
        if bad:
            raise ValueError(f"rates must be between 0 and 1, got {bad}")
        return value


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


@dataclass
class TagStat:
    tag: str
    cases: int
    failures: int
    allowed: float

    @property
    def rate(self) -> float:
        return self.failures / self.cases if self.cases else 0.0

    @property
    def ok(self) -> bool:
        return self.rate <= self.allowed + 1e-12


_LOADED_KEY = "key_examples.loaded"


def validate(ctx: CheckContext, settings: Settings) -> None:
    """Before anything trains: the strategy, every row of the table, every label it names
    (against `labels`, with the nearest valid name), and collate on every input. What it read
    is kept for `run`."""
    from mltest.checks.base import refuse_strategy

    refuse_strategy(
        ctx,
        sharded_ok=False,
        why_not_sharded="it predicts with the whole trained model outside the Trainer, and a "
        "sharded strategy leaves each rank a shard of it",
    )
    key = f"checks.{ctx.name}"
    examples = load_examples(
        settings.examples, root=ctx.loaded.root, project=ctx.project, key=f"{key}.examples"
    )
    if settings.labels:
        check_labels(examples, settings.labels, f"{key}.labels")
    collate = ctx.project.resolve(settings.collate, key=f"{key}.collate")
    batches = list(_batches(ctx, examples, collate, settings, key))
    ctx.shared[f"{_LOADED_KEY}.{ctx.name}"] = (examples, batches)


def check_labels(examples: list[Example], labels: list[str], key: str) -> None:
    """Every expected label and score target must be a class of `labels` (or its index).

    Raises:
        ConfigError: naming the row, the column, the nearest valid label and the classes.
    """
    import difflib

    from mltest.errors import ConfigError

    def known(name: str) -> bool:
        return name in labels or (name.isdigit() and int(name) < len(labels))

    for ex in examples:
        named = [("target", ex.target)]
        if ex.kind == "mft" and ex.tolerance is None:
            named.append(("expected", ex.expected))
        for column, name in named:
            if name is None or known(str(name)):
                continue
            near = difflib.get_close_matches(str(name), labels, n=1, cutoff=0.5)
            hint = f"did you mean `{near[0]}`? " if near else ""
            raise ConfigError(
                f"{ex.where}, column `{column}`: `{name}` is not a class of `{key}`; {hint}"
                f"the classes are {', '.join(labels)}"
            )


def run(ctx: CheckContext, settings: Settings) -> CheckResult:
    """Load, predict, judge and compare the passing set with the baseline."""
    from mltest.prediction import model_under_test, postprocess_fn, predict, training_ops
    from mltest.seeding import (
        determinism_mode,
        isolated_global_state,
        nondeterminism_notice,
        watch_determinism,
    )

    key = f"checks.{ctx.name}"
    loaded = ctx.shared.pop(f"{_LOADED_KEY}.{ctx.name}", None)
    if loaded is None:  # run without the validation phase (a direct call)
        validate(ctx, settings)
        loaded = ctx.shared.pop(f"{_LOADED_KEY}.{ctx.name}")
    examples, batches = loaded
    module = model_under_test(ctx)
    post = postprocess_fn(ctx)
    mode = determinism_mode(ctx.trainer_settings)
    with isolated_global_state(), watch_determinism(mode) as watch:
        raw = predict(module, batches, post)
    preds = Predictions.from_outputs(raw, settings.labels, len(examples))
    outcomes = judge(examples, preds)

    env_key = _env_key(ctx)
    baseline, baseline_key = _baseline(ctx, env_key)
    if baseline is not None:
        before = set(baseline.get("passing", []))
        for o in outcomes:
            o.new_failure = o.tested and not o.passed and o.example.id in before
    stats = tag_stats(outcomes, settings)
    status, summary, hint, notices = decide(
        outcomes, stats, baseline, baseline_key, env_key, settings, ctx.update_command
    )
    unstable = nondeterminism_notice(training_ops(ctx) | watch.ops)
    notices += [unstable] if unstable else []
    unused = sorted(set(settings.tag_failure_rates) - {t.tag for t in stats})
    if unused:  # most likely a typo, which would silently leave the default rate in force
        notices.append(f"{key}.tag_failure_rates names tag(s) no example has: "
                       f"{', '.join(unused)}")
    if ctx.update_baselines:
        passing = sorted(o.example.id for o in outcomes if o.tested and o.passed)
        ctx.baselines.put(ctx.name, env_key, _entry(passing, outcomes))
        failing = sum(o.tested and not o.passed for o in outcomes)
        summary = f"baseline recorded for {env_key}: {len(passing)} passing example(s)" + (
            f"; {failing} still fail: {summary}" if status is not Status.PASS else ""
        )
        notices = [n for n in notices if "no baseline" not in n]
    return CheckResult(
        name=ctx.name,
        kind=KIND,
        status=status,
        summary=summary,
        hint=hint,
        notices=notices,
        details=_details(outcomes, stats, settings),
        metrics={
            "examples": len(examples),
            "cases": sum(o.tested for o in outcomes),
            "failures": sum(o.tested and not o.passed for o in outcomes),
            "new_failures": [o.example.id for o in outcomes if o.new_failure][:100],
            "tags": {s.tag: {"cases": s.cases, "failures": s.failures, "rate": s.rate,
                             "allowed": s.allowed, "new_failures": _new_in(s.tag, outcomes)}
                     for s in stats},
            "environment": env_key,
            "baseline_environment": baseline_key,
        },
        cases=[_case(o) for o in outcomes],
    )


# --- prediction ------------------------------------------------------------------------------


def _batches(ctx, examples: list[Example], collate, settings: Settings, key: str) -> Iterator:
    """Collate examples in table order, `batch_size` at a time; a failing collate is traced
    down to the first example it cannot handle."""
    size = settings.batch_size
    for start in range(0, len(examples), size):
        ctx.deadline.check()
        chunk = examples[start : start + size]
        try:
            yield collate([ex.input for ex in chunk])
        except Exception as exc:
            culprit = _first_uncollatable(chunk, collate) or chunk[0]
            raise ProjectError(
                f"`{key}.collate: {settings.collate}` raised {type(exc).__name__}: {exc} on "
                f"{culprit.where}, column `input` (value {summarize(culprit.input)}); make "
                "collate accept a list of these inputs"
            ) from exc


def _first_uncollatable(chunk: list[Example], collate) -> Example | None:
    for ex in chunk:
        try:
            collate([ex.input])
        except Exception:
            return ex
    return None


class Predictions:
    """Post-processed outputs of every example, as plain arrays.

    Accepted post-processed outputs, per batch: a 2-D float tensor of class scores (label =
    argmax); a 1-D float tensor of values; a 1-D integer tensor of label indices; a list of
    label names; or a dict with any of `label` (indices or names), `scores` (2-D) and `value`.
    """

    def __init__(self, labels: list[str], scores, values, classes: list[str] | None):
        self.labels = labels  # predicted label name per example ("" when the output has none)
        self.scores = scores  # numpy [N, C] or None
        self.values = values  # numpy [N] or None
        self.classes = classes  # class names in score-column order, or None
        self.confidences = self._confidences()

    def _confidences(self) -> list[float | None]:
        """Score of each predicted label, computed once for all examples (no per-row torch)."""
        import numpy as np

        if self.scores is None or not self.classes:
            return [None] * len(self.labels)
        column = {name: i for i, name in enumerate(self.classes)}
        cols = np.array([column.get(label, -1) for label in self.labels])
        picked = self.scores[np.arange(len(cols)), np.maximum(cols, 0)].tolist()
        return [p if c >= 0 else None for p, c in zip(picked, cols.tolist(), strict=True)]

    @classmethod
    def from_outputs(cls, outputs: list, names: list[str] | None, count: int) -> Predictions:
        import numpy as np

        labels, scores, values = [], [], []
        for out in outputs:
            label, score, value = _split(out)
            labels.append(label)
            scores.append(score)
            values.append(value)
        scores_ = np.concatenate(scores) if all(s is not None for s in scores) else None
        values_ = np.concatenate(values) if all(v is not None for v in values) else None
        classes = names
        if scores_ is not None:
            width = scores_.shape[1]
            if names is not None and len(names) != width:
                raise CheckFailed(
                    f"the model now scores {width} class(es) but `labels` names {len(names)} "
                    f"({', '.join(names)}): the model's output changed",
                    hint="A changed head (number of outputs) or post-processing changes what "
                    "the model predicts. If intended, update `labels` and the examples, then "
                    "run the baseline update.",
                )
            classes = names or [str(i) for i in range(width)]
        has_labels = all(label is not None for label in labels)
        if names is not None and scores_ is None and not has_labels and values_ is not None:
            raise CheckFailed(
                f"the model now gives one value per example but `labels` names {len(names)} "
                f"classes ({', '.join(names)}): the model's output changed",
                hint="A head changed to a single output (or post-processing that drops the "
                "scores) changes what the model predicts. If intended, update `labels` and the "
                "examples, then run the baseline update.",
            )
        flat: list = []
        if has_labels:
            for label in labels:
                flat.extend(label)
        elif scores_ is not None:
            flat = scores_.argmax(axis=1).tolist()
        else:
            flat = [""] * count
        named = [_name(label, classes) for label in flat]
        got = len(named)
        if got != count or (scores_ is not None and len(scores_) != count):
            raise ProjectError(
                f"prediction returned {got} outputs for {count} examples; predict_step and "
                "postprocess must return one output per example in the batch"
            )
        return cls(named, scores_, values_, classes)

    def column(self, target: str | None, where: str) -> int:
        """Score column of a class name or index."""
        if self.scores is None or self.classes is None:
            raise ProjectError(
                f"{where}: needs class scores, but the post-processed outputs have none; "
                "return a 2-D score tensor or a dict with `scores`"
            )
        if target in self.classes:
            return self.classes.index(target)
        if target is not None and target.lstrip("-").isdigit() and 0 <= int(target) < len(
            self.classes
        ):
            return int(target)
        raise ProjectError(
            f"{where}, column `target`: {target!r} is not a class; classes: "
            f"{', '.join(self.classes)}"
        )


def _split(out: Any) -> tuple[list | None, Any, Any]:
    """(labels, scores [B,C], values [B]) of one batch's post-processed output."""
    import numpy as np
    import torch

    label = score = value = None
    if isinstance(out, dict):
        label, score, value = out.get("label"), out.get("scores"), out.get("value")
        if label is None and score is None and value is None:
            raise ProjectError(
                f"post-processed output is a dict with keys {sorted(out)}; give `label`, "
                "`scores` and/or `value`"
            )
    elif isinstance(out, (list, tuple)) and all(isinstance(x, str) for x in out):
        label = out
    elif isinstance(out, (torch.Tensor, np.ndarray)):
        array = out.numpy() if isinstance(out, torch.Tensor) else out
        if array.ndim == 2 and array.shape[1] > 1:
            score = array
        elif np.issubdtype(array.dtype, np.integer):
            label = array.reshape(-1)
        else:
            value = array.reshape(-1)
    else:
        raise ProjectError(
            f"post-processed output of type {type(out).__name__} is not understood; return "
            "a 2-D score tensor, a 1-D tensor, a list of label names, or a dict with "
            "`label`/`scores`/`value` (set model_under_test.postprocess)"
        )

    def as_np(t):
        return t.float().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)

    if score is not None:
        score = as_np(score).astype(np.float64)
    if value is not None:
        value = as_np(value).astype(np.float64).reshape(-1)
    if label is not None and not isinstance(label, list):
        label = label.tolist() if hasattr(label, "tolist") else list(label)
    return label, score, value


def _name(label: Any, classes: list[str] | None) -> str:
    if isinstance(label, str):
        return label
    index = int(label)
    if classes is not None:
        if not 0 <= index < len(classes):
            raise CheckFailed(
                f"predicted label index {index} is outside the {len(classes)} classes "
                f"({', '.join(classes)}); check the label map in post-processing"
            )
        return classes[index]
    return str(index)


# --- judging (pure) --------------------------------------------------------------------------


def judge(examples: list[Example], preds: Predictions) -> list[Outcome]:
    """One outcome per example, in table order."""
    index = {ex.id: i for i, ex in enumerate(examples)}
    references: dict[str, Example] = {}
    for ex in examples:
        if ex.kind != "mft":
            references.setdefault(ex.group, ex)
    outcomes = []
    for i, ex in enumerate(examples):
        if ex.kind == "mft":
            outcomes.append(_mft(ex, i, preds))
            continue
        ref = references[ex.group]
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


# --- verdict ---------------------------------------------------------------------------------


def _new_in(tag: str, outcomes: list[Outcome]) -> int:
    """How many of a tag's failures passed in the baseline (for the report's chart)."""
    return sum(o.new_failure and tag in (o.example.tags or (UNTAGGED,)) for o in outcomes)


def tag_stats(outcomes: list[Outcome], settings: Settings) -> list[TagStat]:
    """Cases and failures per tag (sorted), untagged examples last, then all examples."""
    counts: dict[str, list[int]] = {}
    for o in outcomes:
        if not o.tested:
            continue
        for tag in o.example.tags or (UNTAGGED,):
            pair = counts.setdefault(tag, [0, 0])
            pair[0] += 1
            pair[1] += not o.passed
    order = sorted(t for t in counts if t != UNTAGGED) + ([UNTAGGED] if UNTAGGED in counts else [])
    rate = settings.tag_failure_rates
    return [TagStat(t, *counts[t], rate.get(t, settings.allowed_failure_rate)) for t in order]


def decide(
    outcomes: list[Outcome],
    stats: list[TagStat],
    baseline: dict | None,
    baseline_key: str | None,
    env_key: str,
    settings: Settings,
    update_command: str,
) -> tuple[Status, str, str, list[str]]:
    """The verdict, the sentence a person reads, what to do next, and notices."""
    tested = [o for o in outcomes if o.tested]
    failed = [o for o in tested if not o.passed]
    new = [o for o in failed if o.new_failure]
    over = [s for s in stats if not s.ok]
    notices: list[str] = []
    if baseline is None:
        notices.append(
            f"no baseline of passing examples is recorded for {env_key}, so new failures "
            f"cannot be told from old ones; record one with `{update_command}`"
        )
    elif baseline_key != env_key:
        notices.append(f"compared with the baseline recorded for {baseline_key} (none for "
                       f"{env_key})")
    if baseline is not None:
        before = set(baseline.get("passing", []))
        fixed = [o.example.id for o in tested if o.passed and o.example.id not in before]
        if fixed:
            notices.append(
                f"{len(fixed)} example(s) pass now that did not in the baseline "
                f"({_ids(fixed)}); lock the gain in with `{update_command}`"
            )
        if new and not over:
            notices.append(
                f"{len(new)} example(s) that passed in the baseline fail now, within the "
                f"allowed failure rates: {_ids([o.example.id for o in new])}"
            )
    head = f"{len(tested) - len(failed)}/{len(tested)} key examples pass"
    if over:
        worst = ", ".join(
            f"`{s.tag}` {s.failures}/{s.cases} ({s.rate:.0%} > {s.allowed:.0%})" for s in over[:4]
        )
        news = f"; {len(new)} passed in the baseline" if new else ""
        return (
            Status.FAIL,
            f"{head}; over the allowed failure rate: {worst}{news}",
            "Look at the failing examples in the details (new failures first): a wrong "
            "label map, a changed normalisation or tokenisation in collate, or a feature "
            "the model no longer uses. If the new behaviour is right, fix the expectation "
            f"in the examples table, or allow it per tag (tag_failure_rates) and run "
            f"`{update_command}`.",
            notices,
        )
    if baseline is None and settings.require_baseline:
        return (
            Status.FAIL,
            f"{head}, but no baseline is recorded for {env_key} (require_baseline is on)",
            record_hint(update_command, env_key),
            notices,
        )
    within = f" ({len(failed)} failure(s) within allowed rates)" if failed else ""
    return Status.PASS, f"{head} across {len(stats)} tag(s){within}", "", notices


def _ids(ids: list[str], limit: int = 8) -> str:
    shown = ", ".join(f"`{i}`" for i in ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def _case(o: Outcome) -> Case:
    if not o.tested:
        return Case(o.example.id, Status.PASS, f"{o.expected}; predicted {o.got}")
    if o.passed:
        return Case(o.example.id, Status.PASS)
    conf = f" (confidence {o.confidence:.3f})" if o.confidence is not None else ""
    new = "new failure: " if o.new_failure else ""
    return Case(o.example.id, Status.FAIL,
                f"{new}{o.example.kind}: expected {o.expected}, got {o.got}{conf}; "
                f"input {summarize(o.example.input)}")


def failing_in_order(outcomes: list[Outcome]) -> list[Outcome]:
    """New failures first, then the most confidently wrong; ties by id, so order is stable."""
    failed = [o for o in outcomes if o.tested and not o.passed]
    return sorted(failed, key=lambda o: (not o.new_failure, -round(o.severity, 6), o.example.id))


def summarize(value: Any, limit: int = 60) -> str:
    """A short, one-line picture of an input for tables and messages."""
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        text = _array_text(value)
    elif isinstance(value, str):
        text = repr(value)
    elif isinstance(value, (list, tuple)):
        parts = [f"{v:.3g}" if isinstance(v, float) else summarize(v, 20) for v in value[:12]]
        text = "[" + ", ".join(parts) + (", …" if len(value) > 12 else "") + "]"
    elif isinstance(value, dict):
        text = "{" + ", ".join(f"{k}: {summarize(v, 20)}" for k, v in value.items()) + "}"
    else:
        text = repr(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _array_text(value: Any) -> str:
    """A tensor or array as a person reads it: its values when short, else shape, dtype and
    simple statistics (a picture's mean and range tell a changed normalisation at once)."""
    import numpy as np

    array = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
    dtype = str(value.dtype).removeprefix("torch.")
    if array.size <= 8:
        shown = ", ".join(f"{x:.3g}" if isinstance(x, float) else str(x) for x in
                          array.reshape(-1).tolist())
        return f"[{shown}] ({dtype})"
    shape = "×".join(map(str, array.shape))
    if np.issubdtype(array.dtype, np.number) or array.dtype == bool:
        data = array.astype(np.float64)
        return (f"{shape} {dtype}, mean {data.mean():.3g}, std {data.std():.3g}, "
                f"range [{data.min():.3g}, {data.max():.3g}]")
    return f"{shape} {dtype}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _details(outcomes: list[Outcome], stats: list[TagStat], settings: Settings) -> str:
    rows = ["| tag | cases | failures | rate | allowed | |", "|---|---|---|---|---|---|"]
    for s in stats:
        mark = "✅" if s.ok else "❌"
        rows.append(f"| {_cell(s.tag)} | {s.cases} | {s.failures} | {s.rate:.0%} | "
                    f"{s.allowed:.0%} | {mark} |")
    failed = failing_in_order(outcomes)
    if not failed:
        return "\n".join(rows)
    lines = [*rows, "", f"**Failing examples** ({len(failed)}; new failures first):", "",
             "| id | kind | input | expected | got | confidence |", "|---|---|---|---|---|---|"]
    for o in failed[: settings.show_failures]:
        conf = f"{o.confidence:.3f}" if o.confidence is not None else "—"
        new = " 🆕" if o.new_failure else ""
        lines.append(
            f"| `{_cell(o.example.id)}`{new} | {o.example.kind} | "
            f"{_cell(summarize(o.example.input))} | {_cell(o.expected)} | {_cell(o.got)} | "
            f"{conf} |"
        )
    if len(failed) > settings.show_failures:
        lines.append(f"\n… and {len(failed) - settings.show_failures} more (see junit.xml)")
    return "\n".join(lines)


# --- baseline --------------------------------------------------------------------------------


def _env_key(ctx: CheckContext) -> str:
    """Same shape as the other checks' keys: device type, torch minor version, precision."""
    from mltest.engine import device_for, environment_key

    settings = ctx.trainer_settings
    return environment_key(device_for(settings).type, settings)


def _baseline(ctx: CheckContext, env_key: str) -> tuple[dict | None, str | None]:
    """This environment's entry, else another environment's (passing sets rarely differ)."""
    entry = ctx.baselines.get(ctx.name, env_key)
    if entry is not None:
        return entry, env_key
    for other in ctx.baselines.keys(ctx.name):
        return ctx.baselines.get(ctx.name, other), other
    return None, None


def _entry(passing: list[str], outcomes: list[Outcome]) -> dict[str, Any]:
    import pytorch_lightning
    import torch

    return {
        "passing": passing,
        "cases": sum(o.tested for o in outcomes),
        "torch": torch.__version__,
        "lightning": pytorch_lightning.__version__,
        "recorded": datetime.date.today().isoformat(),
    }
