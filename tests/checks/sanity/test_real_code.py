"""The sanity probes on code written the way third-party models are: a step that transforms the
batch before forward, GELU/SiLU activations (including a library's own activation class), and
a weight-tied language model padded to its full context. Each runs clean on the idiomatic
model and still catches its bug.
"""

from __future__ import annotations

import pytest

from mltest.report import Status
from mltest.supervisor import run_suite
from tests.checks.sanity.test_probes import edited, failed, run_check
from tests.suites import write_suite

# --- a step that builds forward's input from a dict batch; GELU, SiLU and a library's GELU ---

MLP = """
import pytorch_lightning as pl
import torch
from torch import nn
from torch.nn import functional as F


class GELUActivation(nn.Module):  # as transformers writes it: not an nn.GELU
    def forward(self, x):
        return F.gelu(x)


class Net(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 32), nn.SiLU(),
            nn.Linear(32, 32), GELUActivation(),
        )
        self.head = nn.Linear(32, 3)

    def forward(self, x):
        h = self.body(x)
        return self.head(h)

    def training_step(self, batch, batch_idx):
        x = batch["image"].flatten(1).float() * 2 - 1  # forward takes a transformed batch
        return F.cross_entropy(self(x), batch["label"])

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=0.01)
"""

IMAGES = """
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader


class Images(pl.LightningDataModule):
    def setup(self, stage=None):
        gen = torch.Generator().manual_seed(0)
        image = torch.rand(48, 1, 4, 4, generator=gen)
        label = (image.mean(dim=(1, 2, 3)) * 6).long().clamp(max=2)
        self.rows = [{"image": i, "label": y} for i, y in zip(image, label)]

    def train_dataloader(self):
        return DataLoader(self.rows, batch_size=16)
"""


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    config = write_suite(
        tmp_path_factory.mktemp("mlp"), model_src=MLP, data_src=IMAGES, model="model:Net",
        data="data:Images", checks={"sanity": {"batch_independence": True}},
    )  # fmt: skip
    recorded = run_check(config, update=True)
    assert recorded.status is Status.PASS, recorded.summary
    return config


def test_the_idiomatic_mlp_passes_with_its_activations_recorded(mlp):
    result = run_check(mlp)
    assert result.status is Status.PASS, result.summary
    assert not result.notices, result.notices  # no stale baseline, no skipped gradient check
    assert {u: s["kind"] for u, s in result.metrics["units"].items()} == {
        "body.1": "dead", "body.3": "dead", "body.5": "dead",
    }  # fmt: skip
    assert result.metrics["gradient_check_errors"]  # .float() in the step: still checked


def test_samples_mixed_after_a_transformed_batch_are_caught(mlp, tmp_path):
    mixing = [("h = self.body(x)", "h = self.body(x)\n        h = h - h.mean(dim=0)")]
    result = run_check(edited(mlp, tmp_path, mixing))
    assert "batch independence" in failed(result)
    assert "output 0 depends on other samples" in result.summary


def test_dead_gelu_units_are_caught(mlp, tmp_path):
    dead = [
        (
            "        self.head = nn.Linear(32, 3)\n",
            "        self.head = nn.Linear(32, 3)\n"
            "        with torch.no_grad():\n"
            "            self.body[0].bias.fill_(-30.0)\n",
        )
    ]
    result = run_check(edited(mlp, tmp_path, dead))
    assert "dead and saturated units" in failed(result)
    finding = next(c for c in result.cases if c.name == "dead and saturated units")
    assert "`body.1` (GELU): 100% of 32 units dead" in finding.message


# --- a weight-tied language model padded to its whole context ---------------------------------

LM = """
import pytorch_lightning as pl
import torch
from torch import nn
from torch.nn import functional as F

VOCAB, LENGTH, DIM = 40, 12, 16


class TinyLM(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.tokens = nn.Embedding(VOCAB, DIM, padding_idx=0)
        self.positions = nn.Embedding(LENGTH, DIM)  # no room past the context
        self.block = nn.TransformerEncoderLayer(
            DIM, 2, 32, dropout=0.0, batch_first=True, activation="gelu"
        )
        self.norm = nn.LayerNorm(DIM)
        self.head = nn.Linear(DIM, VOCAB, bias=False)
        self.head.weight = self.tokens.weight  # tied: the output layer trains the pad row
        with torch.no_grad():
            self.tokens.weight.normal_(0.0, 0.1)
            self.tokens.weight[0] = 0

    def forward(self, ids, mask):
        length = ids.shape[1]
        h = self.tokens(ids) + self.positions(torch.arange(length, device=ids.device))
        causal = torch.ones(length, length, dtype=torch.bool, device=ids.device).triu(1)
        h = self.block(h, src_mask=causal, src_key_padding_mask=~mask, is_causal=True)
        return self.head(self.norm(h))

    def training_step(self, batch, batch_idx):
        ids, mask = batch
        logits = self(ids, mask)
        targets = ids[:, 1:].reshape(-1)
        return F.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), targets, ignore_index=0)

    def predict_step(self, batch, batch_idx, dataloader_idx=0):
        return self(batch[0], batch[1])

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=0.01)
"""

