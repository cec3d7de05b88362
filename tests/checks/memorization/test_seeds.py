"""Seeds that do not reach the target: a baseline records them as not reached, and a run fails
only when more seeds miss than that, or the median slows down; a failure shows each seed's best
value and, before any baseline exists, a target and budget that would hold.

The unstable model is real: one ReLU unit between two linear layers, fitting y = x1 + x2 on
positive inputs. A seed whose first layer starts with the unit off for every input (both
weights and the bias negative: seed 3 of 2, 3, 5) never gets a gradient, so it never learns,
as a collapsed seed of a real model would not.
"""

from __future__ import annotations

import json
import math

import pytest

from mltest.checks.memorization import Settings
from mltest.checks.memorization.decide import decide, robust_median
from mltest.checks.memorization.seed_run import SeedRun
from mltest.report import Status
from mltest.supervisor import run_suite
from tests.suites import write_suite

MODEL = """
    import pytorch_lightning as pl
    import torch
    from torch import nn


    class OneUnit(pl.LightningModule):
        def __init__(self, bias: float = 0.0):
            super().__init__()
            self.first, self.last = nn.Linear(2, 1), nn.Linear(1, 1)
            if bias:
                nn.init.constant_(self.first.bias, bias)

        def training_step(self, batch, batch_idx):
            x, y = batch
            return nn.functional.mse_loss(self.last(torch.relu(self.first(x))), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.3)
"""
DATA = """
    import pytorch_lightning as pl
    import torch
    from torch.utils.data import DataLoader, TensorDataset


    class Points(pl.LightningDataModule):
        def setup(self, stage=None):
            x = torch.rand(8, 2, generator=torch.Generator().manual_seed(0))
            self.points = TensorDataset(x, x.sum(1, keepdim=True))

        def train_dataloader(self):
            return DataLoader(self.points, batch_size=8)
"""


def _suite(tmp_path, bias: float = 0.0):
    return write_suite(
        tmp_path,
        model_src=MODEL.replace("bias: float = 0.0", f"bias: float = {bias}"),
        data_src=DATA,
        model="model:OneUnit",
        data="data:Points",
        seeds=[2, 3, 5],
        checks={"memorization": {"max_epochs": 150, "target": {"loss_below": 0.01}}},
    )


def _memorization(config, tmp_path, update=False):
    report = run_suite(config, tmp_path / "report", update_baselines=update)
    return next(c for c in report.checks if c.name == "memorization")


def test_a_stuck_seed_is_recorded_as_not_reached_and_later_runs_pass(tmp_path):
    config = _suite(tmp_path)
    recorded = _memorization(config, tmp_path, update=True)
    assert recorded.status is Status.PASS, recorded.summary
    assert "seed 3 did not reach the target within 150 epochs (seed 3: best loss" in (
        recorded.notices[0]
    )
    entry = json.loads((tmp_path / ".mltest" / "baselines.json").read_text())
    epochs = next(iter(entry["checks"]["memorization"].values()))["epochs"]
    assert epochs["3"] is None and epochs["2"] and epochs["5"]

    rerun = _memorization(config, tmp_path)
    assert rerun.status is Status.PASS, rerun.summary
    assert "seed 3 not reached" in rerun.summary
    assert "| 3 | not reached |" in rerun.details

    # Every unit off from the start: more seeds miss than the baseline allows.
    dead = _suite(tmp_path, bias=-5.0)
    broken = _memorization(dead, tmp_path)
    assert broken.status is Status.FAIL
    assert "on 3 of 3 seeds (the baseline allows 1): seed 2: best loss" in broken.summary
    assert "It memorized when the baseline was recorded" in broken.hint
    assert "target:" not in broken.hint  # a regression is not fixed by a looser target


def runs(*counts, curves=None):
    curves = curves or {}
    return [
        SeedRun(seed=i, epochs=c, initial_loss=1.0, final_loss=0.01 if c else 0.3,
                losses=curves.get(i, []))
        for i, c in enumerate(counts)
    ]  # fmt: skip


@pytest.mark.parametrize(
    "counts, median",
    [((5, 7, 9), 7), ((5, None, 9), 9), ((5, None, None), None), ((4, None), None), ((), None)],
)
def test_a_seed_that_missed_counts_as_slower_than_any_other(counts, median):
    assert robust_median(list(counts)) == median


@pytest.mark.parametrize(
    "recorded, counts, status",
    [
        ({"0": 6, "1": 6, "2": 6}, (6, 6, None), Status.FAIL),  # an old baseline: no misses
        ({"0": 6, "1": None, "2": 6}, (6, None, 6), Status.PASS),
        ({"0": 6, "1": None, "2": 6}, (6, 6, None), Status.PASS),  # another seed: a notice
        ({"0": 6, "1": None, "2": 6}, (None, None, 6), Status.FAIL),
        ({"0": 6, "1": None, "2": 6}, (6, None, 12), Status.FAIL),  # the median slowed down
    ],
)
def test_more_misses_than_the_baseline_or_a_slower_median_fail(recorded, counts, status):
    got, summary, _, notices, _ = decide(
        runs(*counts), {"median": 6, "epochs": recorded}, Settings(), "cpu", [], "CMD"
    )
    assert got is status, summary
    if counts == (6, 6, None) and None in recorded.values():
        assert "seed(s) 2 did not reach the target, where the baseline had seed(s) 1" in (
            notices[0]
        )


def test_before_any_baseline_a_failure_suggests_a_target_every_seed_reaches():
    # The loss plateaus just above the target (the autoencoder's knife edge): 0.0555 > 0.05.
    def curve(scale):
        return [0.18 * scale * math.exp(-e / 15) + 0.0555 for e in range(1, 301)]

    stuck = runs(None, None, None, curves={i: curve(1 + i / 10) for i in range(3)})
    status, summary, hint, _, _ = decide(
        stuck, None, Settings(max_epochs=300), "cpu", [], "CMD"
    )
    assert status is Status.FAIL
    assert "on 3 of 3 seeds: seed 0: best loss 0.0555 at epoch 300" in summary
    assert "`target: {loss_below: 0.12}` holds with margin within 300 epochs" in hint
    assert "still improved at the last epoch: `max_epochs: 600`" in hint
    assert "mltest init" in hint
