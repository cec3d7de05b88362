"""Predictions in the shape torchmetrics reads, the metrics themselves (torchmetrics, or the
user's function), the trivial predictor, and the per-example loss that ranks hard examples.

Every model's predictions become a `Predictions`: class labels (and scores where a metric needs
them) for classifiers and segmentation, values for regression. The candidate, the recorded
references and the trivial predictor all go through the same functions, so their numbers
compare.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mltest.checks.evaluation.catalog import MetricInfo
from mltest.errors import ProjectError


@dataclass
class Predictions:
    """One model's predictions on one data set, example-first.

    Attributes:
        labels: classes (N,) or (N, H, W) for classification and segmentation, else None.
        scores: class probabilities, (N,) for binary and (N, C) for multiclass; None when the
            model gives labels only, or when no metric needs them.
        values: regression outputs (N, ...), else None.
    """

    labels: Any = None
    scores: Any = None
    values: Any = None

    def tensors(self) -> dict[str, Any]:
        """The non-empty parts by name, as a record stores them."""
        parts = {"labels": self.labels, "scores": self.scores, "values": self.values}
        return {k: v for k, v in parts.items() if v is not None}

    def take(self, rows: Any) -> Predictions:
        """The predictions of the examples `rows`, in that order."""
        return Predictions(*(None if t is None else t[rows] for t in self._parts()))

    __getitem__ = take  # what the bootstrap indexes

    def _parts(self) -> tuple[Any, Any, Any]:
        return self.labels, self.scores, self.values


def normalise(output: Any, task: str, num_classes: int | None, where: str) -> Predictions:
    """What `predict_step` returned (joined over batches) as `Predictions` for `task`.

    Raises:
        ProjectError: naming `where` and the shape received, when it cannot be read.
    """
    import torch

    if not isinstance(output, torch.Tensor):
        raise ProjectError(
            f"{where}: predict_step returned {type(output).__name__}; the evaluation reads a "
            "tensor (set `model_under_test.postprocess` to pick one from a structure)"
        )
    out = output.detach().cpu()
    shape = tuple(out.shape)
    if task == "regression":
        return Predictions(values=out.float())
    floating = out.is_floating_point()
    if task == "binary":
        if floating and out.ndim == 2 and shape[1] == 2:
            out = _probabilities(out, dim=1)[:, 1]
        elif floating and out.ndim == 2 and shape[1] == 1:
            out = out[:, 0]
        if out.ndim != 1:
            raise ProjectError(f"{where}: binary predictions of shape {shape}; expected (N,), "
                               "(N, 1) or (N, 2)")  # fmt: skip
        if not floating:
            return Predictions(labels=out.long())
        scores = out.float() if _in_unit_range(out) else torch.sigmoid(out.float())
        return Predictions(labels=(scores > 0.5).long(), scores=scores)
    class_dim = 1 if floating else None
    if task == "multiclass" and (out.ndim != (2 if floating else 1)):
        raise ProjectError(f"{where}: multiclass predictions of shape {shape}; expected class "
                           "scores (N, C) or labels (N,)")  # fmt: skip
    if task == "segmentation" and out.ndim != (4 if floating else 3):
        raise ProjectError(f"{where}: segmentation predictions of shape {shape}; expected "
                           "scores (N, C, H, W) or labels (N, H, W)")  # fmt: skip
    if class_dim is None:
        return Predictions(labels=out.long())
    if num_classes is not None and shape[1] != num_classes:
        raise ProjectError(f"{where}: {shape[1]} class scores per example, but `num_classes` "
                           f"is {num_classes}")  # fmt: skip
    probs = _probabilities(out.float(), dim=1)
    return Predictions(labels=probs.argmax(dim=1), scores=probs if task == "multiclass" else None)


def _in_unit_range(t: Any) -> bool:
    return bool(((t >= 0) & (t <= 1)).all())


def _probabilities(t: Any, dim: int) -> Any:
    """Probabilities as given, else a softmax of logits (as torchmetrics reads scores)."""
    import torch

    sums = t.sum(dim=dim)
    if _in_unit_range(t) and torch.allclose(sums, torch.ones_like(sums), atol=1e-3):
        return t
    return torch.softmax(t, dim=dim)


@dataclass(frozen=True)
class Metric:
    """One metric: `metric(predictions, target) -> float`, and, where torchmetrics can compute
    it for many resamples in one call (`multidim_average="samplewise"`, or `torch.func.vmap`
    over a plain function), `many(predictions, target)` on inputs with a leading resample axis,
    giving one value per resample."""

    one: Callable[[Predictions, Any], float]
    many: Callable[[Predictions, Any], Any] | None = None
    reads: str | None = None  # the part of the predictions it reads; None: all of them

    def __call__(self, preds: Predictions, target: Any) -> float:
        return self.one(preds, target)

    def slim(self, preds: Predictions) -> Predictions:
        """Only the part this metric reads, so resampling copies nothing else."""
        if self.reads is None:
            return preds
        return Predictions(**{self.reads: getattr(preds, self.reads)})


def metric_function(
    info: MetricInfo, task: str, num_classes: int, average: str | None, user: Callable | None
) -> Metric:
    """One metric computed with torchmetrics (argument checks off: the inputs were checked
    once, and the bootstrap calls it many times), or with the user's function."""
    import dataclasses

    metric = _metric(info, task, num_classes, average, user)
    if user is not None:
        return metric
    reads = "values" if task == "regression" else "scores" if info.needs_scores else "labels"
    return dataclasses.replace(metric, reads=reads)


