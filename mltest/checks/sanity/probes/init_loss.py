"""The loss at init: ln C for a classifier, else (and once recorded) the baseline's.

A fresh classifier predicts roughly uniformly, so its cross-entropy starts near ln C; no model
that ignores its input can do better than the entropy of the labels (ln C when balanced). A
first loss far below that is not a good model, it is a different loss (MSE on probabilities,
targets that leak into the input); far above it, a saturated output layer or a sum where a
mean was meant. A model that starts elsewhere on purpose (pretrained, a prior-bias init) has
its first loss recorded in the baseline and is compared with that instead.

The labels are found in the batch: an integer tensor shaped like the output without its class
axis (the last one, or the one the model's task names: axis 1 of a segmentation's
`[B, C, H, W]`), with values in [0, C), or float one-hot rows of width C. A model whose task
is not classification (`mltest.checks.task`: an MSE autoencoder, a GAN) has no ln C to
expect: only its baseline's first loss is compared.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from mltest.checks.sanity.findings import Finding
from mltest.checks.sanity.obs import InitLossObs

BELOW = 0.5  # the first loss may lie this far below the labels' entropy
ABOVE = 3.0  # ... and this far above ln C
BASELINE = 2.0  # ... and this factor from the baseline's first loss


def observe(
    loss: float | None, output: list, batch: Any, classes: int | None, task: Any = None
) -> InitLossObs | None:
    """What the first loss should be, from the step's output and batch (None: no loss).

    `task` (a `mltest.checks.task.Task`) says whether the model classifies and on which
    output axis; None or an unknown kind: the classes are on the last axis.
    """
    if loss is None:
        return None
    obs = InitLossObs(loss=loss)
    known = task is not None and task.kind is not None
    if known and not task.has_class_axis and not classes:
        return obs  # a regression or generative loss: no ln C to expect
    axis = task.class_axis if known and task.has_class_axis else -1
    width = classes or (task.classes if known else None)
    logits = next(
        (
            t
            for t in output
            if t.dim() >= 2
            and -t.dim() <= axis < t.dim()
            and t.shape[axis] >= 2
            and (width is None or t.shape[axis] == width)
        ),
        None,
    )
    if logits is not None:
        logits = logits.movedim(axis, -1)  # classes last, as the label tests expect
    width = width or (int(logits.shape[-1]) if logits is not None else None)
    if width is None:
        return obs
    for where, t in _tensors_with_keys(batch):
        counts = _label_counts(t, logits, width)
        if counts is not None:
            obs.classes, obs.source = width, f"labels in batch{where}"
            obs.label_entropy = _entropy(counts)
            return obs
    if classes:
        obs.classes, obs.source, obs.label_entropy = classes, "checks.sanity.classes", None
    return obs


def _label_counts(t: torch.Tensor, logits, width: int) -> torch.Tensor | None:
    """Per-class counts when `t` holds class labels for `width` classes, else None."""
    if not t.numel():
        return None
    if not t.is_floating_point() and t.dtype != torch.bool:
        if logits is not None and tuple(t.shape) != tuple(logits.shape[:-1]):
            return None
        kept = t[t >= 0].long()  # negative: an ignore_index such as -100
        if not kept.numel() or int(kept.max()) >= width:
            return None
        return torch.bincount(kept.flatten().cpu(), minlength=width).double()
    if t.is_floating_point() and t.dim() >= 2 and t.shape[-1] == width:
        if logits is not None and tuple(t.shape) != tuple(logits.shape):
            return None
        rows = t.detach().reshape(-1, width).double().cpu()
        if bool(((rows == 0) | (rows == 1)).all()) and bool((rows.sum(1) == 1).all()):
            return rows.sum(0)
    return None


def _entropy(counts: torch.Tensor) -> float:
    p = counts / counts.sum()
    p = p[p > 0]
    return float(-(p * p.log()).sum())


def _tensors_with_keys(batch: Any):
    if isinstance(batch, torch.Tensor):
        return
    items = batch.items() if isinstance(batch, dict) else enumerate(batch or ())
    for key, value in items:
        if isinstance(value, torch.Tensor):
            yield f"[{key!r}]", value.detach()


def judge(obs: InitLossObs | None, baseline: float | None) -> list[Finding]:
    """The first loss against the baseline's (when recorded), else against ln C."""
    if obs is None or not math.isfinite(obs.loss):
        return []
    lnc = math.log(obs.classes) if obs.classes else None
    expected = (
        f"ln {obs.classes} = {lnc:.3g} expected of a {obs.classes}-class classifier at init"
        if lnc is not None
        else ""
    )
    if baseline is not None:
        if baseline > 0 and 1 / BASELINE <= obs.loss / baseline <= BASELINE:
            return []
        if baseline <= 0 or abs(obs.loss - baseline) < 1e-6:
            return []
        direction = "below" if obs.loss < baseline else "above"
        return [
            _finding(
                obs,
                f"{direction} the baseline's {baseline:.3g}"
                + (f" ({expected})" if expected else ""),
                direction,
            )
        ]
    if lnc is None:
        return []
    floor = BELOW * (obs.label_entropy if obs.label_entropy is not None else lnc)
    if obs.loss < floor:
        return [
            _finding(
                obs,
                f"far below {expected}; the labels' entropy is "
                f"{obs.label_entropy if obs.label_entropy is not None else lnc:.3g}",
                "below",
            )
        ]
    if obs.loss > ABOVE * lnc:
        return [_finding(obs, f"far above {expected}", "above")]
    return []


def _finding(obs: InitLossObs, against: str, direction: str) -> Finding:
    source = f" (classes from {obs.source})" if obs.source else ""
    if direction == "below":
        hint = (
            "A loss this low before training is not the loss you think: look for MSE/L1 on "
            "probabilities or one-hot targets instead of cross-entropy, labels leaking into the "
            "input, or a loss divided by the batch twice. If the model legitimately starts "
            "there (pretrained), record the baseline so its first loss is the reference."
        )
    else:
        hint = (
            "Look for a saturated output layer (large init or a missing normalisation), a loss "
            "summed where a mean was meant, or targets on another scale. If the model starts "
            "there on purpose, record the baseline."
        )
    return Finding(
        "loss at init",
        f"the loss at init is {obs.loss:.3g}, {against}{source}",
        hint + " Turn the probe off with checks.sanity.init_loss: false.",
        cause="wrong loss or targets" if direction == "below" else "saturated output",
    )
