"""A small UNet for semantic segmentation, written the way Lightning's own UNet example is
(`DoubleConv`, `Down`, `Up`, a `UNet` of `num_layers` levels and a `SegModel` around it),
scaled down so it memorizes on a CPU in seconds."""

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn


class DoubleConv(nn.Module):
    """[ Conv2d => BatchNorm => ReLU ] x 2."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_ch, out_ch, kernel_size=3, padding=1),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
        )

    def forward(self, x):
        return self.net(x)


class Down(nn.Module):
    """Downscale with MaxPool => DoubleConv."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.net = nn.Sequential(nn.MaxPool2d(kernel_size=2, stride=2), DoubleConv(in_ch, out_ch))

    def forward(self, x):
        return self.net(x)


class Up(nn.Module):
    """Upsample (transposed convolution, or bilinear), concatenate the feature map of the
    contracting path, then DoubleConv."""

    def __init__(self, in_ch: int, out_ch: int, bilinear: bool = False):
        super().__init__()
        if bilinear:
            self.upsample = nn.Sequential(
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
                nn.Conv2d(in_ch, in_ch // 2, kernel_size=1),
            )
        else:
            self.upsample = nn.ConvTranspose2d(in_ch, in_ch // 2, kernel_size=2, stride=2)
        self.conv = DoubleConv(in_ch, out_ch)

    def forward(self, x1, x2):
        x1 = self.upsample(x1)
        # Pad x1 to the size of x2 (odd sizes lose a row when pooled)
        diff_h = x2.shape[2] - x1.shape[2]
        diff_w = x2.shape[3] - x1.shape[3]
        x1 = F.pad(x1, [diff_w // 2, diff_w - diff_w // 2, diff_h // 2, diff_h - diff_h // 2])
        return self.conv(torch.cat([x2, x1], dim=1))


class UNet(nn.Module):
    """UNet (Ronneberger et al., 2015): `num_layers` levels, `features_start` channels at the
    top, doubled at each level down."""

    def __init__(
        self,
        num_classes: int,
        input_channels: int = 3,
        num_layers: int = 3,
        features_start: int = 8,
        bilinear: bool = False,
    ):
        super().__init__()
        self.num_layers = num_layers
        layers = [DoubleConv(input_channels, features_start)]
        feats = features_start
        for _ in range(num_layers - 1):
            layers.append(Down(feats, feats * 2))
            feats *= 2
        for _ in range(num_layers - 1):
            layers.append(Up(feats, feats // 2, bilinear))
            feats //= 2
        layers.append(nn.Conv2d(feats, num_classes, kernel_size=1))
        self.layers = nn.ModuleList(layers)

    def forward(self, x):
        xi = [self.layers[0](x)]
        for layer in self.layers[1 : self.num_layers]:  # down path
            xi.append(layer(xi[-1]))
        for i, layer in enumerate(self.layers[self.num_layers : -1]):  # up path
            xi[-1] = layer(xi[-1], xi[-2 - i])
        return self.layers[-1](xi[-1])


class SegModel(pl.LightningModule):
    """Semantic segmentation: per-pixel cross-entropy over `num_classes` classes."""

    def __init__(
        self,
        num_classes: int = 3,
        lr: float = 0.01,
        num_layers: int = 3,
        features_start: int = 8,
        bilinear: bool = False,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = UNet(
            num_classes=num_classes,
            num_layers=num_layers,
            features_start=features_start,
            bilinear=bilinear,
        )

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        img, mask = batch
        out = self(img)
        loss = F.cross_entropy(out, mask, ignore_index=250)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        img, mask = batch
        out = self(img)
        self.log("val_loss", F.cross_entropy(out, mask, ignore_index=250))
        self.log("val_pixel_acc", (out.argmax(dim=1) == mask).float().mean())

    def predict_step(self, batch, batch_idx, dataloader_idx=0):
        img = batch[0] if isinstance(batch, (list, tuple)) else batch
        return self(img)

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.net.parameters(), lr=self.hparams.lr)
        sch = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10)
        return [opt], [sch]
