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
                f"({_pct(rerun.moved, rerun.total)}); this is not compared with the golden outputs"
            ),
            hint=NONDETERMINISTIC_PREDICTION.hint,
            notices=[unstable] if unstable else [],
            details=_details(inputs.description, rerun, "first run", "second run"),
            metrics={
                **metrics,
                "deterministic": False,
                "causes": [NONDETERMINISTIC_PREDICTION.key],
                **_output_metrics(rerun),
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
    details = _details(inputs.description, comparison, "golden", "got")
    if inputs_changed:
        details = _input_table(golden_inputs.get("arrays", {}), summarise(input_arrays)) + details
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
            **_output_metrics(comparison),
        },
        cases=[
            Case(d.name, Status.PASS if d.ok else Status.FAIL, _case_message(d))
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


def decide(
    comparison: Any,
    *,
    inputs_changed: bool,
    env_now: dict[str, Any],
    env_golden: dict[str, Any],
    update_command: str,
    spec_change: str = "",
    golden_key: str | None = None,
) -> tuple[Status, str, str, list[str]]:
    """The verdict, the sentence a person reads, what to do next, and notices.

    Args:
        comparison: golden vs this run (`mltest.compare.Comparison`).
        inputs_changed: the fixed inputs' hash differs from the one recorded with the golden.
        env_now, env_golden: device, torch and lightning versions of this run and the golden.
        update_command: the command that rewrites the golden outputs.
        spec_change: how `model_under_test` differs from the golden's, in words, or "".
        golden_key: the environment the golden belongs to; another than `env_now["key"]`
            means no golden exists here and only decisions were compared.
    """
    intended = f"If the change is intended, run `{update_command}` and commit the golden files."
    env_key = env_now.get("key")
    cross = golden_key is not None and golden_key != env_key
    moved = _moved_sentence(comparison)
    if inputs_changed:
        outcome = (
            f"and {moved}"
            if not comparison.ok
            else "although the outputs still match within tolerance"
        )
        return (
            Status.FAIL,
            "the fixed inputs changed (their hash differs from the golden file's): the data "
            f"path no longer produces the same inputs, {outcome}",
            "The data path changed: look for a changed normalisation constant, resize, "
            f"tokenizer, collate function or input file (input statistics are in the details). "
            f"{intended}",
            [],
        )
    if comparison.problems:
        return (
            Status.FAIL,
            f"the outputs no longer have the golden layout: {'; '.join(comparison.problems)}",
            "predict_step or the post-processing now returns different outputs (names, shapes "
            f"or types). {intended}",
            [],
        )
    if not comparison.ok:
        why = (
            f"model_under_test changed since the golden outputs were recorded ({spec_change})"
            if spec_change
            else "the model, its weights or the post-processing changed"
        )
        if cross:
            return (
                Status.FAIL,
                f"{moved} on unchanged inputs, compared with the {golden_key} golden (none is "
                f"recorded for {env_key}): more than float noise between environments; {why}",
                "Only decisions (predicted labels, exact outputs, values within the "
                "cross-environment tolerance) were compared, so this is a real change: a "
                "shifted label map, changed post-processing or a changed model. "
                f"{intended}",
                [],
            )
        return (
            Status.FAIL,
            f"{moved} on unchanged inputs: {why}",
            "Look at the worst examples in the details: a shifted label map or changed "
            f"post-processing moves every example, a model change moves values. {intended}",
            [],
        )
    if cross:
        return Status.PASS, _cross_summary(comparison, golden_key), "", [
            f"no golden outputs are recorded for {env_key}: compared decisions with the "
            f"{golden_key} golden; record this environment's with `{update_command}` and "
            "commit the files"
        ]
    notices = []
    differs = [
        f"{key} {env_golden.get(key)} → {env_now.get(key)}"
        for key in ("device", "torch")
        if env_golden.get(key) and env_golden.get(key) != env_now.get(key)
    ]
    if differs:
        notices.append(
            f"golden outputs were recorded in another environment ({', '.join(differs)}); "
            "the tolerances hold"
        )
    worst = max((d.max_abs for d in comparison.outputs), default=0.0)
    return (
        Status.PASS,
        f"{comparison.total} output values match the golden outputs (max abs diff {worst:.3g})",
        "",
        notices,
    )


def _cross_summary(comparison: Any, golden_key: str) -> str:
    """What matched another environment's golden: labels, exact outputs, loose values."""
    labels = [d for d in comparison.outputs if d.judged_on == "labels"]
    parts = []
    if labels:
        examples = max(d.examples for d in labels)
        ties = sum(d.ties for d in labels)
        tie_note = f" ({ties} near-tie(s) flipped, within float noise)" if ties else ""
        parts.append(f"predicted labels of {examples} examples match{tie_note}")
    exact = [d for d in comparison.outputs if d.exact]
    if exact:
        parts.append(f"{sum(d.total for d in exact)} exact output values match")
    loose = [d for d in comparison.outputs if d.judged_on == "values" and not d.exact]
    if loose:
        parts.append(
            f"{sum(d.total for d in loose)} values within the cross-environment tolerance"
        )
    return f"{'; '.join(parts) or 'outputs match'} (compared with the {golden_key} golden)"


def _spec_change(recorded: dict[str, Any], ctx: CheckContext) -> str:
    """How the config's `model_under_test` differs from the one the golden was recorded with."""
    now = ctx.loaded.config.model_under_test.model_dump(exclude_none=True)
    keys = sorted(set(now) | set(recorded))
    return ", ".join(
        f"{k} {recorded.get(k, '—')} → {now.get(k, '—')}"
        for k in keys
        if recorded.get(k) != now.get(k)
    )


def _moved_sentence(comparison: Any) -> str:
    if comparison.problems:
        return f"the outputs changed layout ({'; '.join(comparison.problems)})"
    by_labels = [d for d in comparison.outputs if d.judged_on == "labels" and not d.ok]
    if by_labels:
        flips = sum(d.real_flips for d in by_labels)
        examples = max(d.examples for d in by_labels)
        text = f"{flips} predicted label(s) of {examples} examples flipped"
        others = [d for d in comparison.moved_outputs if d.judged_on == "values"]
        if others:
            moved = sum(d.moved for d in others)
            text += f" and {moved} other output value(s) moved beyond tolerance"
        return text
    text = (
        f"{comparison.moved} of {comparison.total} output values "
        f"({_pct(comparison.moved, comparison.total)}) moved beyond tolerance"
    )
    # Lead with the output that moved most, by share: a label map off by one moves every
    # label, which an overall share of values (diluted by unmoved scores) would hide.
    worst = max(comparison.moved_outputs, key=lambda d: d.moved / max(d.total, 1), default=None)
    flipped = comparison.flipped
    if flipped:
        examples = max(d.examples for d in comparison.outputs if d.flipped is not None)
        lead = f"{flipped} predicted label(s) of {examples} examples flipped " \
            f"({_pct(flipped, examples)})"
        return f"{lead}; {text}"
    if worst is not None and len(comparison.outputs) > 1 and worst.moved < comparison.total:
        noun = "labels" if worst.exact else "values"
        lead = (
            f"`{worst.name}`: {worst.moved} of {worst.total} {noun} "
            f"({_pct(worst.moved, worst.total)}) changed"
        )
        return f"{lead}; {text}"
    return text


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.3g}%" if whole else "0%"


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