TEXT = """
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

VOCAB, LENGTH = 40, 12


class Text(pl.LightningDataModule):
    def setup(self, stage=None):
        gen = torch.Generator().manual_seed(0)
        ids = torch.randint(1, VOCAB, (48, LENGTH), generator=gen)
        lengths = torch.randint(4, LENGTH + 1, (48,), generator=gen)
        lengths[:4] = LENGTH  # full-length sequences: the batch fills the context
        mask = torch.arange(LENGTH)[None, :] < lengths[:, None]
        self.rows = TensorDataset(ids * mask, mask)

    def train_dataloader(self):
        return DataLoader(self.rows, batch_size=16)
"""

PADDING = {"input_key": 0, "pad_value": 0, "mask_key": 1}


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    config = write_suite(
        tmp_path_factory.mktemp("lm"), model_src=LM, data_src=TEXT, model="model:TinyLM",
        data="data:Text", checks={"sanity": {"padding": PADDING, "batch_independence": True}},
    )  # fmt: skip
    recorded = run_check(config, update=True)
    assert recorded.status is Status.PASS, recorded.summary
    return config


def test_a_clean_tied_language_model_at_full_length_passes(lm):
    result = run_check(lm)
    assert result.status is Status.PASS, result.summary
    assert result.metrics["padding_moved"] < 1e-5
    assert "padding_idx 0, pad row gradient from padding 0" in result.details
    assert "(tied with `head`)" in result.details  # the row moves, through the output layer
    assert "cut by its last 5 positions" in result.details


LM_BUGS = {
    "no padding_idx, padding in the loss": (
        [
            ("nn.Embedding(VOCAB, DIM, padding_idx=0)", "nn.Embedding(VOCAB, DIM)"),
            ("targets, ignore_index=0)", "targets)"),
        ],
        "padding embedding row",
        "the padding embedding row trains: `tokens.weight[0]` (the pad value's row) gets "
        "gradient from the padding positions",
        "; it has no padding_idx",
    ),
    "padding_idx on another token, padding in the loss": (
        [
            ("nn.Embedding(VOCAB, DIM, padding_idx=0)", "nn.Embedding(VOCAB, DIM, padding_idx=1)"),
            ("targets, ignore_index=0)", "targets)"),
        ],
        "padding embedding row",
        "gets gradient from the padding positions",
        "its padding_idx is 1, not the pad value 0",
    ),
    "attention over the padding (no masks)": (
        [("src_mask=causal, src_key_padding_mask=~mask, is_causal=True", "")],
        "padding invariance",
        "adding 5 padding positions (value 0) moves the outputs",
        "padding is not masked out",
    ),
}


@pytest.mark.parametrize("bug", list(LM_BUGS))
def test_each_padding_bug_of_the_language_model_is_named(lm, tmp_path, bug):
    edits, aspect, *words = LM_BUGS[bug]
    result = run_check(edited(lm, tmp_path, edits))
    assert aspect in failed(result), result.summary
    message = next(c.message for c in result.cases if c.name == aspect)
    for text in words:
        assert text in message
    assert "padding_idx is 0, not the pad value 0" not in message


@pytest.mark.gpu
def test_the_tied_language_model_at_full_length_passes_on_cuda(tmp_path):
    """On CUDA an index past the positions' table is a device-side assert that ends the
    process's CUDA context: the padding probe must never go past the batch's length."""
    config = write_suite(
        tmp_path / "lm", model_src=LM, data_src=TEXT, model="model:TinyLM", data="data:Text",
        checks={"sanity": {"padding": PADDING, "batch_independence": True}},
        trainer={"accelerator": "gpu", "devices": 1},
    )  # fmt: skip
    for update in (True, False):
        report = run_suite(config, tmp_path / f"report-{update}", update_baselines=update)
        sanity = next(c for c in report.checks if c.name == "sanity")
        assert sanity.status is Status.PASS, sanity.summary
        assert sanity.metrics["environment"].startswith("cuda-")
    assert "cut by its last 5 positions" in sanity.details
