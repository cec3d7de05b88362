"""A small real GRU sequence classifier (and its data) for the sanity probes' tests.

Embedding with a padding index, 1-D conv with a tanh, GRU, masked attention pooling,
LayerNorm, a dropout head with a ReLU, Adam with two parameter groups, gradient clipping and a
scheduler: the model the forum bugs of issue 13 were measured on, at a size that trains in
well under a second on a CPU. Tests edit the source text as a pull request would.
"""

from __future__ import annotations

SEQ_MODEL = """
import pytorch_lightning as pl
import torch
from torch import nn
from torch.nn import functional as F


class SeqModel(pl.LightningModule):
    def __init__(self, vocab=30, dim=16, classes=4):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim, padding_idx=0)
        self.conv = nn.Conv1d(dim, dim, kernel_size=3, padding=1)
        self.act = nn.Tanh()
        self.gru = nn.GRU(dim, dim, batch_first=True)
        # No bias: the softmax over positions cancels it, so its gradient is zero up to
        # rounding, and whether rounding leaves it exactly zero depends on the CPU.
        self.score = nn.Linear(dim, 1, bias=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Sequential(
            nn.Linear(dim, dim), nn.ReLU(), nn.Dropout(0.2), nn.Linear(dim, classes)
        )

    def forward(self, ids, mask=None):
        if mask is None:
            mask = ids != 0
        h = self.embed(ids)
        h = self.conv(h.transpose(1, 2))
        h = self.act(h).transpose(1, 2)
        h, _ = self.gru(h)
        scores = self.score(h).squeeze(-1)
        scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=1)
        pooled = (weights.unsqueeze(-1) * h).sum(dim=1)
        return self.head(self.norm(pooled))

    def training_step(self, batch, batch_idx):
        ids, mask, y = batch
        logits = self(ids, mask)
        loss = F.cross_entropy(logits, y)
        self.log("train_loss", loss)
        return loss

    def predict_step(self, batch, batch_idx, dataloader_idx=0):
        return self(batch[0], batch[1])

    def configure_optimizers(self):
        head = list(self.head.parameters())
        rest = [p for n, p in self.named_parameters() if not n.startswith("head.")]
        opt = torch.optim.Adam([{"params": rest}, {"params": head, "lr": 0.02}], lr=0.01)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}
"""

SEQ_DATA = """
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset


class SeqData(pl.LightningDataModule):
    def __init__(self, skew=0.0):
        super().__init__()
        self.skew = skew

    def setup(self, stage=None):
        gen = torch.Generator().manual_seed(0)
        n, length = 64, 12
        ids = torch.randint(1, 30, (n, length), generator=gen)
        lengths = torch.randint(4, length + 1, (n,), generator=gen)
        mask = torch.arange(length)[None, :] < lengths[:, None]
        ids = ids * mask
        y = (ids % 4 == 0).sum(dim=1) % 4  # depends on the tokens, not on the padding
        if self.skew:
            y = torch.where(torch.rand(n, generator=gen) < self.skew, torch.zeros_like(y), y)
        self.train = TensorDataset(ids, mask, y)

    def train_dataloader(self):
        return DataLoader(self.train, batch_size=16, shuffle=True)
"""

PADDING = {"input_key": 0, "pad_value": 0, "mask_key": 1}

# A tiny nanoGPT-like causal language model: token and position embeddings, one pre-norm block
# (causal self-attention with a mask buffer, an MLP), a head over the vocabulary; next-token
# cross-entropy on flattened positions (task: sequence).
TINY_LM = """
import math

import pytorch_lightning as pl
import torch
from torch import nn
from torch.nn import functional as F


class CausalSelfAttention(nn.Module):
    def __init__(self, dim, heads, context):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.register_buffer("mask", torch.tril(torch.ones(context, context)).bool())

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(k.shape[-1])
        att = att.masked_fill(~self.mask[:T, :T], float("-inf"))
        att = F.softmax(att, dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        return self.proj(y)


class TinyLM(pl.LightningModule):
    def __init__(self, vocab=16, dim=16, heads=2, context=12, lr=0.01):
        super().__init__()
        self.lr = lr
        self.tok = nn.Embedding(vocab, dim)
        self.pos = nn.Embedding(context, dim)
        self.ln1 = nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, heads, context)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.ln_f = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab)

    def forward(self, idx):
        T = idx.shape[1]
        x = self.tok(idx) + self.pos(torch.arange(T, device=idx.device))
        x = x + self.attn(self.ln1(x))
        x = x + self.mlp(self.ln2(x))
        return self.head(self.ln_f(x))

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.lr)
"""

LM_DATA = """
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset


class TokenData(pl.LightningDataModule):
    def setup(self, stage=None):
        gen = torch.Generator().manual_seed(0)
        seqs = torch.randint(0, 16, (32, 13), generator=gen)
        self.train = TensorDataset(seqs[:, :-1], seqs[:, 1:])  # next-token targets

    def train_dataloader(self):
        return DataLoader(self.train, batch_size=8)
"""

# A small MLP regressor trained with SGD, on standardised inputs (scale 1) with targets that do
# not depend on the input scale: the learning rate and the input scale are what tests change.
REGRESSOR = """
import pytorch_lightning as pl
import torch
from torch import nn
from torch.nn import functional as F


class Regressor(pl.LightningModule):
    def __init__(self, lr=0.05):
        super().__init__()
        self.lr = lr
        self.net = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.mse_loss(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)
"""

REGRESSOR_DATA = """
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset


class Data(pl.LightningDataModule):
    def __init__(self, scale=1.0):
        super().__init__()
        self.scale = scale

    def setup(self, stage=None):
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(64, 4, generator=gen)
        y = x @ torch.tensor([[1.0], [-2.0], [0.5], [0.0]]) + 0.1
        self.train = TensorDataset(x * self.scale, y)

    def train_dataloader(self):
        return DataLoader(self.train, batch_size=16)
"""
