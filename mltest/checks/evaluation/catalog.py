"""The built-in metrics the evaluation gate knows by name: which tasks each fits, which way is
better, the units a report shows and the default allowances. Torch-free: the supervisor
validates the config with it; `metrics` computes them with torchmetrics in the worker."""

from __future__ import annotations

from dataclasses import dataclass

TASKS = ("binary", "multiclass", "regression", "segmentation")
CLASSIFICATION = ("binary", "multiclass")


@dataclass(frozen=True)
class MetricInfo:
    """What a metric is, for validation and for reading a report.

    Attributes:
        name: the config name (`accuracy`).
        tasks: the tasks it applies to.
        higher_is_better: which way is better.
        bounded: a share in [0, 1]: deltas are shown in points (x100) and the default
            allowances are absolute (2 and 3 points); otherwise in the metric's units, with
            relative defaults (5% and 10% of the reference's value).
        needs_scores: needs class scores, not labels (AUROC).
        averaged: takes an `average` (macro/micro/weighted) over classes.
    """

    name: str
    tasks: tuple[str, ...]
    higher_is_better: bool
    bounded: bool
    needs_scores: bool = False
    averaged: bool = False


BUILT_IN: dict[str, MetricInfo] = {
    m.name: m
    for m in (
        MetricInfo("accuracy", (*CLASSIFICATION, "segmentation"), True, True),
        MetricInfo("f1", CLASSIFICATION, True, True, averaged=True),
        MetricInfo("precision", CLASSIFICATION, True, True, averaged=True),
        MetricInfo("recall", CLASSIFICATION, True, True, averaged=True),
        MetricInfo("auroc", CLASSIFICATION, True, True, needs_scores=True, averaged=True),
        MetricInfo("iou", (*CLASSIFICATION, "segmentation"), True, True, averaged=True),
        MetricInfo("mae", ("regression",), False, False),
        MetricInfo("mse", ("regression",), False, False),
        MetricInfo("rmse", ("regression",), False, False),
        MetricInfo("r2", ("regression",), True, False),
    )
}

DEFAULT_METRIC = {
    "binary": "accuracy",
    "multiclass": "accuracy",
    "regression": "mae",
    "segmentation": "iou",
}

# Allowed drop against the previous result / the pinned reference when the config gives none.
DEFAULT_DROP = {True: (0.02, 0.03), False: ("5%", "10%")}  # keyed by `bounded`


def info(name: str, *, higher_is_better: bool | None = None) -> MetricInfo:
    """The built-in metric `name`, or a user metric (a function) with its declared direction."""
    if name in BUILT_IN:
        return BUILT_IN[name]
    return MetricInfo(name, TASKS, bool(higher_is_better), False)
