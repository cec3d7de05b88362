"""The evaluation gate: is the candidate model at least as good where it matters?

The candidate (a longer seeded training run of the PR's code, or a checkpoint the workflow
provides) predicts every held-out data set; each metric is computed on every slice with a
bootstrap confidence interval and compared with the previous recorded result, the pinned
reference and the trivial predictor, example by example where the references' predictions on
the same examples are recorded. A limit fails only when the result is past it and the interval
says so too, so small slices do not flap. The restore test checks that training state survives
a checkpoint, and the highest-loss examples are listed for review.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mltest.checks.base import CheckContext
from mltest.checks.evaluation.settings import KIND, Settings
from mltest.errors import ConfigError
from mltest.report import Case, CheckResult, Status

_PREPARED = "evaluation.prepared"


@dataclass
class _Prepared:
    """What `validate` read before anything trained, kept for `run`."""

    functions: dict[str, Callable]  # import path -> the user's collate / slicing / metric
    tables: dict[int, list[dict]]  # data set position -> its rows


def validate(ctx: CheckContext, settings: Settings) -> None:
    """Before anything trains: the strategy, the checkpoint file, every function the config
    names, the tables and their target and slicing columns."""
    from mltest.checks.base import refuse_strategy

    refuse_strategy(
        ctx,
        sharded_ok=False,
        why_not_sharded="it predicts with the whole trained model outside the Trainer, and a "
        "sharded strategy leaves each rank a shard of it",
    )
    ctx.shared[f"{_PREPARED}.{ctx.name}"] = _prepare(ctx, settings)


def _prepare(ctx: CheckContext, settings: Settings) -> _Prepared:
    from mltest.checks.evaluation.data import read_table

    base = f"checks.{ctx.name}"
    spec = settings.candidate
    if spec.source == "checkpoint" and not (ctx.loaded.root / spec.checkpoint).is_file():
        raise ConfigError(
            f"`{base}.candidate.checkpoint: {spec.checkpoint}`: file not found at "
            f"{ctx.loaded.root / spec.checkpoint}; the path is relative to the config file (a "
            "workflow puts the trained model there before the run)"
        )
    named = [(f"{base}.datasets.{i}.collate", d.collate) for i, d in enumerate(settings.datasets)]
    named += [(f"{base}.slices.{i}.function", s.function) for i, s in enumerate(settings.slices)]
    named += [(f"{base}.metrics.{n}.function", m.function) for n, m in settings.metrics.items()]
    functions = {
        path: ctx.project.resolve(path, key=key) for key, path in named if path is not None
    }
    tables = {}
    for index, dataset in enumerate(settings.datasets):
        if dataset.table is None:
            continue
        rows = read_table(dataset, index, ctx.loaded.root, ctx.project)
        tables[index] = rows
        for slicing in settings.slices:
            column = slicing.column or slicing.tags
            applies = not slicing.datasets or dataset.name in slicing.datasets
            if column and applies and column not in rows[0]:
                raise ConfigError(
                    f"`{base}.slices` ({slicing.spec}): table `{dataset.table}` of data set "
                    f"`{dataset.name}` has no column `{column}` (columns: "
                    f"{', '.join(map(str, rows[0]))})"
                )
    return _Prepared(functions, tables)


def run(ctx: CheckContext, settings: Settings) -> CheckResult:
    """Evaluate the candidate, compare, decide; under `mltest baseline update`, record."""
    from mltest.checks.evaluation import candidate, records
    from mltest.checks.evaluation.compare import evaluate_set, gaps
    from mltest.checks.evaluation.decide import decide
    from mltest.checks.evaluation.metrics import metric_function, trivial
    from mltest.checks.evaluation.restore import RestoreOutcome, restore_test
    from mltest.checks.evaluation.slices import slice_members
    from mltest.checks.prediction import postprocess_fn
    from mltest.engine import environment_key
    from mltest.seeding import nondeterminism_notice

    prepared = ctx.shared.pop(f"{_PREPARED}.{ctx.name}", None) or _prepare(ctx, settings)
    sets = candidate.load_sets(ctx, settings, prepared.tables, prepared.functions)
    members = {d.name: slice_members(d, settings.slices, prepared.functions) for d in sets}
    ctx.deadline.check()
    module, ops = candidate.build(ctx, settings)
    ctx.deadline.check()
    weight = next(module.parameters(), None)
    env = environment_key(weight.device.type if weight is not None else "cpu",
                          ctx.trainer_settings)  # fmt: skip
    postprocess = postprocess_fn(ctx)
    preds = [candidate.predict_set(ctx, module, d, settings, postprocess) for d in sets]
    classes = candidate.class_count(settings, sets, preds)
    functions = {
        name: metric_function(settings.metric_info(name), settings.task, classes, m.average,
                              prepared.functions.get(m.function))  # fmt: skip
        for name, m in settings.metrics.items()
    }
    keep_scores = _needs_scores(settings, preds)

    counts = {d.name: d.count for d in sets}
    prints = {d.name: records.fingerprint(d.target) for d in sets}
    previous = records.read_previous(ctx.baselines, env)
    pinned = records.read_pinned(ctx.baselines, env)
    references, notices = [], []
    for name, loaded in (("previous", previous), ("pinned", pinned)):
        ref, said = records.reference(name, loaded, prints, counts)
        notices += said
        if ref is not None:
            references.append(ref)

    cells, boots = [], {}
    for data, p in zip(sets, preds, strict=True):
        baseline = trivial(data.target, settings.task, classes, keep_scores)
        result = evaluate_set(data, p, members[data.name], settings, functions, references,
                              baseline, ctx.deadline)  # fmt: skip
        cells += result.cells
        boots[data.name] = result.boots
    found_gaps, gap_notices = gaps(settings, boots, cells)
    notices += gap_notices
    ctx.deadline.check()

    restored = restore_test(ctx, settings) if settings.restore.enabled else RestoreOutcome()
    pinning = ctx.pin_reference
    verdict = decide(
        cells, found_gaps, restored.problems, level=settings.confidence.level, env=env,
        has_previous=previous is not None, has_pinned=pinned is not None,
        updating=ctx.update_baselines, pinning=pinning, update_command=ctx.update_command,
    )  # fmt: skip
    if ctx.update_baselines and verdict.status is Status.PASS:
        record = records.entry(settings, *_results(cells), prints, counts,
                               _history(previous, settings.history))  # fmt: skip
        kept = {d.name: records.stored(p, keep_scores) for d, p in zip(sets, preds, strict=True)}
        records.write(ctx.baselines, env, record, kept, pin=pinning or pinned is None)
    unstable = nondeterminism_notice(ops)
    notices = [*verdict.notices, *notices, *([unstable] if unstable else [])]
    return _result(ctx, settings, verdict, notices, cells, found_gaps, restored, sets, preds,
                   members, previous, pinned, env)  # fmt: skip


def _needs_scores(settings: Settings, preds: list) -> bool:
    """Whether a metric needs class scores; refused when the model gives labels only."""
    from mltest.errors import ProjectError

    needing = [n for n in settings.metrics if settings.metric_info(n).needs_scores]
    if needing and any(p.labels is not None and p.scores is None for p in preds):
        raise ProjectError(
            f"checks.evaluation.metrics.{needing[0]}: needs class scores, but predict_step "
            "returns labels; return scores or probabilities (N, C), or drop the metric"
        )
    return bool(needing)


def _results(cells) -> tuple[dict, dict]:
    """Values (data set -> slice -> metric) and sizes (data set -> slice) for a record."""
    from mltest.checks.evaluation.report import json_number

    results: dict[str, dict[str, dict[str, float | None]]] = {}
    sizes: dict[str, dict[str, int]] = {}
    for c in cells:
        value = json_number(c.value)
        value = None if value is None else round(value, 6)  # a readable diff in review
        results.setdefault(c.dataset, {}).setdefault(c.slice, {})[c.metric] = value
        sizes.setdefault(c.dataset, {})[c.slice] = c.n
    return results, sizes


def _history(previous, keep: int) -> list[dict]:
    """The history a new record keeps: the old one's, then the old record itself."""
    if previous is None or not keep:
        return []
    old = previous.entry
    items = [*old.get("history", []),
             {k: old.get(k) for k in ("recorded", "candidate", "results")}]  # fmt: skip
    return [i for i in items if isinstance(i, dict)][-keep:]


