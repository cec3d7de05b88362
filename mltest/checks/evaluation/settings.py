"""`checks.evaluation` in mltest.yaml: the candidate model, the held-out data sets and their
slices, the metrics with their limits, the gaps between slices, the confidence intervals and
the restore test. Torch-free: the supervisor validates these without Lightning."""

from __future__ import annotations

import difflib
import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from mltest.checks.base import CheckSettings
from mltest.checks.evaluation.catalog import BUILT_IN, DEFAULT_METRIC, info
from mltest.config import Strict

KIND = "evaluation"
ALL = "all"  # the slice holding every example of a data set
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


class Candidate(Strict):
    """The model the gate evaluates: trained here with a longer budget, or a checkpoint."""

    source: Literal["train", "checkpoint"] = "train"
    checkpoint: str | None = Field(None, description="path, relative to the config file")
    epochs: int = Field(10, ge=1, description="epochs of training when source is `train`")
    seed: int = 0

    @model_validator(mode="after")
    def _consistent(self) -> Candidate:
        if self.source == "checkpoint" and not self.checkpoint:
            raise ValueError("source `checkpoint` needs `checkpoint: path/to/model.ckpt`")
        if self.source == "train" and self.checkpoint:
            raise ValueError("`checkpoint` is given but `source` is `train`; drop one")
        return self

    def describe(self) -> str:
        if self.source == "checkpoint":
            return f"checkpoint {self.checkpoint}"
        return f"trained {self.epochs} epoch(s), seed {self.seed}"


class Dataset(Strict):
    """One held-out data set: a data-module loader, or a table with a collate function."""

    name: str = Field(description="shown in the report; letters, digits, `_.-`")
    loader: Literal["val", "test", "predict"] | None = Field(
        None, description="the data module's val_dataloader / test_dataloader / ..."
    )
    table: str | None = Field(
        None, description="table file (.csv/.jsonl/.parquet) or `module:function`"
    )
    collate: str | None = Field(None, description="tables: fn(list of row dicts) -> batch")
    target: str | int | None = Field(
        None,
        description="tables: the target column (default `target`); loaders: the batch's "
        "index or key (default: last element, or key target/label/labels/y)",
    )
    examples: int | None = Field(None, ge=1, description="only the first N examples")

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(
                f"{value!r}: use 1-64 letters, digits, `_`, `.` or `-` (it names files and "
                "report rows)"
            )
        return value

    @model_validator(mode="after")
    def _one_source(self) -> Dataset:
        if (self.loader is None) == (self.table is None):
            raise ValueError(f"data set `{self.name}`: give `loader` or `table`, exactly one")
        if self.table is not None and not self.collate:
            raise ValueError(
                f"data set `{self.name}`: a table needs `collate: module:function` "
                "(list of row dicts -> the batch predict_step takes)"
            )
        if self.loader is not None and self.collate:
            raise ValueError(
                f"data set `{self.name}`: `collate` applies to tables; a loader uses its own"
            )
        return self


