"""The post-processed outputs of every key example, read as labels, class scores and values."""

from __future__ import annotations

from typing import Any

from mltest.errors import CheckFailed, ProjectError


class Predictions:
    """Post-processed outputs of every example, as plain arrays.

    Accepted post-processed outputs, per batch: a 2-D float tensor of class scores (label =
    argmax); a 1-D float tensor of values; a 1-D integer tensor of label indices; a list of
    label names; or a dict with any of `label` (indices or names), `scores` (2-D) and `value`.
    """

    def __init__(
        self,
        labels: list[str],
        scores,
        values,
        classes: list[str] | None,
        arrays=None,
        array_nan=None,
    ):
        self.labels = labels  # predicted label name per example ("" when the output has none)
        self.scores = scores  # numpy [N, C] or None
        self.values = values  # numpy [N] or None
        self.classes = classes  # class names in score-column order, or None
        self.arrays = arrays  # each example's whole output (numpy), for `measure` rows
        self.confidences = self._confidences()
        # examples whose scores, value or whole output hold NaN; `array_nan`: whether each
        # example's array does, found batch by batch (else example by example here)
        self.nan_rows = self._nan_rows(array_nan)

    def _nan_rows(self, array_nan=None) -> set[int]:
        import numpy as np

        rows = np.zeros(len(self.labels), dtype=bool)
        if self.scores is not None:
            rows |= np.isnan(self.scores).any(axis=1)
        if self.values is not None:
            rows |= np.isnan(self.values)
        if array_nan is not None and self.arrays is not None:
            shared = min(len(rows), len(array_nan))
            rows[:shared] |= array_nan[:shared]
            return set(np.flatnonzero(rows).tolist())
        for i, array in enumerate(self.arrays or []):  # a mask or reconstruction (`measure`)
            if i < len(rows) and array.dtype.kind == "f" and np.isnan(array).any():
                rows[i] = True
        return set(np.flatnonzero(rows).tolist())

    def _confidences(self) -> list[float | None]:
        """Score of each predicted label, computed once for all examples (no per-row torch)."""
        import numpy as np

        if self.scores is None or not self.classes:
            return [None] * len(self.labels)
        column = {name: i for i, name in enumerate(self.classes)}
        cols = np.array([column.get(label, -1) for label in self.labels])
        picked = self.scores[np.arange(len(cols)), np.maximum(cols, 0)].tolist()
        return [p if c >= 0 else None for p, c in zip(picked, cols.tolist(), strict=True)]

    @classmethod
    def from_outputs(cls, outputs: list, names: list[str] | None, count: int) -> Predictions:
        import numpy as np

        labels, scores, values, arrays, array_nan = [], [], [], [], []
        for out in outputs:
            label, score, value = _split(out)
            labels.append(label)
            scores.append(score)
            values.append(value)
            array = _as_array(out)
            arrays.append(list(array) if array is not None else [])
            array_nan.append(_nan_per_example(array))
        scores_ = np.concatenate(scores) if all(s is not None for s in scores) else None
        values_ = np.concatenate(values) if all(v is not None for v in values) else None
        classes = names
        if scores_ is not None:
            width = scores_.shape[1]
            if names is not None and len(names) != width:
                raise CheckFailed(
                    f"the model now scores {width} class(es) but `labels` names {len(names)} "
                    f"({', '.join(names)}): the model's output changed",
                    hint="A changed head (number of outputs) or post-processing changes what "
                    "the model predicts. Only if intended: update `labels` and the examples, "
                    "then run the baseline update, which records the new outputs as correct.",
                )
            classes = names or [str(i) for i in range(width)]
        has_labels = all(label is not None for label in labels)
        if names is not None and scores_ is None and not has_labels and values_ is not None:
            raise CheckFailed(
                f"the model now gives one value per example but `labels` names {len(names)} "
                f"classes ({', '.join(names)}): the model's output changed",
                hint="A head changed to a single output (or post-processing that drops the "
                "scores) changes what the model predicts. Only if intended: update `labels` and "
                "the examples, then run the baseline update, which records the new outputs as "
                "correct.",
            )
        flat: list = []
        if has_labels:
            for label in labels:
                flat.extend(label)
        elif scores_ is not None:
            flat = scores_.argmax(axis=1).tolist()
        else:
            flat = [""] * count
        named = [_name(label, classes) for label in flat]
        whole = [a for batch in arrays for a in batch] if all(arrays) else None
        # Array outputs with no label or score reading (masks, images) count examples by array.
        arrays_only = whole is not None and not has_labels and scores_ is None
        got = len(whole) if arrays_only else len(named)
        if got != count or (scores_ is not None and len(scores_) != count):
            raise ProjectError(
                f"prediction returned {got} outputs for {count} examples; predict_step and "
                "postprocess must return one output per example in the batch"
            )
        nan = np.concatenate(array_nan) if whole is not None else None
        return cls(named, scores_, values_, classes, whole, nan)

    def column(self, target: str | None, where: str) -> int:
        """Score column of a class name or index."""
        if self.scores is None or self.classes is None:
            raise ProjectError(
                f"{where}: needs class scores, but the post-processed outputs have none; "
                "return a 2-D score tensor or a dict with `scores`"
            )
        if target in self.classes:
            return self.classes.index(target)
        if target is not None and target.lstrip("-").isdigit() and 0 <= int(target) < len(
            self.classes
        ):
            return int(target)
        raise ProjectError(
            f"{where}, column `target`: {target!r} is not a class; classes: "
            f"{', '.join(self.classes)}"
        )


