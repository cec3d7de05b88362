"""Key examples for array outputs (`measure` rows): masks judged per pixel or per region,
reconstructions within an error bound, statistics of generated samples; and the table refuses
a measure row that cannot be judged, naming the row and the column."""

from __future__ import annotations

import pytest
import torch

from mltest.checks.key_examples.judging import judge
from mltest.checks.key_examples.predictions import Predictions
from mltest.checks.key_examples.table import _validate
from mltest.errors import ConfigError


def _judge(rows, output, class_axis=None):
    examples = _validate(rows, "keys", None)
    preds = Predictions.from_outputs([output], None, len(examples))
    return {o.example.id: o for o in judge(examples, preds, class_axis)}


def _masks(count=2):
    """Scores [count, 3, 4, 4] whose argmax over axis 1 is class 1 on the left half, else 0."""
    scores = torch.zeros(count, 3, 4, 4)
    scores[:, 0] = 1.0
    scores[:, 1, :, :2] = 2.0
    return scores


def test_segmentation_masks_are_judged_per_region_and_per_pixel():
    left = torch.zeros(4, 4, dtype=torch.long)
    left[:, :2] = 1
    rows = [
        {"id": "left-is-1", "kind": "mft", "input": 0, "measure": "pixel_accuracy",
         "region": "0:4,0:2", "expected": 1},
        {"id": "right-is-1", "kind": "mft", "input": 1, "measure": "pixel_accuracy",
         "region": ":,2:", "expected": 1, "at_least": 0.5},
        {"id": "mask", "kind": "mft", "input": 0, "measure": "pixel_accuracy",
         "expected": left.tolist()},
    ]  # fmt: skip
    got = _judge(rows, _masks(3), class_axis=1)
    assert got["left-is-1"].passed and got["left-is-1"].got == "1"
    assert not got["right-is-1"].passed and got["right-is-1"].got == "0"
    assert "pixel_accuracy in the region >= 0.5" in got["right-is-1"].expected
    assert got["mask"].passed


def test_invariance_of_a_mask_compares_with_the_reference_prediction():
    scores = _masks()
    scores[1, 1, 0, 3] = 5.0  # one pixel of 16 differs from the reference's mask
    rows = [
        {"id": "ref", "kind": "inv", "input": 0, "group": "g", "measure": "pixel_accuracy"},
        {"id": "noisy", "kind": "inv", "input": 1, "group": "g", "measure": "pixel_accuracy",
         "at_least": 0.9},
    ]  # fmt: skip
    got = _judge(rows, scores, class_axis=1)
    assert not got["ref"].tested
    assert got["noisy"].passed and got["noisy"].got == "0.9375"


def test_a_reconstruction_is_judged_against_its_own_input_by_default():
    image = torch.rand(1, 4, 4)
    rows = [
        {"id": "close", "kind": "mft", "input": image, "measure": "mse", "at_most": 0.01},
        {"id": "far", "kind": "mft", "input": image, "measure": "mae", "at_most": 0.01},
    ]
    output = torch.stack([image.reshape(16) + 0.05, image.reshape(16) + 0.2])  # flattened
    got = _judge(rows, output)
    assert got["close"].passed and got["close"].got == "0.0025"
    assert not got["far"].passed and "mae <= 0.01" in got["far"].expected


def test_statistics_of_generated_samples():
    samples = torch.stack([torch.full((2,), 0.5), torch.full((2,), 1.5)])
    rows = [
        {"id": "mean", "kind": "mft", "input": [0.0], "measure": "mean", "expected": 0.45,
         "tolerance": 0.1},
        {"id": "ref", "kind": "dir", "input": [0.0], "group": "up", "measure": "mean"},
        {"id": "moved", "kind": "dir", "input": [1.0], "group": "up", "measure": "mean",
         "direction": "up", "tolerance": 0.5},
    ]  # fmt: skip
    samples = torch.cat([samples[:1], samples])
    got = _judge(rows, samples)
    assert got["mean"].passed and got["mean"].expected == "mean 0.45 ± 0.1"
    assert got["moved"].passed and got["moved"].got == "1.5 (Δ +1)"


@pytest.mark.parametrize(
    "row, message",
    [
        ({"measure": "iou"}, "column `measure`: got 'iou'; allowed: pixel_accuracy"),
        ({"measure": "mse"}, "column `at_most`: `mse` needs a bound"),
        ({"measure": "pixel_accuracy"}, "column `expected`: pixel_accuracy needs the expected"),
        ({"measure": "mean", "expected": 0.2}, "column `expected`: `mean` takes `expected`"),
        ({"measure": "mse", "at_most": 0.1, "region": "0-4"}, "column `region`: got '0-4'"),
        ({"at_most": 0.1}, "column `at_most`: applies to rows with a `measure`"),
    ],
)
def test_a_measure_row_that_cannot_be_judged_is_refused(row, message):
    with pytest.raises(ConfigError, match="keys row 0 \\(id `x`\\), " + message.replace(
        "(", "\\(").replace(")", "\\)")):
        _validate([{"id": "x", "kind": "mft", "input": 1, **row}], "keys", None)
