"""The restore / resume test on real tiny models: a healthy model passes both halves; a tensor
kept as a plain attribute instead of a registered buffer fails the restore half (and is named);
a step counter kept on the model fails the resume half (and is named)."""

from __future__ import annotations

from mltest.report import Status
from tests.checks.evaluation.gate import gate
from tests.suites import write_suite

DATA = """
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset


class Data(pl.LightningDataModule):
    def setup(self, stage=None):
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(96, 4, generator=gen) + 3.0
        y = (x[:, 0] > 3.0).long()
        self.train, self.val = TensorDataset(x[:64], y[:64]), TensorDataset(x[64:], y[64:])

    def train_dataloader(self):
        return DataLoader(self.train, batch_size=16, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val, batch_size=16)
"""

MODEL = """
import pytorch_lightning as pl
import torch
from torch import nn


class Model(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.2), nn.Linear(8, 2))
        self.register_buffer("input_mean", torch.zeros(4))
        self.seen = 0

    def forward(self, x):
        return self.net(x - self.input_mean)

    def training_step(self, batch, batch_idx):
        x, y = batch
        self.input_mean = 0.5 * self.input_mean + 0.5 * x.mean(0).detach()
        return nn.functional.cross_entropy(self(x), y)

    def predict_step(self, batch, batch_idx, dataloader_idx=0):
        return torch.softmax(self(batch[0]), dim=1)

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9)
        return [opt], [torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)]
"""

SETTINGS = {
    "task": "multiclass",
    "candidate": {"epochs": 1},
    "confidence": {"resamples": 50},
    "metrics": {"accuracy": {"max_drop": 1.0, "max_drop_pinned": 1.0}},
    "restore": {"steps": 2},
}


def restore_result(tmp_path, model: str):
    config = write_suite(tmp_path, model_src=model, data_src=DATA, model="model:Model",
                         data="data:Data", checks={"evaluation": SETTINGS})  # fmt: skip
    return gate(config, update=True)


def test_a_healthy_model_restores_and_resumes(tmp_path):
    result = restore_result(tmp_path, MODEL)
    assert result.status is Status.PASS, result.summary
    assert "pinned as the reference" in result.summary  # the first recording pins
    assert (tmp_path / ".mltest" / "evaluation" / "pinned").is_dir()
    cases = {c.name: c.status for c in result.cases if c.name.startswith(("restore", "resume"))}
    assert cases == {"restore: predictions": Status.PASS, "resume: next step": Status.PASS}


def test_a_tensor_that_is_not_a_registered_buffer_fails_the_restore_and_is_named(tmp_path):
    plain = MODEL.replace('self.register_buffer("input_mean", torch.zeros(4))',
                          "self.input_mean = torch.zeros(4)")  # fmt: skip
    result = restore_result(tmp_path, plain)
    assert result.status is Status.FAIL
    assert "restored from a checkpoint predicts differently" in result.summary
    assert "input_mean (a tensor attribute, not a registered buffer)" in result.summary
    assert "register_buffer" in result.hint


def test_training_state_kept_outside_the_checkpoint_fails_the_resume_and_is_named(tmp_path):
    counter = MODEL.replace(
        "        return nn.functional.cross_entropy(self(x), y)",
        "        self.seen += 1\n"
        "        warmup = min(1.0, self.seen / 10)\n"
        "        return warmup * nn.functional.cross_entropy(self(x), y)",
    )
    result = restore_result(tmp_path, counter)
    assert result.status is Status.FAIL
    assert "resuming from a checkpoint gives another step 3 than continuing" in result.summary
    assert "seen (3 vs 1 after loading)" in result.summary
    cases = {c.name: c.status for c in result.cases if c.name.startswith(("restore", "resume"))}
    assert cases == {"restore: predictions": Status.PASS, "resume: next step": Status.FAIL}