class Slicing(Strict):
    """How examples fall into named slices: a column's values, a tags column, or a function."""

    column: str | None = Field(None, description="a slice per value: `column=value`")
    tags: str | None = Field(None, description="column of `;`-separated tags: a slice per tag")
    function: str | None = Field(
        None, description="`module:function(example) -> name or list of names`"
    )
    datasets: list[str] | None = Field(None, min_length=1, description="default: every one")

    @model_validator(mode="after")
    def _one_kind(self) -> Slicing:
        given = [k for k in ("column", "tags", "function") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("give one of `column`, `tags` or `function` per slicing")
        return self

    @property
    def spec(self) -> str:
        """`column region` / `tags tags` / `function slices:by_size`, for messages."""
        kind = next(k for k in ("column", "tags", "function") if getattr(self, k))
        return f"{kind} {getattr(self, kind)}"


class Limits(Strict):
    """Limits on one metric; every limit is optional. Allowances are in the metric's units
    (0.02 is 2 accuracy points) or a share of the reference's value (`"5%"`). Set on a metric,
    `beat_trivial_by` applies to each data set's `all` slice; set it under `slices:` for more."""

    at_least: float | None = Field(None, description="absolute floor (higher-is-better)")
    at_most: float | None = Field(None, description="absolute ceiling (lower-is-better)")
    max_drop: float | str | None = Field(None, description="vs the previous recorded result")
    max_drop_pinned: float | str | None = Field(None, description="vs the pinned reference")
    beat_trivial_by: float | None = Field(
        None, description="margin over the majority-class / mean predictor"
    )

    @field_validator("max_drop", "max_drop_pinned")
    @classmethod
    def _allowance(cls, value: float | str | None) -> float | str | None:
        if isinstance(value, str) and not _PERCENT.match(value):
            raise ValueError(
                f"give a number in the metric's units or a share like \"5%\", got {value!r}"
            )
        if isinstance(value, float | int) and value < 0:
            raise ValueError(f"an allowed drop is 0 or more, got {value:g}")
        return value


class Metric(Limits):
    """A metric to evaluate (a built-in one by its name, or `function`) and its limits,
    with overrides for slices (keys are slice names or `fnmatch` patterns, optionally
    `dataset/slice`)."""

    function: str | None = Field(None, description="`module:function(preds, target) -> float`")
    higher_is_better: bool | None = Field(None, description="required with `function`")
    average: Literal["macro", "micro", "weighted"] | None = Field(
        None, description="over classes (f1, precision, recall, auroc, iou); default macro"
    )
    slices: dict[str, Limits] = Field(default_factory=dict)

    def limits_for(self, dataset: str, slice_name: str) -> Limits:
        """This metric's limits with the overrides of every pattern that matches the slice."""
        import fnmatch

        merged = self.model_dump(include=set(Limits.model_fields))
        if slice_name != ALL:  # the trivial predictor is beaten on the whole data set
            merged["beat_trivial_by"] = None
        for pattern, override in self.slices.items():
            if fnmatch.fnmatchcase(f"{dataset}/{slice_name}" if "/" in pattern else slice_name,
                                   pattern):
                merged.update(override.model_dump(exclude_unset=True))
        return Limits(**merged)


class Gap(Strict):
    """The largest allowed difference of a metric between named slices of a data set."""

    metric: str
    slices: list[str] = Field(min_length=2)
    at_most: float = Field(ge=0)
    dataset: str | None = Field(None, description="default: the first data set")


class Confidence(Strict):
    """How sure a failure must be: a drop fails only when its confidence interval excludes
    no change (and the drop is beyond its allowance)."""

    level: float = Field(0.95, gt=0.5, lt=1)
    method: Literal["bootstrap", "mcnemar"] = Field(
        "bootstrap",
        description="`mcnemar`: exact McNemar intervals for paired accuracy comparisons "
        "(classifiers), bootstrap for the rest",
    )
    resamples: int = Field(1000, ge=50, le=100_000)
    seed: int = 0


class Restore(Strict):
    """The checkpoint restore / resume test."""

    enabled: bool = True
    steps: int = Field(2, ge=1, le=100, description="training steps before the checkpoint")
    rtol: float = Field(1e-5, ge=0)
    atol: float = Field(1e-6, ge=0)


class Settings(CheckSettings):
    """`checks.evaluation` in mltest.yaml."""

    task: Literal["binary", "multiclass", "regression", "segmentation"]
    num_classes: int | None = Field(None, ge=2, le=100_000, description="default: from outputs")
    candidate: Candidate = Field(default_factory=Candidate)
    datasets: list[Dataset] = Field(
        default_factory=lambda: [Dataset(name="val", loader="val")], min_length=1
    )
    slices: list[Slicing] = Field(default_factory=list)
    metrics: dict[str, Metric] = Field(default_factory=dict)
    gaps: list[Gap] = Field(default_factory=list)
    confidence: Confidence = Field(default_factory=Confidence)
    restore: Restore = Field(default_factory=Restore)
    batch_size: int = Field(256, ge=1, description="rows per predicted batch, for tables")
    history: int = Field(20, ge=0, description="earlier recorded results kept")
    hard_examples: int = Field(10, ge=0, le=1000, description="highest-loss examples listed")

    @field_validator("metrics", mode="before")
    @classmethod
    def _names_or_mapping(cls, value: Any) -> Any:
        # `metrics: [accuracy, f1]` and `accuracy:` with no limits both mean "no limits".
        if isinstance(value, list):
            return {name: {} for name in value}
        if isinstance(value, dict):
            return {name: {} if limits is None else limits for name, limits in value.items()}
        return value

    @model_validator(mode="before")
    @classmethod
    def _default_metric(cls, data: Any) -> Any:
        task = data.get("task") if isinstance(data, dict) else None
        if task in DEFAULT_METRIC and not data.get("metrics"):
            data = {**data, "metrics": {DEFAULT_METRIC[data["task"]]: {}}}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        for name, metric in self.metrics.items():
            _check_metric(name, metric, self.task)
        names = [d.name for d in self.datasets]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"data set name(s) {', '.join(twice)} used twice; names are unique")
        for slicing in self.slices:
            for name in slicing.datasets or ():
                _known(name, names, f"slicing `{slicing.spec}`: data set", "datasets")
        for gap in self.gaps:
            _known(gap.metric, list(self.metrics), "gaps: metric", "metrics")
            if gap.dataset is not None:
                _known(gap.dataset, names, "gaps: data set", "datasets")
        return self

    def metric_info(self, name: str):
        """The catalog entry of a configured metric (user metrics with their direction)."""
        return info(name, higher_is_better=self.metrics[name].higher_is_better)


