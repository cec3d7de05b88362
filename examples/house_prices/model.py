"""A small MLP regressor for the generated house prices (mean squared error)."""

import pytorch_lightning as pl
import torch
from torch import nn


class PriceMLP(pl.LightningModule):
    def __init__(self, features: int = 9, hidden: int = 32, lr: float = 0.01):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Linear(features, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 1),
        )

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        return nn.functional.mse_loss(self(batch["x"]), batch["y"])

    def predict_step(self, batch, batch_idx, dataloader_idx=0):
        return self(batch["x"])

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
