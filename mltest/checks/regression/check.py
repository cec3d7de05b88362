"""Fixed-input prediction regression: do fixed inputs still give the golden outputs?

The model under test (`model_under_test:` in the config: a checkpoint, a short seeded training
run, or the seeded fresh init) predicts through its own `predict_step` in eval mode, then the
optional post-processing, on fixed inputs (the first K examples of the data module, or a
file). Prediction runs twice: runs that differ are non-deterministic, not a regression. The
outputs are compared with golden outputs stored in the repo (`<baseline_dir>/golden/`), which
only `mltest baseline update` writes. The input hash tells a changed data path (inputs moved)
from a changed model (same inputs, outputs moved).
"""

from __future__ import annotations

from typing import Any

from mltest.checks.base import CheckContext, environment_mismatch, record_hint
from mltest.checks.causes import NONDETERMINISTIC_PREDICTION
from mltest.checks.regression.lookup import find_golden
from mltest.checks.regression.report import (
    case_message,
    decide,
    details_markdown,
    input_table,
    output_metrics,
    pct,
)
from mltest.checks.regression.settings import KIND, Settings
from mltest.checks.regression.tolerances import (
    check_per_output,
    noise_notices,
    output_tolerances,
)
from mltest.report import Case, CheckResult, Status

_INPUTS_KEY = "regression.inputs"


def validate(ctx: CheckContext, settings: Settings) -> None:
    """Before anything trains: the strategy, and the fixed inputs (file, collate, data module),
    read now and kept for `run`."""
    from mltest.checks.base import refuse_strategy

    refuse_strategy(
        ctx,
        sharded_ok=False,
        why_not_sharded="it predicts with the whole trained model outside the Trainer, and a "
        "sharded strategy leaves each rank a shard of it",
    )
    ctx.shared[f"{_INPUTS_KEY}.{ctx.name}"] = _load_inputs(ctx, settings)


