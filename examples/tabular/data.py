"""Generated tabular data: three classes of 8 numeric features, made by code (no downloads)."""

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

FEATURES = 8
CLASSES = 3
# Feature scaling constants, as a real project would compute once and commit.
MEAN = 0.0
STD = 2.0


def make_table(rows: int, seed: int = 1234) -> tuple[torch.Tensor, torch.Tensor]:
    """Class-dependent Gaussian blobs; a private generator keeps the data fixed."""
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(CLASSES, FEATURES, generator=gen) * 2.0
    labels = torch.randint(0, CLASSES, (rows,), generator=gen)
    features = centres[labels] + torch.randn(rows, FEATURES, generator=gen) * 1.5
    return features, labels


class TabularDataModule(pl.LightningDataModule):
    def __init__(self, rows: int = 512, batch_size: int = 64):
        super().__init__()
        self.rows = rows
        self.batch_size = batch_size

    def setup(self, stage=None):
        features, labels = make_table(self.rows)
        features = (features - MEAN) / STD
        split = int(self.rows * 0.8)
        self.train = TensorDataset(features[:split], labels[:split])
        self.val = TensorDataset(features[split:], labels[split:])

    def train_dataloader(self):
        return DataLoader(self.train, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val, batch_size=self.batch_size)

    def predict_dataloader(self):
        return DataLoader(self.val, batch_size=self.batch_size)
