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

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from mltest.checks.base import CheckContext, CheckSettings, record_hint
from mltest.checks.causes import NONDETERMINISTIC_PREDICTION
from mltest.checks.regression_report import (
    case_message,
    decide,
    details_markdown,
    input_table,
    output_metrics,
    pct,
)
from mltest.config import Strict
from mltest.errors import BaselineError, ConfigError
from mltest.report import Case, CheckResult, Status

KIND = "regression"
_TENSOR_SUFFIXES = (".safetensors", ".npz", ".npy")
_TABLE_SUFFIXES = (".csv", ".jsonl", ".json", ".parquet")


class Inputs(Strict):
    """Where the fixed inputs come from: the data module (default) or a file."""

    source: Literal["datamodule", "file"] | None = Field(
        None, description="default: `file` when `file` is given, else `datamodule`"
    )
    dataloader: Literal["predict", "val"] | None = Field(
        None, description="data module loader; default predict when defined, else val"
    )
    file: str | None = Field(None, description="tensor file or table, relative to the config")
    collate: str | None = Field(None, description="import path of fn(list of examples) -> batch")
    examples: int | None = Field(None, ge=1, description="first K examples; default 64 / all")

    @model_validator(mode="after")
    def _consistent(self) -> Inputs:
        if self.kind == "file":
            if not self.file:
                raise ValueError("source `file` needs `file: path/to/inputs`")
            suffix = Path(self.file).suffix
            if suffix not in _TENSOR_SUFFIXES + _TABLE_SUFFIXES:
                raise ValueError(
                    f"`file` must end in one of {', '.join(_TENSOR_SUFFIXES + _TABLE_SUFFIXES)}"
                    f", got {self.file!r}"
                )
            if suffix in _TABLE_SUFFIXES and not self.collate:
                raise ValueError(
                    "a table needs `collate: module:function` to turn rows into a batch"
                )
            if self.dataloader:
                raise ValueError("`dataloader` applies to data-module inputs, not to a file")
        else:
            if self.file:
                raise ValueError("`file` is given but `source` is `datamodule`; drop one")
            if self.collate:
                raise ValueError(
                    "`collate` applies to file inputs; data-module inputs use the loader's own "
                    "collate_fn"
                )
        return self

    @property
    def kind(self) -> str:
        return self.source or ("file" if self.file else "datamodule")


class OutputTolerance(Strict):
    """Tolerance for one named output; unset values fall back to the check's."""

    rtol: float | None = Field(None, ge=0)
    atol: float | None = Field(None, ge=0)


class CrossEnvironment(Strict):
    """Tolerance for non-classifier float outputs compared with another environment's golden
    (classifier outputs are judged on their labels there)."""

    rtol: float = Field(1e-2, ge=0)
    atol: float = Field(1e-3, ge=0)


