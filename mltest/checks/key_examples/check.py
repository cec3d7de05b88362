"""Key examples: CheckList's three kinds of functionality test on the model under test.

A table of examples (see `table`) is collated into batches by the user's
`collate`, predicted with `predict_step` in eval mode plus the configured post-processing, and
judged: minimum functionality (expected label / value / top-k), invariance (a group gets the
same prediction) and directional (a score moves up or down). The verdict is per tag, each
with an allowed failure rate; examples that passed in the baseline and fail now come first.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

from mltest.checks.base import CheckContext
from mltest.checks.key_examples.judging import Outcome, judge
from mltest.checks.key_examples.predictions import Predictions
from mltest.checks.key_examples.report import case, details, summarize
from mltest.checks.key_examples.settings import KIND, Settings
from mltest.checks.key_examples.table import Example, load_examples
from mltest.checks.key_examples.verdict import decide, new_in, tag_stats
from mltest.errors import ProjectError
from mltest.report import CheckResult, Status

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
        if ex.kind == "mft" and ex.tolerance is None and ex.measured is None:
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
    from mltest.checks.prediction import (
        input_key,
        model_under_test,
        postprocess_fn,
        predict,
        training_ops,
    )
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
        raw = predict(module, batches, post, input_key(ctx))
    preds = Predictions.from_outputs(raw, settings.labels, len(examples))
    outcomes = judge(examples, preds, _class_axis(ctx, examples))

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
        details=details(outcomes, stats, settings),
        metrics={
            "examples": len(examples),
            "cases": sum(o.tested for o in outcomes),
            "failures": sum(o.tested and not o.passed for o in outcomes),
            "new_failures": [o.example.id for o in outcomes if o.new_failure][:100],
            "tags": {s.tag: {"cases": s.cases, "failures": s.failures, "rate": s.rate,
                             "allowed": s.allowed, "new_failures": new_in(s.tag, outcomes)}
                     for s in stats},
            "environment": env_key,
            "baseline_environment": baseline_key,
        },
        cases=[case(o) for o in outcomes],
    )


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


def _class_axis(ctx: CheckContext, examples: list[Example]) -> int | None:
    """The class axis of the model's outputs, when a `pixel_accuracy` row needs it."""
    if not any(ex.measured and ex.measured.measure == "pixel_accuracy" for ex in examples):
        return None
    from mltest.checks.task import task_of

    return task_of(ctx).class_axis


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
