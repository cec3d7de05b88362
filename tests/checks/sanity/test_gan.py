"""A two-optimizer GAN with manual optimization: sanity passes it, and catches the classic bug
of the ML-testing literature, the generator's optimizer also updating the discriminator."""

from __future__ import annotations

import pytest

from mltest.report import Status
from mltest.supervisor import run_suite
from tests.suites import write_suite

MODEL = """
import pytorch_lightning as pl
import torch
from torch import nn

LATENT = 4


class GAN(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.automatic_optimization = False
        self.generator = nn.Sequential(nn.Linear(LATENT, 16), nn.ReLU(), nn.Linear(16, 2))
        self.discriminator = nn.Sequential(nn.Linear(2, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))

    def training_step(self, batch, batch_idx):
        (real,) = batch
        opt_g, opt_d = self.optimizers()
        bce = nn.functional.binary_cross_entropy_with_logits
        fake = self.generator(torch.randn(len(real), LATENT))
        ones, zeros = torch.ones(len(real), 1), torch.zeros(len(real), 1)
        d_loss = bce(self.discriminator(real), ones) + bce(self.discriminator(fake.detach()), zeros)
        opt_d.zero_grad()
        self.manual_backward(d_loss)
        opt_d.step()
        g_loss = bce(self.discriminator(fake), ones)
        opt_g.zero_grad()
        self.manual_backward(g_loss)
        opt_g.step()
        return g_loss

    def configure_optimizers(self):
        return (torch.optim.Adam(GENERATOR_PARAMS, lr=1e-2),
                torch.optim.Adam(self.discriminator.parameters(), lr=1e-2))
"""

DATA = """
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset


class Data(pl.LightningDataModule):
    def train_dataloader(self):
        g = torch.Generator().manual_seed(0)
        real = torch.randn(64, 2, generator=g) * 0.3 + torch.tensor([2.0, -1.0])
        return DataLoader(TensorDataset(real), batch_size=32)
"""


@pytest.mark.parametrize(
    "params, status",
    [("self.generator.parameters()", Status.PASS), ("self.parameters()", Status.FAIL)],
    ids=["own-parameters", "generator-optimizer-over-everything"],
)
def test_generator_optimizer_that_also_updates_the_discriminator(tmp_path, params, status):
    config = write_suite(
        tmp_path,
        model_src=MODEL.replace("GENERATOR_PARAMS", params),
        data_src=DATA,
        model="model:GAN",
        checks={"sanity": {"gradient_check": False, "init_loss": False}},
    )
    report = run_suite(config, tmp_path / "report", update_baselines=True, only=["sanity"])
    sanity = {c.name: c for c in report.checks}["sanity"]
    assert not report.errors, report.errors
    assert sanity.status is status, sanity.summary
    if status is Status.FAIL:
        assert "in more than one optimizer (optimizer 0 and optimizer 1)" in sanity.summary
        assert "discriminator.0.weight" in sanity.summary