def run(ctx: CheckContext, settings: Settings) -> CheckResult:
    """Predict the fixed inputs (the first batch twice, for determinism); compare with or
    record the golden outputs of this environment (else another's, on decisions only)."""
    from mltest.checks.prediction import (
        NAN_HINT,
        input_key,
        model_under_test,
        nan_outputs,
        postprocess_fn,
        predict,
        training_ops,
    )
    from mltest.checks.regression.compare import compare_outputs
    from mltest.checks.regression.golden import batches_hash, flatten_batches, summarise
    from mltest.engine import copy_batch
    from mltest.seeding import (
        determinism_mode,
        isolated_global_state,
        nondeterminism_notice,
        seed_all,
        watch_determinism,
    )

    spec = ctx.loaded.config.model_under_test
    inputs = ctx.shared.pop(f"{_INPUTS_KEY}.{ctx.name}", None) or _load_inputs(ctx, settings)
    # Joined only to be recorded (as predict_step first sees them) or to show how they
    # changed: hashing them needs no joined copy.
    input_hash = batches_hash(inputs.batches, _INPUTS)
    input_arrays = flatten_batches(inputs.batches, _INPUTS) if ctx.update_baselines else None
    module = model_under_test(ctx)
    postprocess = postprocess_fn(ctx)
    env = _environment(module, ctx)
    command = f"{ctx.update_command} --check {ctx.name}"
    golden = None if ctx.update_baselines else find_golden(ctx, env["key"], command)
    golden_inputs = golden.metadata.get("inputs", {}) if golden is not None else {}
    # Everything that reads the inputs' values is done before predicting: a predict_step that
    # scales its batch in place (`x /= 255`) changes them on the CPU, where the batch is not
    # copied to a device.
    inputs_changed = golden is not None and _inputs_changed(golden_inputs, input_hash, inputs)
    # Joined once, only when the hash differs: to tell rounding from a change, and to show how.
    joined = flatten_batches(inputs.batches, _INPUTS) if inputs_changed else None
    first_again = copy_batch(inputs.batches[0])
    ctx.deadline.check()
    mode = determinism_mode(ctx.trainer_settings)
    with isolated_global_state(), watch_determinism(mode) as watch:
        # Seeded once, not per run: randomness left on at inference must show as a difference.
        seed_all(spec.seed)
        outputs = predict(module, inputs.batches, postprocess, input_key(ctx))
        ctx.deadline.check()
        # Randomness left on at inference shows on any batch: predicting the first one again
        # (as it was before the first prediction) is enough, and keeps the check's cost close
        # to a single prediction pass.
        again = predict(module, [first_again], postprocess, input_key(ctx))
    unstable = nondeterminism_notice(training_ops(ctx) | watch.ops)
    first = flatten_batches(outputs, _OUTPUTS)
    first_batch = flatten_batches(outputs[:1], _OUTPUTS)
    second = flatten_batches(again, _OUTPUTS)
    check_per_output(settings, first)
    base = dict(name=ctx.name, kind=KIND)
    nan = nan_outputs(first)
    if nan:  # NaN equals nothing: never a golden to record, never a difference to excuse
        return CheckResult(
            **base,
            status=Status.FAIL,
            summary=f"predict_step returned NaN on the fixed inputs ({nan})",
            hint=NAN_HINT,
        )
    metrics: dict[str, Any] = {
        "examples": inputs.examples,
        "inputs": inputs.description,
        "input_hash": input_hash,
        "environment": env,
        "rtol": settings.rtol,
        "atol": settings.atol,
    }

    flips = _flip_rule(ctx, settings)
    metrics["task"] = flips.pop("described")
    tolerances = output_tolerances(settings, first, noise={}, cross=False)
    rerun = compare_outputs(first_batch, second, per_output=tolerances, **flips)
    if not rerun.ok:
        return CheckResult(
            **base,
            status=Status.FAIL,
            summary=(
                f"{NONDETERMINISTIC_PREDICTION.title}: two predictions of the same batch differ "
                f"in {rerun.moved} of {rerun.total} output values "
                f"({pct(rerun.moved, rerun.total)}); this is not compared with the golden outputs"
            ),
            hint=NONDETERMINISTIC_PREDICTION.hint,
            notices=[unstable] if unstable else [],
            details=details_markdown(inputs.description, rerun, "first run", "second run"),
            metrics={
                **metrics,
                "deterministic": False,
                "causes": [NONDETERMINISTIC_PREDICTION.key],
                **output_metrics(rerun),
            },
        )

    if ctx.update_baselines:
        from mltest.checks.regression.record import record

        result = record(ctx, settings, first, input_arrays, input_hash, inputs, env, metrics)
        result.notices = [*result.notices, *([unstable] if unstable else [])]
        return result

    if golden is not None and _other_world(golden.key, env["key"]):
        # Trained on a shard per rank: not float noise, so decisions are not compared either.
        mismatch, hint = environment_mismatch(env["key"], [golden.key], command)
        return CheckResult(**base, status=Status.ERROR, summary=f"golden outputs: {mismatch}",
                           hint=hint, metrics=metrics)  # fmt: skip
    if golden is None:
        return CheckResult(
            **base,
            status=Status.FAIL,
            summary=f"no golden outputs recorded yet (none for {env['key']} or any other "
            "environment)",
            hint=record_hint(command, env["key"], "them"),
            notices=[unstable] if unstable else [],
            metrics=metrics,
        )
    cross = golden.key != env["key"]
    noise = golden.metadata.get("noise") or {}
    tolerances = output_tolerances(settings, first, noise=noise, cross=cross)
    comparison = compare_outputs(
        golden.arrays,
        first,
        per_output=tolerances,
        worst=settings.worst,
        labels_only=cross,
        **flips,
    )
    rounding = inputs_changed and _rounding_only(golden_inputs, joined)
    inputs_changed = inputs_changed and not rounding
    status, summary, hint, notices = decide(
        comparison,
        inputs_changed=inputs_changed,
        env_now=env,
        env_golden=golden.metadata.get("environment", {}),
        update_command=command,
        spec_change=_spec_change(golden.metadata.get("model_under_test", {}), ctx),
        golden_key=golden.key,
    )
    if status is Status.PASS:
        notices += noise_notices(settings, noise, tolerances)
    if rounding:
        notices.append(ROUNDING_NOTICE)
    details = details_markdown(inputs.description, comparison, "golden", "got")
    localisation = None
    if status is Status.FAIL and not inputs_changed:
        from mltest.checks.regression.trace import localise

        ctx.deadline.check()
        located = localise(ctx, golden, inputs.batches, cross=cross)
        if isinstance(located, str):  # why the moved outputs are not traced to a module
            notices.append(located)
        else:  # the module to check first replaces the generic advice
            localisation = located
            summary, hint = f"{summary}; {located.summary}", located.hint
            details = f"{located.details}\n{details}"
    if inputs_changed:
        details = input_table(golden_inputs.get("arrays", {}), summarise(joined)) + details
    return CheckResult(
        **base,
        status=status,
        summary=summary,
        hint=hint,
        notices=[*notices, *([unstable] if unstable else [])],
        details=details,
        metrics={
            **metrics,
            "golden_key": golden.key,
            "golden_input_hash": golden_inputs.get("hash"),
            "golden_environment": golden.metadata.get("environment", {}),
            "tolerances": {n: {"rtol": t.rtol, "atol": t.atol} for n, t in tolerances.items()},
            **({"localisation": localisation.metrics} if localisation else {}),
            **output_metrics(comparison),
        },
        cases=[
            Case(d.name, Status.PASS if d.ok else Status.FAIL, case_message(d))
            for d in comparison.outputs
        ],
    )


