"""The restore and resume test: can training state survive a checkpoint?

Three seeded fits of the user's own `training_step` on the first training batch, one step per
epoch, with the random state reset at the start of each epoch (so dropout draws the same
masks however the run got there):

- **continued**: `steps + 1` steps in one go;
- **stopped**: `steps` steps, then `trainer.save_checkpoint`;
- **resumed**: a fresh model of another seed, `trainer.fit(..., ckpt_path=...)` for the last step.

The **restore** half loads the checkpoint into a fresh model (another seed, so nothing of the
old weights survives by chance) with `on_load_checkpoint` and a strict `load_state_dict`, and
predicts the batch with both the stopped model and the restored one: tensors kept as plain
attributes instead of registered buffers, and other state the checkpoint does not hold, make
them differ. The **resume** half compares the resumed model's parameters with the continued
one's: optimizer or scheduler state that is not saved, or a counter kept on the model, makes
the next step differ.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mltest.errors import ProjectError, describe

# Attributes every LightningModule has, whose values say nothing about the user's state.
_LIGHTNING_ATTRS = {"training", "automatic_optimization", "prepare_data_per_node",
                    "allow_zero_length_dataloader_with_multiple_devices"}  # fmt: skip


@dataclass
class RestoreOutcome:
    """What the test found: `problems` is empty when both halves pass."""

    problems: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    cases: list[tuple[str, bool, str]] = field(default_factory=list)


def restore_test(ctx: Any, settings: Any) -> RestoreOutcome:
    """Run both halves; nothing is written outside a temporary folder."""
    from mltest.checks.prediction import postprocess_fn
    from mltest.engine import quiet
    from mltest.project import first_batches
    from mltest.seeding import determinism_mode, isolated_global_state, watch_determinism

    spec = settings.restore
    seed = settings.candidate.seed
    outcome = RestoreOutcome()
    postprocess = postprocess_fn(ctx)
    mode = determinism_mode(ctx.trainer_settings)
    with isolated_global_state(), quiet(), watch_determinism(mode), \
            tempfile.TemporaryDirectory(prefix="mltest-restore-") as scratch:  # fmt: skip
        datamodule = ctx.project.new_datamodule(seed)
        batches = first_batches(datamodule.train_dataloader, 1,
                                what="data.class `train_dataloader`")  # fmt: skip
        continued = _fit(ctx, ctx.project.new_model(seed), batches, spec.steps + 1, seed)[0]
        ctx.deadline.check()
        stopped, trainer = _fit(ctx, ctx.project.new_model(seed), batches, spec.steps, seed)
        path = Path(scratch) / "restore.ckpt"
        trainer.save_checkpoint(path)
        ctx.deadline.check()
        _restore_half(ctx, stopped, path, batches, postprocess, spec, seed, outcome)
        ctx.deadline.check()
        resumed = _fit(ctx, ctx.project.new_model(seed + 1), batches, spec.steps + 1, seed,
                       ckpt=path)[0]  # fmt: skip
        _resume_half(continued, resumed, spec, outcome)
    return outcome


def _fit(ctx, model, batches, epochs, seed, ckpt=None):
    import pytorch_lightning  # noqa: F401  (the callback base below)

    from mltest.engine import FixedBatches, lightning_package, make_trainer
    from mltest.seeding import seed_all

    class Reseed(lightning_package(model).Callback):
        """The same random draws at each step, continued or resumed."""

        def on_train_epoch_start(self, trainer, pl_module):
            seed_all(seed * 1000 + trainer.current_epoch)

    trainer = make_trainer(model, ctx.trainer_settings, max_epochs=epochs,
                           limit_train_batches=1, callbacks=[Reseed()])  # fmt: skip
    try:
        trainer.fit(model, train_dataloaders=FixedBatches(batches), ckpt_path=ckpt)
    except ProjectError:
        raise
    except Exception as exc:
        when = "resuming from the checkpoint" if ckpt else "training a few steps"
        raise ProjectError(f"checks.evaluation.restore: {when} raised {describe(exc)}") from exc
    return model, trainer


def _restore_half(ctx, stopped, path, batches, postprocess, spec, seed, outcome) -> None:
    import torch

    from mltest.checks.prediction import predict

    fresh = ctx.project.new_model(seed + 1)
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)  # written just now
    try:
        fresh.on_load_checkpoint(checkpoint)
        fresh.load_state_dict(checkpoint["state_dict"], strict=True)
    except Exception as exc:
        outcome.problems.append(f"a checkpoint does not load back into a fresh model: "
                                f"{describe(exc)}")  # fmt: skip
        outcome.cases.append(("restore: predictions", False, outcome.problems[-1]))
        return
    device = next(stopped.parameters(), torch.empty(0)).device
    fresh.to(device)
    before = _flat(predict(stopped, batches, postprocess))
    after = _flat(predict(fresh, batches, postprocess))
    moved = _moved(before, after, spec)
    if not moved:
        outcome.cases.append(("restore: predictions", True, ""))
        return
    unsaved = _differing_attributes(stopped, fresh)
    where = f"; not in the checkpoint: {', '.join(unsaved)}" if unsaved else ""
    problem = (f"a model restored from a checkpoint predicts differently from the model that "
               f"wrote it ({moved}){where}")  # fmt: skip
    _failed(outcome, "restore: predictions", problem,
            [f"- restore: {moved}", *[f"  - `{a}`" for a in unsaved]])  # fmt: skip


def _resume_half(continued, resumed, spec, outcome) -> None:
    import torch

    theirs = dict(resumed.named_parameters())
    differing = []
    for name, value in continued.named_parameters():
        if name not in theirs:
            differing.append(f"{name} (missing after resuming)")
            continue
        mine, other = value.detach().cpu(), theirs[name].detach().cpu()
        if not torch.allclose(mine, other, rtol=spec.rtol, atol=spec.atol):
            differing.append(f"{name} (max difference {float((mine - other).abs().max()):.3g})")
    if not differing:
        outcome.cases.append(("resume: next step", True, ""))
        return
    unsaved = _differing_attributes(continued, resumed)
    where = f"; state the checkpoint does not hold: {', '.join(unsaved)}" if unsaved else ""
    problem = (f"resuming from a checkpoint gives another step {spec.steps + 1} than continuing: "
               f"{len(differing)} parameter(s) differ, e.g. {differing[0]}{where}")  # fmt: skip
    _failed(outcome, "resume: next step", problem,
            [f"- resume: {len(differing)} parameter(s) differ",
             *[f"  - `{d}`" for d in differing[:10]],
             *[f"  - not saved: `{a}`" for a in unsaved]])  # fmt: skip


def _failed(outcome, case: str, problem: str, details: list[str]) -> None:
    """Record a failed half of the test: the problem, its JUnit case and its detail lines."""
    outcome.problems.append(problem)
    outcome.cases.append((case, False, problem))
    outcome.details += details


def _flat(outputs: list) -> Any:
    import torch

    flat = []
    for out in outputs:
        leaves = out.values() if isinstance(out, dict) else out
        leaves = leaves if isinstance(out, dict | list | tuple) else [out]
        flat += [t.reshape(-1).float() for t in leaves if isinstance(t, torch.Tensor)]
    return torch.cat(flat) if flat else torch.empty(0)


def _moved(before: Any, after: Any, spec: Any) -> str:
    """'' when the outputs agree, else how many moved and by how much."""
    import torch

    if before.shape != after.shape:
        return f"outputs of {tuple(before.shape)} values became {tuple(after.shape)}"
    close = torch.isclose(before, after, rtol=spec.rtol, atol=spec.atol, equal_nan=True)
    moved = int((~close).sum())
    if not moved:
        return ""
    gap = float((before - after).abs().nan_to_num(float("inf")).max())
    return f"{moved} of {before.numel()} output values moved, by up to {gap:.3g}"


def _differing_attributes(kept: Any, other: Any) -> list[str]:
    """Plain attributes (not parameters or buffers) of any submodule whose values differ
    between two models: tensors and numbers a checkpoint does not carry."""
    import torch

    found = []
    theirs = dict(other.named_modules())
    for prefix, module in kept.named_modules():
        twin = theirs.get(prefix)
        if twin is None:
            continue
        for name, value in vars(module).items():
            if name.startswith("_") or name in _LIGHTNING_ATTRS:
                continue
            mine, its = value, vars(twin).get(name)
            label = f"{prefix}.{name}" if prefix else name
            if isinstance(mine, torch.Tensor):
                if not isinstance(its, torch.Tensor) or mine.shape != its.shape or not torch.equal(
                    mine.detach().cpu(), its.detach().cpu()
                ):
                    found.append(f"{label} (a tensor attribute, not a registered buffer)")
            elif isinstance(mine, int | float) and not isinstance(mine, bool) and mine != its:
                found.append(f"{label} ({mine!r} vs {its!r} after loading)")
    return found[:10]
