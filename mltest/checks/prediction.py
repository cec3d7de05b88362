"""The model under test for the prediction checks, and the prediction path itself.

Both `regression` and `key_examples` predict with the same model, chosen once in the config
(`model_under_test:`) and built once per run (cached in the check context's `shared`).
Prediction goes through the model's own `predict_step` in eval mode, then the optional
post-processing function, so the code path under test is the one users ship.

A model under test trained on the CPU trains with one torch thread, whatever the machine or
the user's code set: the order of floating-point sums depends on the thread count, and a few
epochs amplify that into output differences a regression check would flag as a change.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from mltest.checks.base import CheckContext
from mltest.errors import CheckFailed, ProjectError, user_frame

_CACHE_KEY = "model_under_test"
_OPS_KEY = "model_under_test.nondeterministic"
TRAINING_THREADS = 1  # canonical: the same sums on every CPU machine
PERTURBED_THREADS = 2  # the harmless change a noise measurement re-trains with


def model_under_test(ctx: CheckContext) -> Any:
    """The configured model, on its device, in eval mode; built on first use, then shared."""
    if _CACHE_KEY not in ctx.shared:
        ctx.shared[_CACHE_KEY], ctx.shared[_OPS_KEY] = _build(ctx)
    return ctx.shared[_CACHE_KEY]


def training_ops(ctx: CheckContext) -> set[str]:
    """Ops without a deterministic kernel that building the model under test ran."""
    return set(ctx.shared.get(_OPS_KEY, ()))


def retrained_with_other_sums(ctx: CheckContext) -> Any:
    """The model under test trained again, as a harmless change would: another CPU thread
    count, or on CUDA cuDNN's benchmarked (non-deterministic) algorithms. How far its outputs
    move from the model's measures the training's numerical noise. Not cached."""
    module, _ = _build(ctx, perturbed=True)
    return module


def postprocess_fn(ctx: CheckContext) -> Callable[[Any], Any] | None:
    """The config's `model_under_test.postprocess` function, or None."""
    path = ctx.loaded.config.model_under_test.postprocess
    return ctx.project.resolve(path, key="model_under_test.postprocess") if path else None


def input_key(ctx: CheckContext) -> int | str | None:
    """The config's `model_under_test.input_key`: the batch element predict_step gets."""
    return ctx.loaded.config.model_under_test.input_key


def predict(
    module: Any,
    batches: Iterable,
    postprocess: Callable | None = None,
    input_key: int | str | None = None,
) -> list[Any]:
    """Run `predict_step` (no grad, eval mode) on each batch; outputs come back on the CPU.

    Args:
        input_key: `model_under_test.input_key`: predict_step gets `batch[input_key]` of a
            tuple, list or dict batch (a tensor batch is the input itself).

    Raises:
        ProjectError: when Lightning's default predict_step (the model defines none) passed a
            whole tuple or dict batch to `forward`, which refused it: names the batch and the
            setting that picks the input.
    """
    import torch
    from lightning_utilities.core.apply_func import apply_to_collection

    from mltest.seeding import fill_new_tensors, filling_new_tensors

    device = next(module.parameters(), torch.empty(0)).device
    module.eval()
    outputs = []
    fill = filling_new_tensors()
    with torch.no_grad(), contextlib.ExitStack() as after:
        after.callback(fill_new_tensors, fill)
        for index, batch in enumerate(batches):
            if index == 1:  # the first batch showed a read of unwritten memory as NaN
                fill_new_tensors(False)
            batch = prediction_input(batch, input_key)
            batch = module.transfer_batch_to_device(batch, device, 0)
            try:
                out = module.predict_step(batch, index)
            except Exception as exc:
                if input_key is None and _whole_batch_to_forward(module, batch):
                    raise ProjectError(
                        _WHOLE_BATCH.format(
                            model=type(module).__name__,
                            batch=describe_batch(batch),
                            error=_shortened(exc),
                        )
                    ) from exc
                raise
            if postprocess is not None:
                out = postprocess(out)
            outputs.append(apply_to_collection(out, torch.Tensor, lambda t: t.detach().cpu()))
    return outputs


_WHOLE_BATCH = (
    "{model} defines no predict_step, so Lightning's default predict_step passed the whole "
    "batch ({batch}) to forward, which refused it; set `model_under_test.input_key` to the "
    "batch element forward takes (e.g. `input_key: 0` for an (input, target) tuple), or define "
    "predict_step. forward raised {error}"
)
_SHOWN_ERROR = 200  # characters of the refusal quoted: torch's signature errors run to 1,000


def prediction_input(batch: Any, input_key: int | str | None) -> Any:
    """What predict_step gets: `batch[input_key]` of a tuple, list or dict batch, else the
    batch itself (a tensor batch, e.g. from a key-example collate, is the input already)."""
    if input_key is None or not isinstance(batch, (tuple, list, dict)):
        return batch
    try:
        return batch[input_key]
    except (KeyError, IndexError, TypeError) as exc:
        held = f"keys {list(batch)}" if isinstance(batch, dict) else f"{len(batch)} elements"
        raise ProjectError(
            f"model_under_test.input_key {input_key!r} is not in the batch (a "
            f"{type(batch).__name__} with {held}); give a tuple index or a dict key of the "
            "element forward takes"
        ) from exc