_OUTPUTS = "predict_step outputs (after post-processing)"
_INPUTS = "regression inputs"


def _flip_rule(ctx: CheckContext, settings: Settings) -> dict[str, Any]:
    """Which outputs count label flips, along which axis: `checks.regression.task` when set,
    else the model's task (`mltest.checks.task`: from the config's `task:` or the loss), and
    the shape rule (2-D float outputs) when neither tells."""
    from mltest.checks.task import task_of

    task = task_of(ctx)
    axis = ctx.loaded.config.task.class_axis
    if settings.task != "auto":
        rule = {"task": settings.task, "class_axis": -1 if axis is None else axis}
    elif task.kind is None:
        rule = {"task": "auto"}
    elif task.has_class_axis:
        rule = {"task": "classification", "class_axis": task.class_axis, "classes": task.classes}
    else:
        rule = {"task": "regression"}
    return {**rule, "described": task.describe()}


def _inputs_changed(golden_inputs: dict[str, Any], input_hash: str, inputs: Any) -> bool:
    """Whether the fixed inputs differ from the golden's: example by example when both sides
    have that hash (independent of the batch size), else batch by batch. Equal batches are
    equal examples: the per-example hash, which collates every example alone, is only
    computed when the batches differ."""
    if golden_inputs.get("hash") == input_hash:
        return False
    recorded = golden_inputs.get("example_hash")
    now = inputs.example_hash() if recorded else None
    if recorded and now:
        return recorded != now
    return golden_inputs.get("hash") != input_hash


ROUNDING_NOTICE = (
    "the fixed inputs' bytes differ from the golden's, but only by float rounding (their "
    "sums agree to 1e-5, as between CPUs with different vector units): compared as the same "
    "inputs"
)


def _rounding_only(golden_inputs: dict[str, Any], joined: dict[str, Any]) -> bool:
    """Whether the joined inputs, whose hash differs, are the golden's up to float rounding
    (goldens recorded before the sketch existed cannot tell: their inputs count as changed)."""
    from mltest.checks.regression.input_sketch import same_up_to_rounding

    recorded = golden_inputs.get("sketch")
    if not isinstance(recorded, dict):
        return False
    return same_up_to_rounding(recorded, joined)


def _spec_change(recorded: dict[str, Any], ctx: CheckContext) -> str:
    """How the config's `model_under_test` differs from the one the golden was recorded with."""
    now = ctx.loaded.config.model_under_test.model_dump(exclude_none=True)
    keys = sorted(set(now) | set(recorded))
    return ", ".join(
        f"{k} {recorded.get(k, '—')} → {now.get(k, '—')}"
        for k in keys
        if recorded.get(k) != now.get(k)
    )


def _load_inputs(ctx: CheckContext, settings: Settings):
    from mltest.checks.regression.fixed_inputs import from_datamodule, from_file
    from mltest.seeding import isolated_global_state

    spec = settings.inputs
    if spec.kind == "file":
        collate = (
            ctx.project.resolve(spec.collate, key="checks.regression.inputs.collate")
            if spec.collate
            else None
        )
        path = ctx.loaded.root / spec.file
        return from_file(path, spec.file, spec.examples, settings.batch_size, collate)
    with isolated_global_state():
        datamodule = ctx.project.new_datamodule(ctx.loaded.config.model_under_test.seed)
        return from_datamodule(datamodule, spec.examples, settings.batch_size, spec.dataloader)


def _other_world(golden_key: str, env_key: str) -> bool:
    from mltest.engine import world_size_of

    return world_size_of(golden_key) != world_size_of(env_key)


def _environment(module: Any, ctx: CheckContext) -> dict[str, Any]:
    import pytorch_lightning
    import torch

    from mltest.engine import environment_key

    param = next(module.parameters(), None)
    device = param.device.type if param is not None else "cpu"
    return {
        "key": environment_key(device, ctx.trainer_settings),
        "device": device,
        "torch": torch.__version__,
        "lightning": pytorch_lightning.__version__,
        "precision": str(ctx.trainer_settings.get("precision", "32-true")),
    }
