"""A model without `predict_step` on an `(image, mask)` loader, as Lightning's own segmentation
example is written: Lightning's default predict_step passes the whole batch to forward. The
prediction checks say so in one sentence, and `model_under_test.input_key` picks the input
element for regression and key_examples alike.
"""

from __future__ import annotations

import re

import pytest
import torch

from mltest.checks.prediction import prediction_input
from mltest.errors import ProjectError
from mltest.report import Status, Verdict
from mltest.supervisor import run_suite
from tests.suites import write_suite

MODEL = """
import pytorch_lightning as pl
import torch
from torch import nn
from torch.nn import functional as F


class Segmenter(pl.LightningModule):
    def __init__(self, lr=0.02):
        super().__init__()
        self.lr = lr
        self.net = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 2, 3, padding=1)
        )

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        img, mask = batch
        return F.cross_entropy(self(img), mask)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr)


def foreground(out):
    return {"value": out.softmax(dim=1)[:, 1].mean(dim=(1, 2))}
"""

DATA = """
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset


def pairs(n, seed=0):
    img = torch.rand(n, 1, 12, 12, generator=torch.Generator().manual_seed(seed))
    return img, (img[:, 0] > 0.5).long()


class Shapes(pl.LightningDataModule):
    def setup(self, stage=None):
        self.pairs = TensorDataset(*pairs(48))

    def train_dataloader(self):
        return DataLoader(self.pairs, batch_size=16)

    def val_dataloader(self):
        return DataLoader(self.pairs, batch_size=16)


def collate(rows):
    # the data's own shape: (images, masks), as a user reusing the loader's batches writes it
    img = torch.stack([torch.full((1, 12, 12), float(v)) for v in rows])
    return img, torch.zeros(len(rows), 12, 12, dtype=torch.long)


def examples():
    return [
        {"id": "dark", "kind": "dir", "input": 0.2, "group": "brighter"},
        {"id": "bright", "kind": "dir", "input": 0.9, "group": "brighter", "direction": "up"},
    ]
"""

CHECKS = {
    "regression": {"inputs": {"source": "datamodule", "examples": 32}},
    "key_examples": {"examples": "data:examples", "collate": "data:collate"},
}
UNDER_TEST = {"source": "init"}


def suite(tmp_path, **under_test):
    spec = {**UNDER_TEST, **under_test}
    return write_suite(
        tmp_path, model_src=MODEL, data_src=DATA, model="model:Segmenter", data="data:Shapes",
        checks=CHECKS, model_under_test=spec,
    )  # fmt: skip


def results(report):
    return {c.name: c for c in report.checks}


def test_the_default_predict_step_on_a_whole_batch_is_named_with_the_setting(tmp_path):
    report = run_suite(suite(tmp_path), tmp_path / "r", update_baselines=True, only=["regression"])
    result = results(report)["regression"]
    assert result.status is Status.ERROR
    assert (
        "Segmenter defines no predict_step, so Lightning's default predict_step passed the whole "
        "batch (a list of 2: Tensor (16, 1, 12, 12), Tensor (16, 12, 12)) to forward, which "
        "refused it; set `model_under_test.input_key`"
    ) in result.summary
    assert "(at model.py:17 in forward)" in result.summary  # where forward refused it
    assert len(result.summary) < 800  # not torch's 1,000-character conv2d signature dump
    assert "Fix the exception" not in (result.hint or "")


def test_input_key_feeds_the_image_to_regression_and_key_examples(tmp_path):
    config = suite(tmp_path, input_key=0, postprocess="model:foreground", source="train", epochs=3)
    recorded = run_suite(config, tmp_path / "rec", update_baselines=True)
    assert recorded.verdict is Verdict.PASS, [(c.name, c.summary) for c in recorded.checks]
    again = run_suite(config, tmp_path / "run")  # a rerun compares equal
    assert again.verdict is Verdict.PASS, [(c.name, c.summary) for c in again.checks]
    assert results(again)["key_examples"].summary.startswith("1/1 key examples pass")


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (2, "model_under_test.input_key 2 is not in the batch (a list with 2 elements)"),
        ("image", "model_under_test.input_key 'image' is not in the batch (a list with 2"),
        ("img", "input_key 'img' is not in the batch (a dict with keys ['image', 'mask'])"),
    ],
)
def test_an_input_key_the_batch_lacks_is_named(key, message):
    batch = {"image": torch.ones(2, 3), "mask": torch.zeros(2)} if key == "img" else [1, 2]
    with pytest.raises(ProjectError, match=re.escape(message)):
        prediction_input(batch, key)


def test_a_tensor_batch_is_the_input_itself():
    """A key-example collate that returns the input: input_key leaves it whole."""
    batch = torch.ones(4, 3)
    assert prediction_input(batch, 0) is batch
    assert prediction_input((batch, None), 0) is batch
