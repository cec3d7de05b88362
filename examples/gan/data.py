"""Real points: a 2-D Gaussian blob away from the origin, generated with a fixed seed."""

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset


class BlobDataModule(pl.LightningDataModule):
    def __init__(self, points: int = 512, batch_size: int = 128):
        super().__init__()
        self.points = points
        self.batch_size = batch_size

    def setup(self, stage=None):
        g = torch.Generator().manual_seed(0)
        real = torch.randn(self.points, 2, generator=g) * torch.tensor([0.5, 0.3])
        self.real = real + torch.tensor([2.0, -1.0])

    def train_dataloader(self):
        return DataLoader(TensorDataset(self.real), batch_size=self.batch_size)

    def val_dataloader(self):
        return DataLoader(TensorDataset(self.real[:128]), batch_size=self.batch_size)
