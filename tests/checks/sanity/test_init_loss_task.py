"""The loss at init is compared with ln C only for a classifier, along its class axis."""

from __future__ import annotations

import math

import torch

from mltest.checks.sanity.probes.init_loss import judge, observe
from mltest.checks.task import Task


def test_an_autoencoder_with_labels_in_its_batch_expects_no_ln_784():
    x, digits = torch.rand(32, 784), torch.randint(0, 10, (32,))
    unknown = observe(0.18, [x], (x, digits), None)
    assert unknown.classes == 784  # the shape rule alone reads a 784-class classifier
    assert judge(unknown, None)  # ... and finds the loss "far below ln 784"
    known = observe(0.18, [x], (x, digits), None, Task("regression", source="mse_loss"))
    assert known.classes is None
    assert judge(known, None) == []


def test_a_segmentation_loss_is_compared_with_ln_c_along_axis_1():
    logits, mask = torch.zeros(8, 3, 16, 16), torch.randint(0, 3, (8, 16, 16))
    task = Task("segmentation", 1, 3, "cross_entropy")
    obs = observe(math.log(3), [logits], (torch.rand(8, 3, 16, 16), mask), None, task)
    assert obs.classes == 3 and obs.source == "labels in batch[1]"
    assert judge(obs, None) == []
    low = observe(0.01, [logits], (torch.rand(8, 3, 16, 16), mask), None, task)
    assert "far below ln 3" in judge(low, None)[0].message
