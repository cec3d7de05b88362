"""Models, data and broken variants the benchmarks train; nothing here is downloaded.

`TinyNet` costs about a millisecond per epoch on a CPU core, `MediumNet` tens of milliseconds.
The broken variants put their bug in `forward`, `loss` or `configure_optimizers`, the parts a
plain-PyTorch tool such as torchtest can see too, so both tools are judged on the same bug.
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

FEATURES, CLASSES, IMAGE = 16, 4, 24


def make_table(rows: int, seed: int = 1234) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian blobs, one per class; a private generator keeps them fixed."""
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(CLASSES, FEATURES, generator=gen) * 2.0
    labels = torch.randint(0, CLASSES, (rows,), generator=gen)
    return centres[labels] + torch.randn(rows, FEATURES, generator=gen), labels


def make_images(rows: int, seed: int = 1234) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy images whose class sets the brightness of one quadrant."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, CLASSES, (rows,), generator=gen)
    images = torch.randn(rows, 3, IMAGE, IMAGE, generator=gen) * 0.5
    half = IMAGE // 2
    for cls in range(CLASSES):
        rows_of = labels == cls
        r, c = divmod(cls, 2)
        images[rows_of, :, r * half : (r + 1) * half, c * half : (c + 1) * half] += 1.0
    return images, labels


class BenchData(pl.LightningDataModule):
    """Generated data: `kind` is `table` (for TinyNet) or `images` (for MediumNet)."""

    def __init__(self, kind: str = "table", rows: int = 1024, batch_size: int = 64):
        super().__init__()
        self.kind, self.rows, self.batch_size = kind, rows, batch_size

    def setup(self, stage=None):
        make = make_table if self.kind == "table" else make_images
        self.train = TensorDataset(*make(self.rows))

    def train_dataloader(self):
        return DataLoader(self.train, batch_size=self.batch_size, shuffle=True)

    def predict_dataloader(self):
        return DataLoader(self.train, batch_size=self.batch_size)


class _Classifier(pl.LightningModule):
    """Shared steps: cross-entropy through `self.loss`, Adam over `optimized_parameters`."""

    def __init__(self, lr: float = 0.01):
        super().__init__()
        self.lr = lr

    def loss(self, logits, y):
        return nn.functional.cross_entropy(logits, y)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return self.loss(self(x), y)

    def predict_step(self, batch, batch_idx, dataloader_idx=0):
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        return self(x)

    def optimized_parameters(self):
        return self.parameters()

    def configure_optimizers(self):
        return torch.optim.Adam(self.optimized_parameters(), lr=self.lr)


class TinyNet(_Classifier):
    """A two-layer MLP: about a millisecond per epoch of one batch on a CPU core."""

    def __init__(self, hidden: int = 32, lr: float = 0.01):
        super().__init__(lr)
        self.net = nn.Sequential(
            nn.Linear(FEATURES, hidden), nn.ReLU(), nn.Linear(hidden, CLASSES)
        )

    def forward(self, x):
        return self.net(x)


class MediumNet(_Classifier):
    """A small CNN with BatchNorm: tens of milliseconds per epoch on a CPU."""

    def __init__(self, width: int = 32, lr: float = 0.003):
        super().__init__(lr)
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
            nn.AdaptiveAvgPool2d(4),
        )
        self.head = nn.Linear(2 * width * 16, CLASSES)

    def forward(self, x):
        return self.head(self.features(x).flatten(1))


class SmallCNN(_Classifier):
    """The small CPU CNN of the speed section: two convolutions with batch norm, like
    `examples/image_classifier` (a few milliseconds per epoch of 32 images on a core)."""

    def __init__(self, channels: int = 8, lr: float = 0.01):
        super().__init__(lr)
        self.features = nn.Sequential(
            nn.Conv2d(3, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(channels, 2 * channels, 3, padding=1), nn.BatchNorm2d(2 * channels),
            nn.ReLU(), nn.AdaptiveAvgPool2d(2),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(8 * channels, CLASSES))

    def forward(self, x):
        return self.head(self.features(x))


class _Bottleneck(nn.Module):
    """ResNet's bottleneck block (1x1, 3x3, 1x1 with batch norm and a projected shortcut)."""

    def __init__(self, inp: int, width: int, stride: int):
        super().__init__()
        out = width * 4
        self.body = nn.Sequential(
            nn.Conv2d(inp, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, out, 1, bias=False), nn.BatchNorm2d(out),
        )
        self.short = nn.Identity()
        if stride != 1 or inp != out:
            self.short = nn.Sequential(
                nn.Conv2d(inp, out, 1, stride, bias=False), nn.BatchNorm2d(out)
            )

    def forward(self, x):
        return torch.relu(self.body(x) + self.short(x))


def builtin_resnet(depth: int, classes: int) -> nn.Module:
    """A ResNet-style fallback when torchvision is missing: ResNet-50's bottleneck layout
    (3-4-6-3 blocks) for depth 50, a shallower 2-2-2-2 bottleneck stack for depth 18."""
    blocks = (3, 4, 6, 3) if depth >= 50 else (2, 2, 2, 2)
    layers: list[nn.Module] = [
        nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2, 1),
    ]
    inp = 64
    for stage, count in enumerate(blocks):
        width = 64 * 2**stage
        for index in range(count):
            layers.append(_Bottleneck(inp, width, 2 if index == 0 and stage > 0 else 1))
            inp = width * 4
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(inp, classes)]
    return nn.Sequential(*layers)