def _metric(
    info: MetricInfo, task: str, num_classes: int, average: str | None, user: Callable | None
) -> Metric:
    if user is not None:
        return Metric(lambda p, t: _user_value(user, p, t, info.name))
    if task == "regression":
        return _regression(info.name)
    from torchmetrics.functional import classification as c

    avg = average or "macro"
    fast = {"validate_args": False}
    if task == "binary":
        if info.name == "auroc":
            return Metric(_defined(lambda p, t: float(c.binary_auroc(p.scores, t, **fast))))
        fn = {
            "accuracy": c.binary_accuracy, "f1": c.binary_f1_score,
            "precision": c.binary_precision, "recall": c.binary_recall,
            "iou": c.binary_jaccard_index,
        }[info.name]  # fmt: skip
        many = None if info.name == "iou" else (
            lambda p, t: fn(p.labels, t, multidim_average="samplewise", **fast)
        )
        return Metric(lambda p, t: float(fn(p.labels, t, **fast)), many)
    k = {"num_classes": num_classes, **fast}
    if info.name == "auroc":
        return Metric(_defined(lambda p, t: float(c.multiclass_auroc(p.scores, t, average=avg,
                                                                     **k))))  # fmt: skip
    if info.name == "iou":
        return Metric(lambda p, t: float(c.multiclass_jaccard_index(p.labels, t, average=avg,
                                                                    **k)))  # fmt: skip
    fn = {
        "accuracy": c.multiclass_accuracy, "f1": c.multiclass_f1_score,
        "precision": c.multiclass_precision, "recall": c.multiclass_recall,
    }[info.name]  # fmt: skip
    if info.name == "accuracy":
        avg = "micro"
    return Metric(
        lambda p, t: float(fn(p.labels, t, average=avg, **k)),
        lambda p, t: fn(p.labels, t, average=avg, multidim_average="samplewise", **k),
    )


def _regression(name: str) -> Metric:
    import torch
    from torchmetrics.functional import mean_absolute_error, mean_squared_error, r2_score

    if name == "r2":
        return Metric(lambda p, t: float(r2_score(p.values.reshape(len(t), -1),
                                                  t.reshape(len(t), -1))))  # fmt: skip
    fn = {
        "mae": mean_absolute_error,
        "mse": mean_squared_error,
        "rmse": lambda a, b: mean_squared_error(a, b, squared=False),
    }[name]
    batched = torch.func.vmap(fn)
    return Metric(lambda p, t: float(fn(p.values, t)), lambda p, t: batched(p.values, t))


def _defined(fn: Callable[[Predictions, Any], float]) -> Callable[[Predictions, Any], float]:
    """AUROC needs both kinds of example: undefined (NaN) on a slice of one class."""
    return lambda p, t: fn(p, t) if t.unique().numel() > 1 else float("nan")


def _user_value(fn: Callable, p: Predictions, target: Any, name: str) -> float:
    given = p.values if p.values is not None else p.scores if p.scores is not None else p.labels
    try:
        value = fn(given, target)
        return float(value)
    except Exception as exc:
        raise ProjectError(
            f"checks.evaluation.metrics.{name}: the function raised {type(exc).__name__}: {exc}; "
            "it takes (predictions, targets) as tensors and returns a number"
        ) from exc


def trivial(target: Any, task: str, num_classes: int, keep_scores: bool) -> Predictions:
    """The trivial model: the majority class (of this data set's targets) for classifiers and
    segmentation, the mean target for regression, for every example."""
    import torch

    n = len(target)
    if task == "regression":
        return Predictions(values=target.float().mean(dim=0, keepdim=True).expand_as(target))
    counts = torch.bincount(target.reshape(-1).long(), minlength=num_classes)
    majority = int(counts.argmax())
    labels = torch.full_like(target.long(), majority)
    if not keep_scores:
        return Predictions(labels=labels)
    if task == "binary":
        return Predictions(labels=labels, scores=torch.full((n,), float(majority)))
    scores = torch.nn.functional.one_hot(labels, num_classes).float()
    return Predictions(labels=labels, scores=scores)


def example_losses(p: Predictions, target: Any, task: str) -> Any:
    """A loss per example, to rank hard examples: cross-entropy of the predicted probabilities
    (an error rate when the model gives labels only), squared error for regression."""

    if task == "regression":
        diff = (p.values.float() - target.float().reshape(p.values.shape)) ** 2
        return diff.reshape(len(diff), -1).mean(dim=1)
    if p.scores is not None:
        if task == "binary":
            q = p.scores.clamp(1e-7, 1 - 1e-7)
            t = target.float()
            return -(t * q.log() + (1 - t) * (1 - q).log())
        picked = p.scores.gather(1, target.long().reshape(-1, 1)).reshape(-1)
        return -picked.clamp_min(1e-7).log()
    wrong = (p.labels != target.long()).float()
    return wrong.reshape(len(wrong), -1).mean(dim=1)