class Settings(CheckSettings):
    """`checks.regression` in mltest.yaml."""

    inputs: Inputs = Field(default_factory=Inputs)
    batch_size: int | None = Field(None, ge=1, description="inference batch size")
    rtol: float = Field(1e-4, ge=0, description="relative tolerance for float outputs")
    atol: float = Field(1e-5, ge=0, description="absolute tolerance for float outputs")
    per_output: dict[str, OutputTolerance] = Field(
        default_factory=dict, description="output name -> {rtol, atol}"
    )
    task: Literal["auto", "classification", "regression"] = Field(
        "auto", description="classification: count argmax label flips on float outputs"
    )
    worst: int = Field(10, ge=1, le=200, description="rows in the worst-examples table")
    cross_environment: CrossEnvironment = Field(default_factory=lambda: CrossEnvironment())
    calibrate: bool = Field(
        True,
        description="source train: at baseline update, train once more with other float sums "
        "and widen atol to 4x how far the outputs moved",
    )


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
    from mltest.compare import compare_outputs
    from mltest.golden import content_hash, flatten_batches, summarise
    from mltest.prediction import model_under_test, postprocess_fn, predict, training_ops
    from mltest.seeding import (
        determinism_mode,
        isolated_global_state,
        nondeterminism_notice,
        seed_all,
        watch_determinism,
    )

    spec = ctx.loaded.config.model_under_test
    inputs = ctx.shared.pop(f"{_INPUTS_KEY}.{ctx.name}", None) or _load_inputs(ctx, settings)
    input_arrays = flatten_batches(inputs.batches, "regression inputs")
    input_hash = content_hash(input_arrays)
    module = model_under_test(ctx)
    postprocess = postprocess_fn(ctx)
    ctx.deadline.check()
    mode = determinism_mode(ctx.trainer_settings)
    with isolated_global_state(), watch_determinism(mode) as watch:
        # Seeded once, not per run: randomness left on at inference must show as a difference.
        seed_all(spec.seed)
        outputs = predict(module, inputs.batches, postprocess)
        ctx.deadline.check()
        # Randomness left on at inference shows on any batch: predicting the first one again
        # is enough, and keeps the check's cost close to a single prediction pass.
        again = predict(module, inputs.batches[:1], postprocess)
    unstable = nondeterminism_notice(training_ops(ctx) | watch.ops)
    first = flatten_batches(outputs, _OUTPUTS)
    first_batch = flatten_batches(outputs[:1], _OUTPUTS)
    second = flatten_batches(again, _OUTPUTS)
    _check_per_output(settings, first)
    env = _environment(module, ctx)
    command = f"{ctx.update_command} --check {ctx.name}"
    base = dict(name=ctx.name, kind=KIND)
    metrics: dict[str, Any] = {
        "examples": inputs.examples,
        "inputs": inputs.description,
        "input_hash": input_hash,
        "environment": env,
        "rtol": settings.rtol,
        "atol": settings.atol,
    }

    tolerances = _tolerances(settings, first, noise={}, cross=False)
    rerun = compare_outputs(first_batch, second, per_output=tolerances, task=settings.task)
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
        from mltest.checks.regression_record import record

        result = record(ctx, settings, first, input_arrays, input_hash, inputs, env, metrics)
        result.notices = [*result.notices, *([unstable] if unstable else [])]
        return result

    golden = find_golden(ctx, env["key"], command)
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
    tolerances = _tolerances(settings, first, noise=noise, cross=cross)
    comparison = compare_outputs(
        golden.arrays,
        first,
        per_output=tolerances,
        task=settings.task,
        worst=settings.worst,
        labels_only=cross,
    )
    golden_inputs = golden.metadata.get("inputs", {})
    inputs_changed = _inputs_changed(golden_inputs, input_hash, inputs)
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
        notices += _noise_notices(settings, noise, tolerances)
    details = details_markdown(inputs.description, comparison, "golden", "got")
    if inputs_changed:
        details = input_table(golden_inputs.get("arrays", {}), summarise(input_arrays)) + details
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
            **output_metrics(comparison),
        },
        cases=[
            Case(d.name, Status.PASS if d.ok else Status.FAIL, case_message(d))
            for d in comparison.outputs
        ],
    )


_OUTPUTS = "predict_step outputs (after post-processing)"


def _inputs_changed(golden_inputs: dict[str, Any], input_hash: str, inputs: Any) -> bool:
    """Whether the fixed inputs differ from the golden's: example by example when both sides
    have that hash (independent of the batch size), else batch by batch."""
    recorded = golden_inputs.get("example_hash")
    now = inputs.example_hash() if recorded else None
    if recorded and now:
        return recorded != now
    return golden_inputs.get("hash") != input_hash


NOISE_MARGIN = 4.0  # measured training noise is one sample of it: allow this many times more