def torchvision_available() -> bool:
    try:
        import torchvision  # noqa: F401
    except ImportError:
        return False
    return True


class ResNet(_Classifier):
    """torchvision's ResNet-18/50 when torchvision is installed, else `builtin_resnet`."""

    def __init__(self, depth: int = 50, lr: float = 0.001):
        super().__init__(lr)
        if torchvision_available():
            import torchvision

            self.net = getattr(torchvision.models, f"resnet{depth}")(num_classes=CLASSES)
        else:
            self.net = builtin_resnet(depth, CLASSES)

    def forward(self, x):
        return self.net(x)


class ImageData(pl.LightningDataModule):
    """`make_images` at a chosen size and batch: 3 x `size` x `size`."""

    def __init__(self, size: int = 64, rows: int = 128, batch_size: int = 64):
        super().__init__()
        self.size, self.rows, self.batch_size = size, rows, batch_size

    def setup(self, stage=None):
        x, y = make_images(self.rows)
        if self.size != IMAGE:
            x = nn.functional.interpolate(x, size=(self.size, self.size), mode="nearest")
        self.train = TensorDataset(x, y)

    def train_dataloader(self):
        return DataLoader(self.train, batch_size=self.batch_size, shuffle=True)

    def predict_dataloader(self):
        return DataLoader(self.train, batch_size=self.batch_size)


# --- broken variants (section 6: sanity vs torchtest) ----------------------------------------


class SanityNet(_Classifier):
    """The healthy model of section 6: MLP with BatchNorm, backbone + head."""

    def __init__(self, hidden: int = 32, lr: float = 0.01):
        super().__init__(lr)
        self.fc1 = nn.Linear(FEATURES, hidden)
        self.bn = nn.BatchNorm1d(hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.head = nn.Linear(hidden, CLASSES)

    def backbone(self, x):
        h = torch.relu(self.bn(self.fc1(x)))
        return torch.relu(self.fc2(h))

    def forward(self, x):
        return self.head(self.backbone(x))


class DiscardedLayer(SanityNet):
    """fc2's output is computed, then the code carries on with its input."""

    def backbone(self, x):
        h = torch.relu(self.bn(self.fc1(x)))
        _ = torch.relu(self.fc2(h))  # the bug: result thrown away
        return h


class DetachedActivation(SanityNet):
    """An activation is detached, so nothing before it learns."""

    def backbone(self, x):
        h = torch.relu(self.bn(self.fc1(x))).detach()  # the bug
        return torch.relu(self.fc2(h))


class BatchNormStuckInEval(SanityNet):
    """BatchNorm is forced into eval mode, so its running statistics never update."""

    def forward(self, x):
        self.bn.eval()  # the bug: e.g. a leftover from a freezing helper
        return super().forward(x)


class FrozenBackbone(SanityNet):
    """The optimizer only gets the head: the backbone never trains."""

    def optimized_parameters(self):
        return self.head.parameters()  # the bug


class ZeroLoss(SanityNet):
    """The loss is always 0 (e.g. multiplied by a mask that is all zeros)."""

    def loss(self, logits, y):
        return nn.functional.cross_entropy(logits, y) * 0.0  # the bug


BROKEN = {
    "discarded layer": DiscardedLayer,
    "detached activation": DetachedActivation,
    "BatchNorm stuck in eval": BatchNormStuckInEval,
    "frozen backbone (optimizer)": FrozenBackbone,
    "loss always 0": ZeroLoss,
}
