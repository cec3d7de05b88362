"""A GAN with manual optimization, in the order of PyTorch's DCGAN tutorial: the
discriminator's step on real and detached generated points, then the generator's step through
the updated discriminator. The generator maps latent noise to 2-D points; the real points are
an elongated Gaussian blob. Memorization judges with validation_step (the generated points'
distance from the real ones, in mean and spread)."""

import pytorch_lightning as pl
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

LATENT = 4


def mlp(sizes, act):
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=False):
        layers += [nn.Linear(a, b), act()]
    return nn.Sequential(*layers[:-1])


class GAN(pl.LightningModule):
    def __init__(self, hidden=32, lr=5e-3, d_lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.generator = mlp([LATENT, hidden, 2], nn.ReLU)
        self.discriminator = mlp([2, hidden, 1], lambda: nn.LeakyReLU(0.2))
        self.register_buffer("fixed_z", torch.randn(128, LATENT))
        self.example_input_array = torch.zeros(2, LATENT)

    def forward(self, z):
        return self.generator(z)

    def adversarial_loss(self, logits, target):
        return F.binary_cross_entropy_with_logits(logits, target)

    def training_step(self, batch, batch_idx):
        real = batch["points"]
        opt_g, opt_d = self.optimizers()
        z = torch.randn(real.size(0), LATENT, device=self.device)
        fake = self(z)

        # discriminator: real points are 1, generated ones 0
        real_logits = self.discriminator(real)
        fake_logits = self.discriminator(fake.detach())
        d_loss = (
            self.adversarial_loss(real_logits, torch.ones_like(real_logits))
            + self.adversarial_loss(fake_logits, torch.zeros_like(fake_logits))
        ) / 2
        opt_d.zero_grad()
        self.manual_backward(d_loss)
        opt_d.step()

        # generator: make the discriminator call its points real
        g_logits = self.discriminator(fake)
        g_loss = self.adversarial_loss(g_logits, torch.ones_like(g_logits))
        opt_g.zero_grad()
        self.manual_backward(g_loss)
        opt_g.step()
        self.log_dict({"g_loss": g_loss, "d_loss": d_loss}, prog_bar=True)

    def validation_step(self, batch, batch_idx):
        real = batch["points"]
        fake = self(self.fixed_z[: len(real)])
        gap = (fake.mean(0) - real.mean(0)).abs().sum() + (fake.std(0) - real.std(0)).abs().sum()
        self.log("gap", gap)
        return {"gap": gap}

    def predict_step(self, batch, batch_idx, dataloader_idx=0):
        return {"points": self(batch["z"])}

    def configure_optimizers(self):
        betas = (0.5, 0.999)
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=self.hparams.lr, betas=betas)
        opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=self.hparams.d_lr, betas=betas)
        return [opt_g, opt_d]


class DictDataset(TensorDataset):
    def __init__(self, key, tensor):
        super().__init__(tensor)
        self.key = key

    def __getitem__(self, index):
        return {self.key: self.tensors[0][index]}


class BlobData(pl.LightningDataModule):
    def __init__(self, batch_size=128):
        super().__init__()
        self.batch_size = batch_size

    def setup(self, stage=None):
        gen = torch.Generator().manual_seed(0)
        points = torch.randn(256, 2, generator=gen) * torch.tensor([0.4, 0.2])
        self.points = DictDataset("points", points + torch.tensor([1.5, -1.0]))
        self.latents = DictDataset("z", torch.randn(32, LATENT, generator=gen))

    def train_dataloader(self):
        return DataLoader(self.points, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.points, batch_size=self.batch_size)

    def predict_dataloader(self):
        return DataLoader(self.latents, batch_size=16)