def find_golden(ctx: CheckContext, env_key: str, update_command: str):
    """This environment's golden record, else the closest other environment's, else None.

    Closest: the same device type (a torch minor upgrade) before another device, then the most
    recently recorded. A record of the first, single-file layout counts for the environment
    its metadata names.

    Returns:
        A `KeyedGolden` (the record and the environment key it belongs to), or None.
    """
    from mltest.golden import legacy_files, read_golden, record_files

    def load(files: tuple[str, str]):
        tensors, meta = (ctx.baselines.read_path(f) for f in files)
        return read_golden(tensors, meta, update_command)

    keys = ctx.baselines.keys(ctx.name)
    if env_key in keys:
        golden = load(record_files(ctx.name, env_key))
        if golden is None:
            raise BaselineError(
                f"baselines.json lists golden outputs of `{ctx.name}` for {env_key}, but "
                f"{record_files(ctx.name, env_key)[0]} is missing; restore it from git or "
                f"run `{update_command}`"
            )
        return KeyedGolden(golden.arrays, golden.metadata, env_key)
    legacy = load(legacy_files(ctx.name))
    if legacy is not None and key_of(legacy.metadata.get("environment", {})) == env_key:
        return KeyedGolden(legacy.arrays, legacy.metadata, env_key)
    device = env_key.split("-", 1)[0]
    others = sorted(
        keys,
        key=lambda k: (
            k.split("-", 1)[0] == device,
            str((ctx.baselines.get(ctx.name, k) or {}).get("recorded", "")),
        ),
        reverse=True,
    )
    for other in others:
        golden = load(record_files(ctx.name, other))
        if golden is not None:
            return KeyedGolden(golden.arrays, golden.metadata, other)
    if legacy is not None:
        return KeyedGolden(legacy.arrays, legacy.metadata, key_of(legacy.metadata["environment"]))
    return None


@dataclass
class KeyedGolden:
    """A golden record and the environment it was recorded in."""

    arrays: dict[str, Any]
    metadata: dict[str, Any]
    key: str


def key_of(environment: dict[str, Any]) -> str:
    """The environment key of a golden record's `environment` metadata."""
    if environment.get("key"):
        return str(environment["key"])
    minor = ".".join(str(environment.get("torch", "?")).split("+")[0].split(".")[:2])
    return f"{environment.get('device', 'cpu')}-torch{minor}-{environment.get('precision')}"


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
    from mltest.fixed_inputs import from_datamodule, from_file
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


def _check_per_output(settings: Settings, outputs: dict[str, Any]) -> None:
    """A tolerance for an output that does not exist is most likely a typo: say so."""
    from mltest.golden import is_extent

    names = sorted(n for n in outputs if not is_extent(n))
    unknown = sorted(set(settings.per_output) - set(names))
    if unknown:
        raise ConfigError(
            f"checks.regression.per_output: no output named {', '.join(map(repr, unknown))}; "
            f"the outputs are {', '.join(map(repr, names))}"
        )


def _tolerances(
    settings: Settings, outputs: dict[str, Any], *, noise: dict[str, float], cross: bool
) -> dict[str, Any]:
    """Each output's tolerance: the configured one, widened to the cross-environment one when
    comparing with another environment's golden, and to NOISE_MARGIN times the training noise
    measured when the golden was recorded."""
    from mltest.compare import Tolerance
    from mltest.golden import is_extent

    tolerances = {}
    for name in outputs:
        if is_extent(name):
            continue
        own = settings.per_output.get(name, OutputTolerance())
        rtol = own.rtol if own.rtol is not None else settings.rtol
        atol = own.atol if own.atol is not None else settings.atol
        if cross:
            rtol = max(rtol, settings.cross_environment.rtol)
            atol = max(atol, settings.cross_environment.atol)
        atol = max(atol, NOISE_MARGIN * float(noise.get(name, 0.0)))
        tolerances[name] = Tolerance(rtol=rtol, atol=atol)
    return tolerances


_COARSE_ATOL = 1e-2  # a noise-widened atol below this is not worth a notice on every run


def _noise_notices(settings: Settings, noise: dict[str, float], tolerances: dict) -> list[str]:
    """Say where measured training noise, not the configured atol, set the tolerance: a noisy
    model under test makes the check coarser, and the user should know by how much."""
    widened = {
        name: tol.atol
        for name, tol in tolerances.items()
        if tol.atol > settings.atol and tol.atol == NOISE_MARGIN * float(noise.get(name, 0.0))
    }
    if not widened or max(widened.values()) < _COARSE_ATOL:  # normal for a trained model
        return []
    parts = ", ".join(f"`{n}` atol {a:.3g}" for n, a in sorted(widened.items()))
    return [
        f"the trained model under test is numerically noisy (two harmless re-trainings at "
        f"baseline update differed by up to {max(noise.values()):.3g}), so values are compared "
        f"with {parts}; more `model_under_test.epochs` or a checkpoint make the check finer"
    ]


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
