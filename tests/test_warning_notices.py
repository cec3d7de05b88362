"""Warnings raised while a check runs reach the report as that check's notices: torch's own
broadcasting warning from `mse_loss` on mismatched shapes (a real bug it names) shows in
report.json and the PR comment with the model's file:line, once per check; Lightning's advice
that mltest silences stays out.
"""

from __future__ import annotations

import json
import warnings

from mltest.report import Status
from mltest.supervisor import run_suite
from mltest.warning_notices import MAX_NOTICES, caught
from tests.suites import write_suite

MODEL = """
import pytorch_lightning as pl
import torch
from torch import nn
from torch.nn import functional as F


class Regressor(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.mse_loss(self(x), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=0.01)
"""

DATA = """
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset


class Data(pl.LightningDataModule):
    def setup(self, stage=None):
        x = torch.randn(32, 4, generator=torch.Generator().manual_seed(0))
        self.rows = TensorDataset(x, x.sum(dim=1))  # targets of shape [B]; outputs are [B, 1]

    def train_dataloader(self):
        return DataLoader(self.rows, batch_size=16)
"""

WARNING = (
    "UserWarning at model.py:18 in training_step: Using a target size (torch.Size([16])) that "
    "is different to the input size (torch.Size([16, 1])). This will likely lead to incorrect "
    "results due to broadcasting."
)
CHECKS = {"memorization": {"max_epochs": 5}, "sanity": {}}


def test_torch_s_broadcasting_warning_reaches_the_report_and_the_comment(tmp_path):
    config = write_suite(tmp_path / "p", model_src=MODEL, data_src=DATA, model="model:Regressor",
                         checks=CHECKS)  # fmt: skip
    run_suite(config, tmp_path / "report", update_baselines=True)
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    for check in report["checks"]:
        if check["name"] in CHECKS:
            found = [n for n in check["notices"] if n.startswith(WARNING)]
            assert len(found) == 1, check["notices"]  # once per check, however often raised
        assert not any("many workers" in n or "logging interval" in n for n in check["notices"])
    comment = (tmp_path / "report" / "report.md").read_text()
    assert "Using a target size (torch.Size([16]))" in comment


def test_the_fixed_model_has_no_such_notice(tmp_path):
    fixed = MODEL.replace("F.mse_loss(self(x), y)", "F.mse_loss(self(x).squeeze(1), y)")
    config = write_suite(tmp_path / "p", model_src=fixed, data_src=DATA, model="model:Regressor",
                         checks={"sanity": {}})  # fmt: skip
    report = run_suite(config, tmp_path / "report", update_baselines=True)
    sanity = next(c for c in report.checks if c.name == "sanity")
    assert sanity.status is Status.PASS
    assert not [n for n in sanity.notices if "Warning" in n], sanity.notices


def test_caught_warnings_are_deduplicated_capped_and_filtered():
    with caught() as record:
        for _ in range(3):
            warnings.warn("the same thing", UserWarning, stacklevel=1)
        for index in range(MAX_NOTICES + 2):
            warnings.warn(f"distinct {index}", RuntimeWarning, stacklevel=1)
        warnings.warn("The 'train_dataloader' does not have many workers", UserWarning,
                      stacklevel=1)  # fmt: skip
    notices = record.notices()
    assert len(notices) == MAX_NOTICES + 1
    assert notices[0].startswith("UserWarning at test_warning_notices.py:")
    assert notices[0].endswith(": the same thing")
    assert notices[-1] == "... and 3 more distinct warning(s) not shown"
    assert not any("many workers" in n for n in notices)
