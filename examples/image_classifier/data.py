"""Generated 16x16 grey images of three shapes (square, cross, ring) with noise; no downloads."""

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

SIZE = 16
CLASSES = ("square", "cross", "ring")
# Pixel normalisation constants, as a real project would have computed on its data.
MEAN = 0.2
STD = 0.4


def draw(shape: int, gen: torch.Generator) -> torch.Tensor:
    """One image with the shape at a random position and size."""
    img = torch.zeros(SIZE, SIZE)
    r = int(torch.randint(3, 6, (1,), generator=gen))
    cy, cx = (int(v) for v in torch.randint(r, SIZE - r, (2,), generator=gen))
    ys, xs = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
    dy, dx = (ys - cy).abs(), (xs - cx).abs()
    if shape == 0:
        img[(dy <= r) & (dx <= r)] = 1.0
    elif shape == 1:
        img[((dy <= r) & (dx <= 0)) | ((dx <= r) & (dy <= 0))] = 1.0
    else:
        dist = ((ys - cy) ** 2 + (xs - cx) ** 2).float().sqrt()
        img[(dist <= r) & (dist >= r - 1.2)] = 1.0
    return img + 0.1 * torch.randn(SIZE, SIZE, generator=gen)


def make_images(count: int, seed: int = 7) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, len(CLASSES), (count,), generator=gen)
    images = torch.stack([draw(int(label), gen) for label in labels]).unsqueeze(1)
    return images, labels


def normalize(images: torch.Tensor) -> torch.Tensor:
    return (images - MEAN) / STD


class ShapesDataModule(pl.LightningDataModule):
    def __init__(self, count: int = 384, batch_size: int = 32):
        super().__init__()
        self.count = count
        self.batch_size = batch_size

    def setup(self, stage=None):
        images, labels = make_images(self.count)
        images = normalize(images)
        split = int(self.count * 0.75)
        self.train = TensorDataset(images[:split], labels[:split])
        self.val = TensorDataset(images[split:], labels[split:])

    def train_dataloader(self):
        return DataLoader(self.train, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val, batch_size=self.batch_size)

    def predict_dataloader(self):
        return DataLoader(self.val, batch_size=self.batch_size)
