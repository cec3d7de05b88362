"""Generated street-scene-like images: a background with squares (class 1) and discs
(class 2) in their own colours, plus noise; masks of the same size. No downloads."""

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

SIZE = 32
CLASSES = ("background", "square", "disc")
COLOURS = torch.tensor([[0.2, 0.3, 0.2], [0.9, 0.2, 0.1], [0.1, 0.4, 0.9]])
MEAN = torch.tensor([0.3, 0.3, 0.3]).view(3, 1, 1)
STD = torch.tensor([0.3, 0.2, 0.3]).view(3, 1, 1)


def draw(gen: torch.Generator, shapes: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """One image ([3, SIZE, SIZE], normalised) and its mask ([SIZE, SIZE] class indices)."""
    mask = torch.zeros(SIZE, SIZE, dtype=torch.long)
    ys, xs = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
    for _ in range(shapes):
        kind = int(torch.randint(1, len(CLASSES), (1,), generator=gen))
        r = int(torch.randint(3, 7, (1,), generator=gen))
        cy, cx = (int(v) for v in torch.randint(r, SIZE - r, (2,), generator=gen))
        if kind == 1:
            inside = ((ys - cy).abs() <= r) & ((xs - cx).abs() <= r)
        else:
            inside = (ys - cy) ** 2 + (xs - cx) ** 2 <= r * r
        mask[inside] = kind
    image = COLOURS[mask].permute(2, 0, 1) + 0.05 * torch.randn(3, SIZE, SIZE, generator=gen)
    return normalize(image), mask


def normalize(image: torch.Tensor) -> torch.Tensor:
    return (image - MEAN) / STD


def make(count: int, seed: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    pairs = [draw(gen) for _ in range(count)]
    return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])


class ShapesSegmentation(pl.LightningDataModule):
    def __init__(self, count: int = 96, batch_size: int = 8):
        super().__init__()
        self.count = count
        self.batch_size = batch_size

    def setup(self, stage=None):
        images, masks = make(self.count)
        split = int(self.count * 0.75)
        self.train = TensorDataset(images[:split], masks[:split])
        self.val = TensorDataset(images[split:], masks[split:])

    def train_dataloader(self):
        return DataLoader(self.train, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val, batch_size=self.batch_size)
