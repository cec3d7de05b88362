"""A UNet-style segmenter: encoder/decoder with skip concatenation and transposed-convolution
upsampling (padded to the skip's size, as the popular PyTorch UNet does), batch norm, dict
batches. Data: 16x16 images with a bright square and a dim disk, each its own class."""

import pytorch_lightning as pl
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

MEAN, STD = 0.3, 0.3


class ConvBlock(nn.Module):
    """(conv 3x3 => BN => ReLU) * 2"""

    def __init__(self, in_ch, out_ch):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(x)))


class UpBlock(nn.Module):
    def __init__(self, in_ch, out_ch):
        super().__init__()
        self.up = nn.ConvTranspose2d(in_ch, in_ch // 2, kernel_size=2, stride=2)
        self.block = ConvBlock(in_ch, out_ch)

    def forward(self, x, skip):
        x = self.up(x)
        # pad to the skip's size (odd input sizes)
        dy, dx = skip.size(2) - x.size(2), skip.size(3) - x.size(3)
        x = F.pad(x, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
        return self.block(torch.cat([skip, x], dim=1))


class UNet(nn.Module):
    def __init__(self, in_channels=3, num_classes=3, width=8):
        super().__init__()
        self.enc1 = ConvBlock(in_channels, width)
        self.enc2 = ConvBlock(width, 2 * width)
        self.bottleneck = ConvBlock(2 * width, 4 * width)
        self.dec2 = UpBlock(4 * width, 2 * width)
        self.dec1 = UpBlock(2 * width, width)
        self.head = nn.Conv2d(width, num_classes, kernel_size=1)

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        b = self.bottleneck(F.max_pool2d(e2, 2))
        d2 = self.dec2(b, e2)
        d1 = self.dec1(d2, e1)
        return self.head(d1)


class Segmenter(pl.LightningModule):
    def __init__(self, num_classes=3, lr=1e-2):
        super().__init__()
        self.save_hyperparameters()
        self.unet = UNet(num_classes=num_classes)

    def preprocess(self, image):
        return (image - MEAN) / STD

    def forward(self, image):
        return self.unet(image)

    def training_step(self, batch, batch_idx):
        logits = self(self.preprocess(batch["image"]))
        loss = F.cross_entropy(logits, batch["mask"])
        self.log("train_loss", loss, prog_bar=True)
        return {"loss": loss}

    def predict_step(self, batch, batch_idx, dataloader_idx=0):
        logits = self(self.preprocess(batch["image"]))
        return {"probs": logits.softmax(dim=1)}

    def optimizer_zero_grad(self, epoch, batch_idx, optimizer):
        optimizer.zero_grad(set_to_none=True)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class Shapes(Dataset):
    def __init__(self, n, seed):
        gen = torch.Generator().manual_seed(seed)
        yy, xx = torch.meshgrid(torch.arange(16), torch.arange(16), indexing="ij")
        self.items = []
        for _ in range(n):
            image = torch.rand(3, 16, 16, generator=gen) * 0.2
            mask = torch.zeros(16, 16, dtype=torch.long)
            x0, y0 = torch.randint(0, 10, (2,), generator=gen).tolist()
            square = (xx >= x0) & (xx < x0 + 5) & (yy >= y0) & (yy < y0 + 5)
            cx, cy = torch.randint(3, 13, (2,), generator=gen).tolist()
            disk = ((xx - cx) ** 2 + (yy - cy) ** 2 <= 6) & ~square
            image[:, square] += 0.8
            image[1:, disk] += 0.4
            mask[square], mask[disk] = 1, 2
            self.items.append({"image": image, "mask": mask})

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]


class ShapesData(pl.LightningDataModule):
    def __init__(self, batch_size=8):
        super().__init__()
        self.batch_size = batch_size

    def setup(self, stage=None):
        self.train_set, self.predict_set = Shapes(32, seed=0), Shapes(8, seed=1)

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True)

    def predict_dataloader(self):
        return DataLoader(self.predict_set, batch_size=self.batch_size)