def _split(out: Any) -> tuple[list | None, Any, Any]:
    """(labels, scores [B,C], values [B]) of one batch's post-processed output."""
    import numpy as np
    import torch

    label = score = value = None
    if isinstance(out, dict):
        label, score, value = out.get("label"), out.get("scores"), out.get("value")
        if label is None and score is None and value is None:
            raise ProjectError(
                f"post-processed output is a dict with keys {sorted(out)}; give `label`, "
                "`scores` and/or `value`"
            )
    elif isinstance(out, (list, tuple)) and all(isinstance(x, str) for x in out):
        label = out
    elif isinstance(out, (torch.Tensor, np.ndarray)):
        array = out.numpy() if isinstance(out, torch.Tensor) else out
        if array.ndim > 2:
            pass  # a mask, an image: judged by `measure` rows on each example's array
        elif array.ndim == 2 and array.shape[1] > 1:
            score = array
        elif np.issubdtype(array.dtype, np.integer):
            label = array.reshape(-1)
        else:
            value = array.reshape(-1)
    else:
        raise ProjectError(
            f"post-processed output of type {type(out).__name__} is not understood; return "
            "a 2-D score tensor, a 1-D tensor, a list of label names, or a dict with "
            "`label`/`scores`/`value` (set model_under_test.postprocess)"
        )

    def as_np(t):
        return t.float().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)

    if score is not None:
        score = as_np(score).astype(np.float64)
    if value is not None:
        value = as_np(value).astype(np.float64).reshape(-1)
    if label is not None and not isinstance(label, list):
        label = label.tolist() if hasattr(label, "tolist") else list(label)
    return label, score, value


def _as_array(out: Any) -> Any:
    """A tensor or array output as one numpy array with an example axis (None otherwise);
    `list()` of it is one array per example."""
    import numpy as np
    import torch

    if isinstance(out, torch.Tensor):
        out = out.float().numpy() if out.is_floating_point() else out.numpy()
    return out if isinstance(out, np.ndarray) and out.ndim >= 1 else None


def _nan_per_example(array: Any) -> Any:
    """Whether each example's part of a batch array holds NaN, in one pass over the batch
    (one `isnan` per example costs more than the model on 10,000 small outputs)."""
    import numpy as np

    if array is None or not len(array) or array.dtype.kind != "f":
        return np.zeros(0 if array is None else len(array), dtype=bool)
    return np.isnan(array.reshape(len(array), -1)).any(axis=1)


def _name(label: Any, classes: list[str] | None) -> str:
    if isinstance(label, str):
        return label
    index = int(label)
    if classes is not None:
        if not 0 <= index < len(classes):
            raise CheckFailed(
                f"predicted label index {index} is outside the {len(classes)} classes "
                f"({', '.join(classes)}); check the label map in post-processing"
            )
        return classes[index]
    return str(index)


