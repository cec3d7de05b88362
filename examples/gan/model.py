"""A small GAN with manual optimization: two networks, two optimizers, one training_step.

The generator maps latent noise to 2-D points; the discriminator tells them from the real
ones. `training_step` steps the discriminator's optimizer, then the generator's, so it cannot
be called just to measure: memorization judges with `validation_step`, which compares the
points generated from a fixed latent batch with the real batch (no optimizer involved).
"""

import pytorch_lightning as pl
import torch
from torch import nn

LATENT = 4


class GAN(pl.LightningModule):
    def __init__(self, hidden: int = 32, lr: float = 0.005, d_lr: float = 0.002):
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.generator = nn.Sequential(
            nn.Linear(LATENT, hidden), nn.ReLU(), nn.Linear(hidden, 2)
        )
        self.discriminator = nn.Sequential(
            nn.Linear(2, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, 1)
        )
        # Fixed latent points for judging: the same fake points every time they are measured.
        self.register_buffer("fixed_z", torch.randn(256, LATENT))
        # A batch of latents, as Lightning's own attribute describes forward's input: what
        # mltest's built-in sample judgement reads the latent shape from.
        self.example_input_array = torch.zeros(2, LATENT)

    def forward(self, z):
        return self.generator(z)

    def training_step(self, batch, batch_idx):
        (real,) = batch
        n = len(real)
        opt_g, opt_d = self.optimizers()
        bce = nn.functional.binary_cross_entropy_with_logits
        ones, zeros = torch.ones(n, 1), torch.zeros(n, 1)
        fake = self.generator(torch.randn(n, LATENT))

        # Discriminator phase: real points are 1, generated ones 0.
        d_loss = bce(self.discriminator(real), ones) + bce(self.discriminator(fake.detach()), zeros)
        opt_d.zero_grad()
        self.manual_backward(d_loss)
        opt_d.step()

        # Generator phase: fool the discriminator. Its loss reaches D's weights too, but only
        # the generator's optimizer steps here.
        g_loss = bce(self.discriminator(fake), ones)
        opt_g.zero_grad()
        self.manual_backward(g_loss)
        opt_g.step()
        self.log_dict({"d_loss": d_loss, "g_loss": g_loss})
        return g_loss

    def validation_step(self, batch, batch_idx):
        (real,) = batch
        fake = self.generator(self.fixed_z[: len(real)])
        # How far the generated points are from the real ones in mean and spread, per axis.
        gap = (fake.mean(0) - real.mean(0)).abs().sum() + (fake.std(0) - real.std(0)).abs().sum()
        self.log("gap", gap)
        return {"gap": gap}

    def predict_step(self, batch, batch_idx, dataloader_idx=0):
        z = batch[0] if isinstance(batch, (list, tuple)) else batch
        return self.generator(z)

    def configure_optimizers(self):
        betas = (0.5, 0.999)
        return (
            torch.optim.Adam(self.generator.parameters(), lr=self.hparams.lr, betas=betas),
            torch.optim.Adam(self.discriminator.parameters(), lr=self.hparams.d_lr, betas=betas),
        )
