"""Label flips follow the model's class axis: per pixel for a segmentation's [B, C, H, W]
scores, none for a reconstruction, and only on outputs with the classifier's class count."""

from __future__ import annotations

import numpy as np

from mltest.checks.regression.compare import compare_outputs
from mltest.checks.regression.report import moved_sentence


def _scores(seed=0, shape=(2, 3, 4, 4)):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def test_segmentation_labels_flip_per_pixel_along_axis_1():
    golden = _scores()
    got = golden[:, [0, 2, 1]]  # classes 1 and 2 swapped: a label map off in predict_step
    result = compare_outputs(
        {"output": golden}, {"output": got}, task="classification", class_axis=1, classes=3
    )
    diff = result.outputs[0]
    was, now = golden.argmax(1), got.argmax(1)
    assert diff.flipped == int((was != now).sum()) > 0
    assert diff.labels == 2 * 4 * 4
    assert f"{diff.flipped} predicted label(s) of 32 per-position labels in 2 examples" in (
        moved_sentence(result)
    )


def test_the_old_last_axis_reading_would_count_something_else():
    golden = _scores()
    got = golden[:, [0, 2, 1]]
    per_pixel = compare_outputs({"o": golden}, {"o": got}, task="classification", class_axis=1)
    last_axis = compare_outputs({"o": golden}, {"o": got}, task="classification")
    assert per_pixel.outputs[0].labels == 32 and last_axis.outputs[0].labels == 2 * 3 * 4


def test_a_reconstruction_has_no_labels_to_flip():
    golden = np.random.default_rng(1).random((4, 784)).astype(np.float32)
    got = golden[:, ::-1].copy()
    auto = compare_outputs({"output": golden}, {"output": got})  # the shape rule: 784 classes
    regression = compare_outputs({"output": golden}, {"output": got}, task="regression")
    assert auto.outputs[0].flipped is not None
    assert regression.outputs[0].flipped is None
    assert "flipped" not in moved_sentence(regression)


def test_only_outputs_with_the_class_count_on_the_axis_are_read_as_scores():
    golden = {"logits": _scores(), "features": _scores(2, (2, 5, 4, 4))}
    got = {name: value + 1.0 for name, value in golden.items()}
    result = compare_outputs(golden, got, task="classification", class_axis=1, classes=3)
    flips = {d.name: d.flipped for d in result.outputs}
    assert flips == {"logits": 0, "features": None}
