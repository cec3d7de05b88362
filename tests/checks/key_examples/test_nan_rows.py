"""Examples whose prediction holds NaN are found batch by batch, as example by example: in
class scores, in a value, in a mask a `measure` row reads, and never in integer outputs."""

from __future__ import annotations

import pytest
import torch

from mltest.checks.key_examples.predictions import Predictions


def _batches(kind: str) -> list:
    torch.manual_seed(0)
    if kind == "scores":
        batches = [torch.randn(4, 3), torch.randn(3, 3)]
    elif kind == "values":
        batches = [torch.randn(4), torch.randn(3)]
    elif kind == "masks":
        batches = [torch.randn(4, 2, 5, 5), torch.randn(3, 2, 5, 5)]
    else:  # label indices: no NaN to find
        return [torch.tensor([0, 1, 2, 0]), torch.tensor([1, 1, 0])]
    batches[0][1].view(-1)[0] = float("nan")  # example 1
    batches[1][2].view(-1)[-1] = float("nan")  # example 6
    return batches


@pytest.mark.parametrize("kind", ["scores", "values", "masks", "labels"])
def test_nan_rows_batch_by_batch_equal_example_by_example(kind):
    preds = Predictions.from_outputs(_batches(kind), None, 7)
    one_by_one = Predictions(preds.labels, preds.scores, preds.values, preds.classes, preds.arrays)
    assert preds.nan_rows == one_by_one.nan_rows
    assert preds.nan_rows == (set() if kind == "labels" else {1, 6})


def test_half_precision_masks_are_read_as_float():
    batches = [b.half() for b in _batches("masks")]
    assert Predictions.from_outputs(batches, None, 7).nan_rows == {1, 6}