def _case_message(diff: Any) -> str:
    if diff.problem:
        return diff.problem
    if diff.moved:
        return f"{diff.moved} of {diff.total} values moved (max abs diff {diff.max_abs:.3g})"
    return ""


def _output_metrics(comparison: Any) -> dict[str, Any]:
    return {
        "values": comparison.total,
        "moved": comparison.moved,
        "flipped": comparison.flipped,
        "outputs": {
            d.name: {
                "problem": d.problem,
                "total": d.total,
                "moved": d.moved,
                "max_abs": d.max_abs,
                "mean_abs": d.mean_abs,
                "max_rel": d.max_rel,
                "mean_rel": d.mean_rel,
                "flipped": d.flipped,
                "ties": d.ties,
                "judged_on": d.judged_on,
                "histogram": d.histogram,
            }
            for d in comparison.outputs
        },
    }


def _details(description: str, comparison: Any, left: str, right: str) -> str:
    lines = [f"Inputs: {description}.", ""]
    for problem in comparison.problems:
        lines.append(f"- {problem}")
    if comparison.problems:
        lines.append("")  # a table right after a list item would not render as a table
    rows = [d for d in comparison.outputs if not d.problem]
    if rows:
        lines += [
            "| output | values | moved | max abs | mean abs | max rel | mean rel "
            "| labels flipped |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for d in rows:
            if d.exact:
                stats = "exact | — | — | —"
            else:
                stats = f"{d.max_abs:.3g} | {d.mean_abs:.3g} | {d.max_rel:.3g} | {d.mean_rel:.3g}"
            flipped = "—" if d.flipped is None else f"{d.flipped} of {d.examples}"
            lines.append(
                f"| `{d.name}` | {d.total} | {d.moved} ({_pct(d.moved, d.total)}) | {stats} "
                f"| {flipped} |"
            )
    worst = [(d.name, w) for d in comparison.outputs for w in d.worst]
    if worst:
        lines += [
            "",
            "Worst values (index = example, then position):",
            "",
            f"| output | index | {left} | {right} | abs diff |",
            "|---|---|---|---|---|",
        ]
        for name, w in worst:
            diff = "—" if w.abs_diff is None else f"{w.abs_diff:.3g}"
            index = ", ".join(map(str, w.index))
            lines.append(f"| `{name}` | [{index}] | {_cell(w.golden)} | {_cell(w.got)} | {diff} |")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value).replace("|", "\\|")[:60]


def _input_table(golden: dict[str, Any], now: dict[str, Any]) -> str:
    lines = [
        "**The inputs changed.** Statistics of each input array, golden → now:",
        "",
        "| input | shape | mean | std | min | max |",
        "|---|---|---|---|---|---|",
    ]
    for name in sorted(set(golden) | set(now)):
        g, n = golden.get(name, {}), now.get(name, {})

        def pair(key: str, g=g, n=n) -> str:
            a, b = g.get(key, "—"), n.get(key, "—")
            a = f"{a:.4g}" if isinstance(a, float) else a
            b = f"{b:.4g}" if isinstance(b, float) else b
            return str(a) if a == b else f"{a} → {b}"

        lines.append(
            f"| `{name}` | {pair('shape')} | {pair('mean')} | {pair('std')} | {pair('min')} "
            f"| {pair('max')} |"
        )
    return "\n".join(lines) + "\n\n"
