"""The candidate model, and its predictions on the held-out data sets.

`source: train` fits a seeded fresh model with the user's own training loop (Lightning, the
config's trainer settings, one torch thread on the CPU so the sums do not depend on the
machine) for `candidate.epochs` epochs; `source: checkpoint` loads weights from a file (a
Lightning .ckpt, a state dict, or .safetensors) without pickle, strictly. Prediction goes
through `predict_step` in eval mode and the config's post-processing, like every prediction
check.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mltest.checks.evaluation.data import EvalSet, loader_set, table_set
from mltest.checks.evaluation.metrics import Predictions, normalise
from mltest.checks.evaluation.settings import Settings
from mltest.errors import ProjectError, describe

LOADER_STAGES = {"val": None, "test": "test", "predict": "predict"}  # setup() stage to add


def build(ctx: Any, settings: Settings) -> tuple[Any, set[str]]:
    """The candidate on its device in eval mode, and the ops without a deterministic kernel its
    training ran."""
    import torch

    from mltest.checks.prediction import TRAINING_THREADS, _load_weights
    from mltest.engine import device_for, make_trainer, quiet
    from mltest.seeding import determinism_mode, isolated_global_state, watch_determinism

    spec = settings.candidate
    mode = determinism_mode(ctx.trainer_settings)
    with isolated_global_state(), quiet(), watch_determinism(mode) as watch:
        if spec.source == "train":  # data first, so the model's init does not depend on it
            datamodule = ctx.project.new_datamodule(spec.seed)
        module = ctx.project.new_model(spec.seed)
        if spec.source == "checkpoint":
            _load_weights(module, ctx.loaded.root / spec.checkpoint, spec.checkpoint)
        else:
            trainer = make_trainer(module, ctx.trainer_settings, max_epochs=spec.epochs)
            if trainer.strategy.root_device.type == "cpu":
                torch.set_num_threads(TRAINING_THREADS)  # after the model's own __init__
            trainer.fit(module, datamodule=datamodule)
    module.to(device_for(ctx.trainer_settings))
    module.eval()
    return module, watch.ops


def datamodule_for(ctx: Any, settings: Settings) -> Any | None:
    """A fresh data module when a data set reads a loader (set up for each stage it needs)."""
    loaders = {d.loader for d in settings.datasets if d.loader}
    if not loaders:
        return None
    datamodule = ctx.project.new_datamodule(settings.candidate.seed)
    for loader in sorted(loaders):
        stage = LOADER_STAGES[loader]
        if stage and callable(getattr(datamodule, "setup", None)):
            try:
                datamodule.setup(stage)
            except Exception as exc:
                raise ProjectError(f"data.class `setup({stage!r})` raised {describe(exc)}") from exc
        if not _defines(datamodule, f"{loader}_dataloader"):
            raise ProjectError(
                f"checks.evaluation.datasets: `loader: {loader}` reads the data module's "
                f"{loader}_dataloader, which {type(datamodule).__name__} does not define; "
                "define it, or evaluate a table"
            )
    return datamodule


def _defines(obj: Any, method: str) -> bool:
    """Whether the user's class (not Lightning's) defines `method`."""
    for cls in type(obj).__mro__:
        if method in vars(cls):
            return not cls.__module__.startswith(("pytorch_lightning", "lightning"))
    return False


def load_sets(ctx: Any, settings: Settings, tables: dict[int, list[dict]],
              functions: dict[str, Callable]) -> list[EvalSet]:  # fmt: skip
    """Every configured data set, read in a fixed order."""
    from mltest.seeding import isolated_global_state

    with isolated_global_state():
        datamodule = datamodule_for(ctx, settings)
        sets = []
        for index, spec in enumerate(settings.datasets):
            ctx.deadline.check()
            if spec.table:
                sets.append(table_set(spec, index, tables[index], functions[spec.collate],
                                      settings.batch_size, settings.task))  # fmt: skip
            else:
                sets.append(loader_set(spec, index, datamodule, settings.task))
    return sets


def predict_set(ctx: Any, module: Any, data: EvalSet, settings: Settings,
                postprocess: Callable | None) -> Predictions:  # fmt: skip
    """The candidate's predictions on one data set, cut to its examples."""
    import torch

    from mltest.checks.prediction import predict
    from mltest.seeding import isolated_global_state, seed_all

    where = f"checks.evaluation data set `{data.name}` ({data.source})"
    with isolated_global_state():
        seed_all(settings.candidate.seed)
        outputs = predict(module, data.batches, postprocess)
    if not all(isinstance(o, torch.Tensor) for o in outputs):
        kinds = sorted({type(o).__name__ for o in outputs})
        raise ProjectError(f"{where}: predict_step returned {', '.join(kinds)}; the evaluation "
                           "reads a tensor per batch (set `model_under_test.postprocess` to "
                           "pick one)")  # fmt: skip
    joined = torch.cat([o if o.ndim else o.reshape(1) for o in outputs])
    if len(joined) < data.count:
        raise ProjectError(f"{where}: {len(joined)} predictions for {data.count} examples; "
                           "predict_step must return one prediction per example")  # fmt: skip
    preds = normalise(joined[: data.count], settings.task, settings.num_classes, where)
    if preds.values is not None and preds.values.numel() != data.target.numel():
        raise ProjectError(f"{where}: predictions of shape {tuple(preds.values.shape)} do not "
                           f"match targets of shape {tuple(data.target.shape)}")  # fmt: skip
    if preds.values is not None:
        preds = Predictions(values=preds.values.reshape(data.target.shape))
    if preds.labels is not None and preds.labels.shape != data.target.shape:
        raise ProjectError(f"{where}: predicted labels of shape {tuple(preds.labels.shape)} do "
                           f"not match targets of shape {tuple(data.target.shape)}")  # fmt: skip
    return preds


def class_count(settings: Settings, sets: list[EvalSet], preds: list[Predictions]) -> int:
    """`num_classes`, else the class scores' width, else one more than the largest label."""
    if settings.task == "regression":
        return 0
    if settings.num_classes:
        return settings.num_classes
    if settings.task == "binary":
        return 2
    for p in preds:
        if p.scores is not None:
            return int(p.scores.shape[1])
    top = max(int(t.max()) for t in [*(d.target for d in sets), *(p.labels for p in preds)])
    return top + 1