def describe_batch(batch: Any) -> str:
    """`a tuple of 2: Tensor (8, 1, 16, 16), Tensor (8, 16, 16)`: a batch's shape, in words."""

    def one(value: Any) -> str:
        shape = getattr(value, "shape", None)
        return (
            f"{type(value).__name__} {tuple(shape)}" if shape is not None else type(value).__name__
        )

    if isinstance(batch, dict):
        items = [f"{key!r}: {one(value)}" for key, value in list(batch.items())[:6]]
    else:
        items = [one(value) for value in list(batch)[:6]]
    more = ", ..." if len(batch) > 6 else ""
    return f"a {type(batch).__name__} of {len(batch)}: {', '.join(items)}{more}"


def _shortened(exc: Exception) -> str:
    """`Type: message (at file:line in fn)`, the message cut to `_SHOWN_ERROR` characters."""
    text = str(exc)
    if len(text) > _SHOWN_ERROR:
        text = text[: _SHOWN_ERROR - 3].rstrip() + "..."
    return f"{type(exc).__name__}: {text}{user_frame(exc)}"


def _whole_batch_to_forward(module: Any, batch: Any) -> bool:
    """Whether Lightning's own predict_step ran (the model defines none) on a tuple, list or
    dict batch: the default calls `self(batch)`, whole."""
    if not isinstance(batch, (tuple, list, dict)) or not batch:
        return False
    for cls in type(module).__mro__:
        if "predict_step" in vars(cls):
            return cls.__name__ == "LightningModule"
    return False


def _build(ctx: CheckContext, *, perturbed: bool = False) -> tuple[Any, set[str]]:
    """The model, and the ops without a deterministic kernel its training ran."""
    import torch

    from mltest.engine import device_for, make_trainer, quiet
    from mltest.seeding import determinism_mode, isolated_global_state, watch_determinism

    spec = ctx.loaded.config.model_under_test
    mode = determinism_mode(ctx.trainer_settings)
    with isolated_global_state(), quiet(), watch_determinism(mode) as watch:
        if spec.source == "train":  # data first, so model init does not depend on it
            datamodule = ctx.project.new_datamodule(spec.seed)
        module = ctx.project.new_model(spec.seed)
        if spec.source == "checkpoint":
            _load_weights(module, ctx.loaded.root / spec.checkpoint, spec.checkpoint)
        elif spec.source == "train":
            other = {"deterministic": False, "benchmark": True} if perturbed else {}
            trainer = make_trainer(module, ctx.trainer_settings, max_epochs=spec.epochs, **other)
            if trainer.strategy.root_device.type == "cpu":
                # After the model's __init__, which may have set its own count.
                torch.set_num_threads(PERTURBED_THREADS if perturbed else TRAINING_THREADS)
            trainer.fit(module, datamodule=datamodule)
    module.to(device_for(ctx.trainer_settings))
    module.eval()
    return module, watch.ops


def _load_weights(module: Any, path: Path, shown: str) -> None:
    """Load a Lightning checkpoint, a state dict or a safetensors file, strictly.

    Renamed or reshaped layers fail the check with the missing and unexpected keys named.
    """
    import torch

    if not path.is_file():
        raise ProjectError(
            f"`model_under_test.checkpoint: {shown}`: file not found at {path}; the path is "
            "relative to the config file"
        )
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ProjectError(
            f"`model_under_test.checkpoint: {shown}`: cannot be read ({type(exc).__name__}: "
            f"{exc}); give a Lightning .ckpt, a state dict saved with torch.save, or a "
            ".safetensors file"
        ) from exc
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    reshaped = sorted(
        f"{k} {tuple(state[k].shape)} -> {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(own[k].shape)
    )
    if missing or unexpected or reshaped:
        lines = []
        for title, names in (
            ("missing from the checkpoint", missing),
            ("in the checkpoint but not in the model", unexpected),
            ("reshaped (checkpoint -> model)", reshaped),
        ):
            if names:
                lines += [f"**{title}** ({len(names)}):", *[f"- `{n}`" for n in names[:30]], ""]
        raise CheckFailed(
            f"checkpoint {shown} no longer loads into the model: {len(missing)} missing, "
            f"{len(unexpected)} unexpected, {len(reshaped)} reshaped key(s)",
            details="\n".join(lines),
            hint="Layers were renamed or reshaped. If intended, re-export the checkpoint "
            "(or map the old names in `on_load_checkpoint`) and update the golden outputs.",
        )
    module.load_state_dict(state, strict=True)


NAN_HINT = (
    "Find where the prediction path makes NaN (a division by zero, the log of 0, an overflow "
    "in half precision, NaN weights in the checkpoint); mltest never compares with, or "
    "records, NaN predictions."
)


def nan_outputs(arrays: dict[str, Any]) -> str:
    """`output: 12 of 192 values` for each numeric output holding NaN; "" when none does."""
    import numpy as np

    found = []
    for name, value in arrays.items():
        if isinstance(value, np.ndarray) and value.dtype.kind in "fc":
            count = int(np.isnan(value).sum())
            if count:
                found.append(f"`{name}`: {count} of {value.size} values")
    return ", ".join(found)