def _result(ctx, settings, verdict, notices, cells, found_gaps, restored, sets, preds, members,
            previous, pinned, env) -> CheckResult:  # fmt: skip
    from mltest.checks.evaluation import hard, report

    level = settings.confidence.level
    found = []
    for data, p, spec in zip(sets, preds, settings.datasets, strict=True):
        found += hard.hardest(data, p, members[data.name], settings, spec.target)
    header = [
        f"Candidate: {settings.candidate.describe()}; {len(cells)} cell(s) on "
        + ", ".join(f"{d.name} ({d.count} examples, {d.source})" for d in sets)
        + f"; {level:.0%} intervals by {_method(settings)}.",
        f"Previous result: {_when(previous)} · pinned reference: {_when(pinned)} ({env}).",
    ]
    if settings.restore.enabled:
        held = "fails" if restored.problems else "holds"
        header.append(f"Restore / resume test ({settings.restore.steps} steps, then one more): "
                      f"{held}.")  # fmt: skip
    restore_md = "\n".join(["**Restore / resume:**", "", *restored.details]) \
        if restored.details else ""  # fmt: skip
    headline_metric = next(iter(settings.metrics))
    metrics = {
        "environment": env,
        "task": settings.task,
        "candidate": settings.candidate.describe(),
        "confidence": settings.confidence.model_dump(),
        "datasets": {d.name: {"examples": d.count, "source": d.source} for d in sets},
        "headline": {"dataset": sets[0].name, "metric": headline_metric},
        "cells": [report.cell_metrics(c) for c in report.in_order(cells)],
        "gaps": [report.gap_metrics(g) for g in found_gaps],
        "previous_recorded": previous.entry.get("recorded") if previous else None,
        "pinned_recorded": pinned.entry.get("pinned") if pinned else None,
        "history": report.history(previous.entry if previous else None, sets[0].name,
                                  headline_metric),  # fmt: skip
        "hard_examples": found,
        "restore": {"ran": settings.restore.enabled, "problems": restored.problems},
    }
    cases = [Case(f"{c.metric} on {c.where}", Status.FAIL if c.outcome.value == "fail"
                  else Status.PASS) for c in cells]  # fmt: skip
    cases += [Case(name, Status.PASS if ok else Status.FAIL, msg)
              for name, ok, msg in restored.cases]  # fmt: skip
    return CheckResult(
        name=ctx.name,
        kind=KIND,
        status=verdict.status,
        summary=verdict.summary,
        hint=verdict.hint,
        notices=notices,
        details=report.details(cells, found_gaps, level, header,
                               [restore_md, hard.markdown(found)]),  # fmt: skip
        metrics=metrics,
        cases=cases,
    )


def _method(settings: Settings) -> str:
    conf = settings.confidence
    boot = f"bootstrap ({conf.resamples} resamples, seed {conf.seed})"
    return f"McNemar's exact test for accuracy, else {boot}" if conf.method == "mcnemar" else boot


def _when(loaded) -> str:
    if loaded is None:
        return "none recorded"
    entry = loaded.entry
    return f"{entry.get('pinned') or entry.get('recorded', '?')}, {entry.get('candidate', '?')}"
