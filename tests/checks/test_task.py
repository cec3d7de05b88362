"""The task kind and class axis (`mltest.checks.task`): read from the loss the training step
calls, on real small modules, and from the config's `task:` section when it names them."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from torch import nn

from mltest.checks.task import Task, detect, from_loss_calls
from mltest.config import TaskSpec


@pytest.mark.parametrize(
    "calls, batch, task",
    [
        ([("cross_entropy", [(8, 3), (8,)])], 8, Task("classification", -1, 3)),
        ([("nll_loss", [(8, 5), (8,)])], 8, Task("classification", -1, 5)),
        ([("cross_entropy", [(96, 7), (96,)])], 8, Task("sequence", -1, 7)),  # [B*T, C]
        ([("cross_entropy", [(8, 7, 12), (8, 12)])], 8, Task("sequence", 1, 7)),
        ([("cross_entropy", [(8, 3, 32, 32), (8, 32, 32)])], 8, Task("segmentation", 1, 3)),
        ([("binary_cross_entropy_with_logits", [(8, 1, 32, 32)] * 2)], 8,
         Task("segmentation", None, None)),
        ([("binary_cross_entropy", [(8, 4), (8, 4)])], 8, Task("classification", None, None)),
        ([("mse_loss", [(32, 784), (32, 784)])], 32, Task("regression", None, None)),
        ([("l1_loss", [(8, 1), (8, 1)]), ("cross_entropy", [(8, 3), (8,)])], 8,
         Task("classification", -1, 3)),  # a classification loss decides over an extra term
        ([("mse_loss", [(8, 4), (8, 4)], True)], 8, Task("classification", -1, 4)),
        ([("mse_loss", [(8, 4), (8, 4)], False)], 8, Task("regression", None, None)),
        ([], 8, Task()),
    ],
)  # fmt: skip
def test_the_loss_calls_give_the_task(calls, batch, task):
    found = from_loss_calls(calls, batch)
    assert (found.kind, found.class_axis, found.classes) == (task.kind, task.class_axis,
                                                            task.classes)


def test_manual_optimization_with_two_optimizers_is_generative():
    assert from_loss_calls([], 8, manual=True, optimizers=2).kind == "generative"
    assert from_loss_calls([], 8, manual=True, optimizers=1).kind is None


class _Net(pl.LightningModule):
    def __init__(self, head, loss):
        super().__init__()
        self.head, self.loss = head, loss

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.loss(self.head(x), y)
        self.log("train_loss", loss)  # no Trainer here: detection must not need one
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_a_segmentation_net_with_nn_cross_entropy_is_read_per_pixel():
    model = _Net(nn.Conv2d(3, 4, 1), nn.CrossEntropyLoss())
    batch = (torch.randn(2, 3, 8, 8), torch.randint(0, 4, (2, 8, 8)))
    task = detect(model, batch)
    assert (task.kind, task.class_axis, task.classes) == ("segmentation", 1, 4)
    assert "cross_entropy on [2, 4, 8, 8]" in task.describe()


def test_an_autoencoder_is_regression_not_a_784_class_classifier():
    model = _Net(nn.Linear(784, 784), nn.functional.mse_loss)
    x = torch.rand(4, 784)
    assert detect(model, (x, x)).kind == "regression"
    assert not detect(model, (x, x)).has_class_axis


def test_a_step_that_needs_a_trainer_counts_the_calls_made_before_it_raised():
    class NeedsTrainer(_Net):
        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = nn.functional.cross_entropy(self.head(x), y)
            self.trainer.strategy  # noqa: B018 (raises without a Trainer)
            return loss

    model = NeedsTrainer(nn.Linear(4, 3), None)
    task = detect(model, (torch.randn(5, 4), torch.randint(0, 3, (5,))))
    assert (task.kind, task.classes) == ("classification", 3)


@pytest.mark.parametrize(
    "spec, error",
    [({"kind": "regression", "class_axis": 1}, "describe class scores"),
     ({"kind": "generative", "classes": 0}, "greater than or equal to 2"),
     ({"kind": "segmentaton"}, "Input should be")],
)  # fmt: skip
def test_the_config_task_section_is_validated(spec, error):
    with pytest.raises(ValueError, match=error):
        TaskSpec.model_validate(spec)