def _check_metric(name: str, metric: Metric, task: str) -> None:
    if metric.function is not None:
        if name in BUILT_IN:
            raise ValueError(
                f"metrics.{name}: `{name}` is a built-in metric; give your function another name"
            )
        if metric.higher_is_better is None:
            raise ValueError(
                f"metrics.{name}: a metric `function` needs `higher_is_better: true` or `false`"
            )
    elif name not in BUILT_IN:
        fits = [m for m, i in BUILT_IN.items() if task in i.tasks]
        close = difflib.get_close_matches(name, fits, n=1)
        hint = f" (did you mean `{close[0]}`?)" if close else ""
        raise ValueError(
            f"metrics.{name}: unknown metric{hint}; built in for task `{task}`: "
            f"{', '.join(fits)}; or give `function: module:function`"
        )
    elif task not in BUILT_IN[name].tasks:
        fits = [m for m, i in BUILT_IN.items() if task in i.tasks]
        raise ValueError(
            f"metrics.{name}: `{name}` does not apply to task `{task}`; use one of "
            f"{', '.join(fits)}"
        )
    elif metric.higher_is_better is not None:
        raise ValueError(f"metrics.{name}: `higher_is_better` is only for `function` metrics")
    metric_info = info(name, higher_is_better=metric.higher_is_better)
    if metric.average is not None and not metric_info.averaged:
        raise ValueError(f"metrics.{name}: `average` applies to f1, precision, recall, auroc, iou")
    for where, limits in [("", metric), *((f".slices.{k}", v) for k, v in metric.slices.items())]:
        wrong = "at_most" if metric_info.higher_is_better else "at_least"
        if getattr(limits, wrong) is not None:
            right = "at_least" if wrong == "at_most" else "at_most"
            better = "higher" if metric_info.higher_is_better else "lower"
            raise ValueError(
                f"metrics.{name}{where}.{wrong}: {better} is better for `{name}`, so its "
                f"absolute limit is `{right}`"
            )


def _known(name: str, known: list[str], what: str, key: str) -> None:
    if name not in known:
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean `{close[0]}`?)" if close else ""
        raise ValueError(f"{what} `{name}` is not in `{key}`{hint}; known: {', '.join(known)}")
