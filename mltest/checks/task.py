"""What kind of model is under test: classification, segmentation, sequence, regression or
generative, and for classifiers which output axis holds the classes.

The checks that read outputs need it: regression counts label flips only on class scores (per
pixel for segmentation), sanity expects a loss near ln C at init only of a classifier. An
output's shape alone misleads (an autoencoder's `[B, 784]` reconstruction looks like 784
class scores), so the task is read from the loss: one `training_step` on the first batch of
a fresh model, with no grad and no optimizer, records the torch loss functions it calls
(`F.cross_entropy` and `nn.CrossEntropyLoss` alike) and the shapes they receive:

| loss call | task | class axis |
|---|---|---|
| cross-entropy / NLL on `[B, C]` | classification | -1 |
| cross-entropy / NLL on `[N, C]` with N not the batch size (flattened tokens) | sequence | -1 |
| cross-entropy / NLL on `[B, C, T]` | sequence | 1 |
| cross-entropy / NLL on `[B, C, H, W...]` | segmentation | 1 |
| binary cross-entropy on `[B, 1, H, W]` | segmentation (binary; no argmax) | — |
| binary cross-entropy otherwise | classification (binary or multi-label; no argmax) | — |
| MSE, L1, smooth L1, Huber, Gaussian/Poisson NLL | regression | — |
| one of those against one-hot targets `[B, C]` (a classifier, wrong loss) | classification | -1 |
| none: manual optimization with two or more optimizers | generative (a GAN) | — |

The config's `task:` section overrides what is detected. Nothing found and nothing configured
leaves the kind unknown (None): the checks then use their own shape rules.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from mltest.checks.base import CheckContext

_CACHE_KEY = "task"
CLASSIFYING = ("classification", "segmentation", "sequence")
_CLASS_LOSSES = ("cross_entropy", "nll_loss")
_BINARY_LOSSES = ("binary_cross_entropy", "binary_cross_entropy_with_logits")
_VALUE_LOSSES = (
    "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "gaussian_nll_loss",
    "poisson_nll_loss",
)  # fmt: skip


@dataclass(frozen=True)
class Task:
    """The model's task as the checks read it.

    Attributes:
        kind: `classification`, `segmentation`, `sequence`, `regression`, `generative`, or
            None when neither the config nor the loss says.
        class_axis: the output axis holding class scores (argmax axis), or None.
        classes: how many classes, when known.
        source: how it was found, in words (`config task`, `cross_entropy on [8, 3, 32, 32]`).
    """

    kind: str | None = None
    class_axis: int | None = None
    classes: int | None = None
    source: str = ""

    @property
    def has_class_axis(self) -> bool:
        """True when outputs carry class scores along `class_axis` (argmax gives labels)."""
        return self.kind in CLASSIFYING and self.class_axis is not None

    def describe(self) -> str:
        """`segmentation (3 classes on axis 1; from cross_entropy on [8, 3, 32, 32])`."""
        if self.kind is None:
            return "unknown"
        parts = []
        if self.classes:
            parts.append(f"{self.classes} classes")
        if self.class_axis is not None:
            parts.append(f"class axis {self.class_axis}")
        if self.source:
            parts.append(f"from {self.source}")
        return f"{self.kind} ({'; '.join(parts)})" if parts else self.kind


def task_of(ctx: CheckContext, sample: tuple[Any, Any] | None = None) -> Task:
    """The task for this run: the config's `task:`, completed by detection; computed once per
    worker and shared by the checks.

    Args:
        sample: a fresh model and a training batch the caller already built; detection steps a
            copy of each (the caller's are left untouched). Default: build them.
    """
    if _CACHE_KEY not in ctx.shared:
        ctx.shared[_CACHE_KEY] = _configured_or_detected(ctx, sample)
    return ctx.shared[_CACHE_KEY]


def _configured_or_detected(ctx: CheckContext, sample: tuple[Any, Any] | None) -> Task:
    import copy

    from mltest.engine import copy_batch
    from mltest.seeding import isolated_global_state

    spec = ctx.loaded.config.task
    detected = Task()
    if spec.kind == "auto" or spec.class_axis is None or spec.classes is None:
        with isolated_global_state(), contextlib.suppress(Exception):
            # Detection is a courtesy: a model it cannot step is judged by shape rules, and
            # the checks themselves report what is really wrong with it.
            if sample is None:
                model, batches = ctx.project.fresh_start(ctx.seeds[0], 1)
                sample = (model, batches[0])
            # Copies of both: the caller trains on them next, and a training_step may write
            # into its batch.
            detected = detect(copy.deepcopy(sample[0]), copy_batch(sample[1]))
    if spec.kind == "auto":
        kind, source = detected.kind, detected.source
    else:
        kind, source = spec.kind, "config `task`"
    if kind not in CLASSIFYING:
        return Task(kind, None, None, source)
    same = detected.kind == kind
    axis = spec.class_axis
    if axis is None:
        axis = detected.class_axis if same else (1 if kind == "segmentation" else -1)
    classes = spec.classes if spec.classes is not None else (detected.classes if same else None)
    return Task(kind, axis, classes, source)


def detect(model: Any, batch: Any) -> Task:
    """The task `model` trains for, from the loss functions one `training_step` on `batch`
    calls (no grad; the model is left in the train/eval mode it had). A step that raises
    (one that steps optimizers needs a Trainer) counts with the calls made before it raised.
    """
    import torch

    manual = not getattr(model, "automatic_optimization", True)
    calls: list[tuple[str, list[tuple[int, ...]]]] = []
    if not manual:
        recorder = _loss_call_recorder(calls)
        shadowed = {n: model.__dict__[n] for n in ("log", "log_dict") if n in model.__dict__}
        model.log = model.log_dict = lambda *args, **kwargs: None  # no Trainer to log to
        try:
            # SystemExit too: a step that exits is the checks' to report, not detection's
            with torch.no_grad(), recorder, contextlib.suppress(Exception, SystemExit):
                model.training_step(batch, 0)
        finally:
            del model.log, model.log_dict
            model.__dict__.update(shadowed)
    optimizers = _optimizer_count(model) if manual else 1
    return from_loss_calls(calls, _batch_size(batch), manual, optimizers)


def from_loss_calls(
    calls: list[tuple],
    batch_size: int | None,
    manual: bool = False,
    optimizers: int = 1,
) -> Task:
    """The task the recorded loss calls point to: (name, shapes of the tensor arguments), and
    optionally whether the target (second argument) holds one-hot rows."""
    for name, shapes, *one_hot in calls:
        if name in _VALUE_LOSSES and one_hot and one_hot[0] and len(shapes) >= 2:
            where = f"{name} against one-hot targets {list(shapes[1])}"
            return Task("classification", -1, shapes[1][-1], where)
    for name, shapes, *_ in calls:
        if name not in _CLASS_LOSSES or not shapes:
            continue
        scores = shapes[0]
        where = f"{name} on {list(scores)}"
        if len(scores) <= 2:
            axis, classes = -1, scores[-1] if scores else None
            flattened = len(scores) == 2 and batch_size is not None and scores[0] != batch_size
            return Task("sequence" if flattened else "classification", axis, classes, where)
        kind = "sequence" if len(scores) == 3 else "segmentation"
        return Task(kind, 1, scores[1], where)
    for name, shapes, *_ in calls:
        if name in _BINARY_LOSSES and shapes:
            spatial = len(shapes[0]) >= 4
            kind = "segmentation" if spatial else "classification"
            return Task(kind, None, None, f"{name} on {list(shapes[0])}")
    for name, shapes, *_ in calls:
        if name in _VALUE_LOSSES:
            return Task("regression", None, None, f"{name} on {list(shapes[0]) if shapes else '?'}")
    if manual and optimizers >= 2:
        return Task("generative", None, None, f"manual optimization with {optimizers} optimizers")
    return Task()


def _loss_call_recorder(calls: list):
    """A torch function mode that appends (loss name, tensor argument shapes) to `calls`.

    Only outermost calls are seen: torch turns the mode off inside each call it hands over.
    """
    import torch
    from torch.overrides import TorchFunctionMode

    names = frozenset((*_CLASS_LOSSES, *_BINARY_LOSSES, *_VALUE_LOSSES))

    class LossCalls(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            if getattr(func, "__name__", "") in names:
                tensors = [a for a in args if isinstance(a, torch.Tensor)]
                target = tensors[1] if len(tensors) > 1 else None
                calls.append((func.__name__, [tuple(t.shape) for t in tensors], _one_hot(target)))
            return func(*args, **(kwargs or {}))

    return LossCalls()


def _one_hot(target: Any) -> bool:
    """Whether a loss target holds one-hot rows (0/1 values, each row summing to 1)."""
    if target is None or not target.is_floating_point() or target.dim() < 2:
        return False
    if target.shape[-1] < 2:
        return False
    rows = target.detach().reshape(-1, target.shape[-1])
    return bool(((rows == 0) | (rows == 1)).all()) and bool((rows.sum(1) == 1).all())


def _batch_size(batch: Any) -> int | None:
    """The first dimension of the batch's first tensor."""
    import torch

    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.dim() else None
    values = batch.values() if isinstance(batch, dict) else batch
    with contextlib.suppress(TypeError):
        for value in values:
            if isinstance(value, torch.Tensor) and value.dim():
                return int(value.shape[0])
    return None


def _optimizer_count(model: Any) -> int:
    """How many optimizers `configure_optimizers` returns (1 when it cannot be told)."""
    try:
        configured = model.configure_optimizers()
    except Exception:
        return 1
    if isinstance(configured, dict):
        return 1
    if isinstance(configured, (list, tuple)):
        first = configured[0] if configured else None
        if len(configured) == 2 and isinstance(first, (list, tuple)):
            return len(first)  # ([optimizers], [schedulers])
        return len(configured)
    return 1
