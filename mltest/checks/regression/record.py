"""`mltest baseline update` for the regression check: record this environment's golden outputs.

Each environment (`cpu-torch2.13-32-true`, `cuda-torch2.13-16-mixed`) has its own record, so
recording on a GPU leaves the CPU one alone. The tensors and metadata go through the baseline
store as bytes (staged in the worker, committed by the supervisor); `baselines.json` lists the
environments with a short history of what each record held. Beside them, the module
fingerprints of the prediction (`fingerprints`, `trace`) let a later failure name the module
whose output moved first.

For a model under test trained by the check (`source: train`), the model is trained once more
with other floating-point sums (another CPU thread count, or cuDNN's benchmarked algorithms on
CUDA) and how far its outputs move is stored with the golden as `noise`: comparisons then allow
a few times that much, so harmless numerical noise passes while real changes, which move
outputs far more, still fail.
"""

from __future__ import annotations

import datetime
from typing import Any

import numpy as np

from mltest.checks.base import CheckContext
from mltest.report import CheckResult, Status

HISTORY = 10  # earlier records listed per environment in baselines.json


def record(
    ctx: CheckContext,
    settings: Any,
    outputs: dict[str, Any],
    input_arrays: dict[str, Any],
    input_hash: str,
    inputs: Any,
    env: dict[str, Any],
    metrics: dict[str, Any],
) -> CheckResult:
    """Write the golden record of `env["key"]`, saying what it replaces.

    Args:
        ctx: the check context (baseline store, config, shared model under test).
        settings: the check's settings.
        outputs: this run's flattened outputs.
        input_arrays, input_hash: the fixed inputs and their content hash.
        inputs: the `FixedInputs` (batches, count, description).
        env: this run's environment (`key`, device, versions, precision).
        metrics: the check's metrics so far.
    """
    from mltest.checks.regression.compare import compare_outputs
    from mltest.checks.regression.golden import (
        content_hash,
        encode_golden,
        legacy_files,
        record_files,
        summarise,
    )
    from mltest.checks.regression.input_sketch import sketch
    from mltest.checks.regression.lookup import find_golden
    from mltest.checks.regression.report import moved_sentence
    from mltest.checks.regression.trace import record_trace
    from mltest.errors import BaselineError

    key = env["key"]
    try:
        previous = find_golden(ctx, key, "")
    except BaselineError:
        previous = None  # a damaged record is what an update repairs
    if previous is not None and previous.key != key:
        previous = None  # another environment's record stays as it is
    spec = ctx.loaded.config.model_under_test
    notices: list[str] = []
    noise: dict[str, float] = {}
    if spec.source == "train" and settings.calibrate:
        noise, unstable = measure_noise(ctx, inputs, outputs)
        if unstable:
            notices.append(
                f"exact output(s) {', '.join(unstable)} differ between two harmless "
                "re-trainings: their comparison may flap; compare scores instead, or train "
                "the model under test longer"
            )
    tensors, meta = encode_golden(
        outputs,
        {
            "recorded": datetime.date.today().isoformat(),
            "environment": env,
            "model_under_test": spec.model_dump(exclude_none=True),
            "noise": noise,
            "inputs": {
                "description": inputs.description,
                "examples": inputs.examples,
                "hash": input_hash,
                "example_hash": inputs.example_hash(),
                "arrays": summarise(input_arrays),
                "sketch": sketch(input_arrays),
            },
        },
    )
    tensors_file, meta_file = record_files(ctx.name, key)
    ctx.baselines.write_file(tensors_file, tensors)
    ctx.baselines.write_file(meta_file, meta)
    outputs_hash = content_hash(outputs)
    ctx.deadline.check()
    trace_file, trace_notices = record_trace(ctx, inputs.batches, outputs_hash, meta_file)
    notices += trace_notices
    before = ctx.baselines.get(ctx.name, key) or {}
    history = [*before.get("history", []), *([_brief(before)] if before else [])]
    ctx.baselines.put(
        ctx.name,
        key,
        {
            "files": [tensors_file, meta_file, *([trace_file] if trace_file else [])],
            "recorded": datetime.date.today().isoformat(),
            "torch": env["torch"],
            "lightning": env["lightning"],
            "outputs_hash": outputs_hash,
            "noise_max_abs": max(noise.values(), default=0.0),
            "history": history[-HISTORY:],
        },
    )
    if ctx.baselines.read_path(legacy_files(ctx.name)[1]).exists():
        notices.append(
            f"{' and '.join(legacy_files(ctx.name))} (the single record of the first layout) "
            f"is no longer needed for {key}: delete it once every environment you test has "
            "its own record"
        )
    values = sum(len(v) if isinstance(v, list) else v.size for v in outputs.values())
    was = ""
    if previous is not None:
        change = compare_outputs(previous.arrays, outputs)
        was = "; unchanged" if change.ok else f"; was different ({moved_sentence(change)})"
    measured = (
        f"; training noise {max(noise.values()):.3g} max abs" if noise else ""
    )
    return CheckResult(
        name=ctx.name,
        kind="regression",
        status=Status.PASS,
        summary=f"golden outputs recorded for {key}: {len(outputs)} output(s), {values} values "
        f"for {inputs.examples} examples in {tensors_file}{was}{measured}",
        notices=notices,
        metrics={
            **metrics,
            "noise": noise,
            "outputs_hash": outputs_hash,
            "fingerprints": trace_file,
        },
    )


def measure_noise(
    ctx: CheckContext, inputs: Any, outputs: dict[str, Any]
) -> tuple[dict[str, float], list[str]]:
    """How far a harmless re-training moves each float output (max abs difference), and the
    exact outputs (labels, strings) it changes at all."""
    from mltest.checks.prediction import (
        input_key,
        postprocess_fn,
        predict,
        retrained_with_other_sums,
    )
    from mltest.checks.regression.golden import flatten_batches, is_extent
    from mltest.seeding import isolated_global_state, seed_all

    twin = retrained_with_other_sums(ctx)
    ctx.deadline.check()
    with isolated_global_state():
        seed_all(ctx.loaded.config.model_under_test.seed)
        again = flatten_batches(
            predict(twin, inputs.batches, postprocess_fn(ctx), input_key(ctx)),
            "re-trained outputs",
        )
    noise: dict[str, float] = {}
    unstable = []
    for name, value in outputs.items():
        if is_extent(name):
            continue
        other = again.get(name)
        if isinstance(value, list) or not np.issubdtype(value.dtype, np.floating):
            if other is None or not np.array_equal(np.asarray(value), np.asarray(other)):
                unstable.append(name)
            continue
        with np.errstate(invalid="ignore"):
            diff = np.abs(value.astype(np.float64) - np.asarray(other, dtype=np.float64))
        finite = diff[np.isfinite(diff)]
        noise[name] = float(finite.max()) if finite.size else 0.0
    return noise, unstable


def _brief(entry: dict[str, Any]) -> dict[str, Any]:
    """What history keeps of an earlier record: when, with which torch, which contents."""
    return {k: entry.get(k) for k in ("recorded", "torch", "outputs_hash", "noise_max_abs")}
