"""Generated MNIST-style digits: 28x28 grey images of pen strokes (a bar, a ring, a cross...)
in [0, 1], one stroke pattern per label, at random positions and thicknesses. No downloads."""

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

SIZE = 28


def draw(label: int, gen: torch.Generator) -> torch.Tensor:
    """One [1, 28, 28] image of stroke pattern `label` (0..9)."""
    ys, xs = torch.meshgrid(torch.arange(SIZE).float(), torch.arange(SIZE).float(), indexing="ij")
    cy, cx = (14.0 + float(v) for v in torch.randint(-3, 4, (2,), generator=gen))
    r = 6.0 + float(torch.rand(1, generator=gen)) * 3
    width = 1.0 + float(torch.rand(1, generator=gen))
    dist = ((ys - cy) ** 2 + (xs - cx) ** 2).sqrt()
    strokes = [
        (dist - r).abs(),  # 0: a ring
        (xs - cx).abs() + torch.relu((ys - cy).abs() - r),  # 1: a vertical bar
        (ys - cy).abs() + torch.relu((xs - cx).abs() - r),  # 2: a horizontal bar
        torch.minimum((xs - cx).abs(), (ys - cy).abs()) + torch.relu(dist - r),  # 3: a cross
        ((ys - cy) - (xs - cx)).abs() / 1.41 + torch.relu(dist - r),  # 4: a diagonal
        ((ys - cy) + (xs - cx)).abs() / 1.41 + torch.relu(dist - r),  # 5: the other one
        (dist - r / 2).abs(),  # 6: a small ring
        torch.minimum((dist - r).abs(), (xs - cx).abs() + torch.relu(dist - r)),  # 7: ring + bar
        torch.minimum((ys - cy + r / 2).abs(), (ys - cy - r / 2).abs())
        + torch.relu((xs - cx).abs() - r),  # 8: two bars
        torch.minimum((dist - r).abs(), (ys - cy).abs() + torch.relu(dist - r)),  # 9: ring + bar
    ]
    image = torch.clamp(1.0 - torch.relu(strokes[label] - width), 0.0, 1.0)
    return image.unsqueeze(0)


def make(count: int, seed: int = 11) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (count,), generator=gen)
    return torch.stack([draw(int(label), gen) for label in labels]), labels


class SyntheticMNIST(pl.LightningDataModule):
    def __init__(self, count: int = 256, batch_size: int = 32):
        super().__init__()
        self.count = count
        self.batch_size = batch_size

    def setup(self, stage=None):
        images, labels = make(self.count)
        split = int(self.count * 0.75)
        self.train = TensorDataset(images[:split], labels[:split])
        self.val = TensorDataset(images[split:], labels[split:])

    def train_dataloader(self):
        return DataLoader(self.train, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val, batch_size=self.batch_size)

    def predict_dataloader(self):
        return DataLoader(self.val, batch_size=self.batch_size)
