"""A two-optimizer GAN with manual optimization: sanity passes it, and catches the classic bug
of the ML-testing literature, the generator's optimizer also updating the discriminator; the
GAN probe names real/fake labels swapped in the discriminator's loss and a generator trained
toward "fake", for BCE, hinge and least-squares losses, with D and G stepped in either order
and real and fake samples in one `torch.cat`, and stays quiet on the correct variants (both
losses reversed is a consistent convention) and on a two-optimizer model that is no GAN."""

from __future__ import annotations

import pytest

from mltest.report import Status
from mltest.supervisor import run_suite
from tests.checks.sanity.test_probes import run_check
from tests.suites import edited_example, write_suite

MODEL = """
import pytorch_lightning as pl
import torch
from torch import nn

LATENT = 4


class GAN(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.automatic_optimization = False
        self.generator = nn.Sequential(nn.Linear(LATENT, 16), nn.ReLU(), nn.Linear(16, 2))
        self.discriminator = nn.Sequential(nn.Linear(2, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))

    def training_step(self, batch, batch_idx):
        (real,) = batch
        opt_g, opt_d = self.optimizers()
        bce = nn.functional.binary_cross_entropy_with_logits
        fake = self.generator(torch.randn(len(real), LATENT))
        ones, zeros = torch.ones(len(real), 1), torch.zeros(len(real), 1)
        d_loss = bce(self.discriminator(real), ones) + bce(self.discriminator(fake.detach()), zeros)
        opt_d.zero_grad()
        self.manual_backward(d_loss)
        opt_d.step()
        g_loss = bce(self.discriminator(fake), ones)
        opt_g.zero_grad()
        self.manual_backward(g_loss)
        opt_g.step()
        return g_loss

    def configure_optimizers(self):
        return (torch.optim.Adam(GENERATOR_PARAMS, lr=1e-2),
                torch.optim.Adam(self.discriminator.parameters(), lr=1e-2))
"""

DATA = """
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset


class Data(pl.LightningDataModule):
    def train_dataloader(self):
        g = torch.Generator().manual_seed(0)
        real = torch.randn(64, 2, generator=g) * 0.3 + torch.tensor([2.0, -1.0])
        return DataLoader(TensorDataset(real), batch_size=32)
"""


@pytest.mark.parametrize(
    "params, status",
    [("self.generator.parameters()", Status.PASS), ("self.parameters()", Status.FAIL)],
    ids=["own-parameters", "generator-optimizer-over-everything"],
)
def test_generator_optimizer_that_also_updates_the_discriminator(tmp_path, params, status):
    config = write_suite(
        tmp_path,
        model_src=MODEL.replace("GENERATOR_PARAMS", params),
        data_src=DATA,
        model="model:GAN",
        checks={"sanity": {"gradient_check": False, "init_loss": False}},
    )
    report = run_suite(config, tmp_path / "report", update_baselines=True, only=["sanity"])
    sanity = {c.name: c for c in report.checks}["sanity"]
    assert not report.errors, report.errors
    assert sanity.status is status, sanity.summary
    if status is Status.FAIL:
        assert "in more than one optimizer (optimizer 0 and optimizer 1)" in sanity.summary
        assert "discriminator.0.weight" in sanity.summary


OWN = MODEL.replace("GENERATOR_PARAMS", "self.generator.parameters()")
D_LOSS = (
    "d_loss = bce(self.discriminator(real), ones) + bce(self.discriminator(fake.detach()), zeros)"
)
G_LOSS = "g_loss = bce(self.discriminator(fake), ones)"
D_SWAPPED = (
    "d_loss = bce(self.discriminator(real), zeros) + bce(self.discriminator(fake.detach()), ones)"
)
G_FAKE = "g_loss = bce(self.discriminator(fake), zeros)"
HINGE_D = ("d_loss = torch.relu(1 - self.discriminator(real)).mean() + "
           "torch.relu(1 + self.discriminator(fake.detach())).mean()")  # fmt: skip
HINGE_D_SWAPPED = ("d_loss = torch.relu(1 + self.discriminator(real)).mean() + "
                   "torch.relu(1 - self.discriminator(fake.detach())).mean()")  # fmt: skip
HINGE_G = "g_loss = -self.discriminator(fake).mean()"
LS_D = ("d_loss = ((self.discriminator(real) - 1) ** 2).mean() + "
        "(self.discriminator(fake.detach()) ** 2).mean()")  # fmt: skip
LS_G = "g_loss = ((self.discriminator(fake) - 1) ** 2).mean()"
LS_G_FAKE = "g_loss = (self.discriminator(fake) ** 2).mean()"
CAT_D = ("d_loss = bce(self.discriminator(torch.cat([real, fake.detach()])), "
         "torch.cat([ones, zeros]))")  # fmt: skip
WGAN_GP_D = (
    "mix = torch.rand(len(real), 1)\n"
    "        between = (mix * real + (1 - mix) * fake.detach()).requires_grad_(True)\n"
    "        slope = torch.autograd.grad(self.discriminator(between).sum(), between,"
    " create_graph=True)[0]\n"
    "        d_loss = self.discriminator(fake.detach()).mean() - self.discriminator(real).mean()"
    " + 10 * ((slope.norm(dim=1) - 1) ** 2).mean()"
)
# Two discriminators in a ModuleList (a multi-scale GAN): the list is never called, its
# members are, and the first to read generated samples is the one judged.
TWO_CRITICS = (
    ("self.discriminator = nn.Sequential(nn.Linear(2, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))",
     "self.critics = nn.ModuleList(nn.Sequential(nn.Linear(2, 16), nn.LeakyReLU(0.2), "
     "nn.Linear(16, 1)) for _ in range(2))"),
    ("    def configure_optimizers(self):",
     "    def discriminator(self, x):\n        return (self.critics[0](x) + self.critics[1](x)) / 2"
     "\n\n    def configure_optimizers(self):"),
    ("self.discriminator.parameters()", "self.critics.parameters()"),
)  # fmt: skip
CAT_D_SWAPPED = CAT_D.replace("[ones, zeros]", "[zeros, ones]")

# The generator's step first, as Lightning's own GAN example: `self(z)` twice, toggled
# optimizers, the discriminator's targets named `valid` and `fake`.
G_FIRST = OWN.replace(
    """        fake = self.generator(torch.randn(len(real), LATENT))
        ones, zeros = torch.ones(len(real), 1), torch.zeros(len(real), 1)
        D_LOSS
        opt_d.zero_grad()
        self.manual_backward(d_loss)
        opt_d.step()
        G_LOSS
        opt_g.zero_grad()
        self.manual_backward(g_loss)
        opt_g.step()
        return g_loss
""".replace("D_LOSS", D_LOSS).replace("G_LOSS", G_LOSS),
    """        z = torch.randn(len(real), LATENT)
        valid, fake = torch.ones(len(real), 1), torch.zeros(len(real), 1)
        self.toggle_optimizer(opt_g)
        g_loss = bce(self.discriminator(self(z)), valid)
        self.manual_backward(g_loss)
        opt_g.step()
        opt_g.zero_grad()
        self.untoggle_optimizer(opt_g)
        self.toggle_optimizer(opt_d)
        d_real = bce(self.discriminator(real), valid)
        d_fake = bce(self.discriminator(self(z).detach()), fake)
        self.manual_backward((d_real + d_fake) / 2)
        opt_d.step()
        opt_d.zero_grad()
        self.untoggle_optimizer(opt_d)
        return g_loss

    def forward(self, z):
        return self.generator(z)
""",
)
CASE = "discriminator and generator agree on 'real'"
D_CAUSE = "discriminator trained to call real samples fake (labels swapped in its loss?)"
G_CAUSE = "generator trained toward 'fake'"


def _sanity(tmp_path, source: str, update: bool = True, **settings):
    """Sanity on the GAN: recording its baseline (a pass), or against none (the findings
    lead the summary)."""
    config = write_suite(
        tmp_path, model_src=source, data_src=DATA, model="model:GAN",
        checks={"sanity": {"gradient_check": False, "init_loss": False, **settings}},
    )  # fmt: skip
    return run_check(config, update=update)


def _edit(source: str, *pairs: tuple[str, str]) -> str:
    for old, new in pairs:
        assert old in source, old
        source = source.replace(old, new)
    return source


def _line(source: str, text: str) -> int:
    return next(n for n, line in enumerate(source.splitlines(), 1) if text in line)


@pytest.mark.parametrize(
    "edits, settings",
    [
        ((), {}),
        (((D_LOSS, D_SWAPPED), (G_LOSS, G_FAKE)), {}),  # both reversed: consistent
        # A hinge critic's last bias gets opposite, equal gradients from real and fake
        # samples inside the margin: it does not move in the first step, by design.
        (((D_LOSS, HINGE_D), (G_LOSS, HINGE_G)), {"allow_unchanged": ["discriminator.2.bias"]}),
        (((D_LOSS, LS_D), (G_LOSS, LS_G)), {}),
        (((D_LOSS, CAT_D),), {}),
        # An extra term in the generator's loss (pix2pix's L1) that moves its samples its
        # own way: what the adversarial term asks of D's scores is read apart from it.
        (((G_LOSS, G_LOSS + " + 10 * (fake - real).abs().mean()"),), {}),
        # A WGAN-GP critic: the penalty's interpolates are neither real nor generated.
        (((D_LOSS, WGAN_GP_D), (G_LOSS, HINGE_G)), {"allow_unchanged": ["discriminator.2.bias"]}),
        (TWO_CRITICS, {}),
    ],
    ids=[
        "non-saturating-bce",
        "both-losses-reversed",
        "hinge",
        "least-squares",
        "cat",
        "generator-loss-with-l1-term",
        "wgan-gp-critic",
        "two-discriminators-in-a-module-list",
    ],
)
def test_correct_gans_pass_the_probe(tmp_path, edits, settings):
    result = _sanity(tmp_path, _edit(OWN, *edits), **settings)
    assert result.status is Status.PASS, result.summary
    assert next(c for c in result.cases if c.name == CASE).status is Status.PASS
    # A pass shows what it read, per step: the roles and what each loss asked for.
    assert "reads the output of `generator` (optimizer 0)" in result.details
    assert result.details.count("generated +") + result.details.count("generated -") == 3


def test_generator_stepped_first_as_in_lightnings_example_passes(tmp_path):
    result = _sanity(tmp_path, G_FIRST)
    assert result.status is Status.PASS, result.summary
    assert next(c for c in result.cases if c.name == CASE).status is Status.PASS


D_READS = "self.discriminator(real)"


@pytest.mark.parametrize(
    "source, cause, loss",
    [
        (_edit(OWN, (D_LOSS, D_SWAPPED)), D_CAUSE, D_READS),
        (_edit(OWN, (D_LOSS, HINGE_D_SWAPPED), (G_LOSS, HINGE_G)), D_CAUSE, D_READS),
        (_edit(OWN, (D_LOSS, CAT_D_SWAPPED)), D_CAUSE, "torch.cat([real"),
        (_edit(G_FIRST, ("self(z).detach()), fake)", "self(z).detach()), valid)"),
               ("bce(self.discriminator(real), valid)", "bce(self.discriminator(real), fake)")),
         D_CAUSE, D_READS),
        (_edit(OWN, *TWO_CRITICS, (D_LOSS, D_SWAPPED)), D_CAUSE, D_READS),
        (_edit(OWN, (G_LOSS, G_FAKE)), G_CAUSE, "g_loss = "),
        (_edit(OWN, (D_LOSS, LS_D), (G_LOSS, LS_G_FAKE)), G_CAUSE, "g_loss = "),
        (_edit(G_FIRST, ("self(z)), valid)", "self(z)), fake)")), G_CAUSE, "g_loss = "),
    ],
    ids=["bce-labels-swapped", "hinge-labels-swapped", "cat-labels-swapped",
         "generator-first-labels-swapped", "two-discriminators-labels-swapped",
         "bce-generator-toward-fake",
         "least-squares-generator-toward-fake", "generator-first-toward-fake"],
)  # fmt: skip
def test_a_gan_pushed_the_wrong_way_is_named(tmp_path, source, cause, loss):
    result = _sanity(tmp_path, source, update=False)
    assert result.status is Status.FAIL
    assert result.summary.startswith(cause), result.summary
    assert result.metrics["causes"][0] == cause
    named = result.metrics["problems"][CASE]
    assert named in ([["discriminator"], ["critics.0"]] if cause == D_CAUSE else [["generator"]])
    assert f"the {named[0]} is the one trained the wrong way" in result.summary
    step = "opt_d.step()" if cause == D_CAUSE else "opt_g.step()"
    assert f"stepped at model.py:{_line(source, step)} in training_step" in result.summary
    # The hint names the loss's line and the fix, and never the baseline update.
    assert f"the loss is computed at model.py:{_line(source, loss)} in training_step" in (
        result.hint
    )
    assert ("`bce(D(real), ones)" if cause == D_CAUSE else "`bce(D(G(z)), ones)`") in result.hint
    assert "mltest baseline update" not in result.hint


def test_real_samples_transformed_in_the_step_are_not_judged_and_say_so(tmp_path):
    source = _edit(
        OWN, ("        (real,) = batch\n", "        (real,) = batch\n        real = real * 2 - 1\n")
    )
    result = _sanity(tmp_path, _edit(source, (D_LOSS, D_SWAPPED)))
    assert result.status is Status.PASS, result.summary
    assert CASE not in [c.name for c in result.cases]
    assert any(
        n.startswith("GAN probe not judged: `discriminator` reads `generator`'s output")
        and "transformed copy" in n
        for n in result.notices
    ), result.notices


def test_the_probe_can_be_turned_off(tmp_path):
    result = _sanity(tmp_path, _edit(OWN, (D_LOSS, D_SWAPPED)), gan=False)
    assert result.status is Status.PASS, result.summary
    assert CASE not in [c.name for c in result.cases]


@pytest.mark.parametrize(
    "edits, cause",
    [((), None),
     ([("bce(self.discriminator(real), ones) + bce(self.discriminator(fake.detach()), zeros)",
        "bce(self.discriminator(real), zeros) + bce(self.discriminator(fake.detach()), ones)")],
      D_CAUSE),
     ([("g_loss = bce(self.discriminator(fake), ones)",
        "g_loss = bce(self.discriminator(fake), zeros)")], G_CAUSE)],
    ids=["as-shipped", "labels-swapped", "generator-toward-fake"],
)  # fmt: skip
def test_the_gan_example(tmp_path, edits, cause):
    result = run_check(edited_example("gan", tmp_path, edits), update=cause is None)
    if cause is None:
        assert result.status is Status.PASS, result.summary
        assert next(c for c in result.cases if c.name == CASE).status is Status.PASS
    else:
        assert result.status is Status.FAIL and result.summary.startswith(cause), result.summary


AUTOENCODER = """
import pytorch_lightning as pl
import torch
from torch import nn


class GAN(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.automatic_optimization = False
        self.encoder = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 4))
        self.decoder = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))

    def training_step(self, batch, batch_idx):
        (real,) = batch
        opt_e, opt_d = self.optimizers()
        loss = ((self.decoder(self.encoder(real)) - real) ** 2).mean()
        opt_e.zero_grad()
        opt_d.zero_grad()
        self.manual_backward(loss)
        opt_e.step()
        opt_d.step()
        return loss

    def configure_optimizers(self):
        return (torch.optim.Adam(self.encoder.parameters(), lr=1e-2),
                torch.optim.SGD(self.decoder.parameters(), lr=1e-2))
"""


def test_a_two_optimizer_model_that_is_no_gan_is_left_alone(tmp_path):
    # The decoder reads the encoder's output, but never a batch tensor: no real samples.
    result = _sanity(tmp_path, AUTOENCODER)
    assert result.status is Status.PASS, result.summary
    assert CASE not in [c.name for c in result.cases]
    assert not [n for n in result.notices if "GAN probe" in n], result.notices


# Lightning's own GAN example, shrunk: images, BatchNorm and Dropout, a sigmoid with
# `binary_cross_entropy`, the targets named `valid` and `fake`, a batch of (images, labels).
DCGAN = """
import pytorch_lightning as pl
import torch
from torch import nn


class Generator(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 16 * 4 * 4)
        self.net = nn.Sequential(nn.BatchNorm2d(16), nn.ReLU(),
                                 nn.ConvTranspose2d(16, 1, 4, stride=2, padding=1), nn.Tanh())

    def forward(self, z):
        return self.net(self.fc(z).view(-1, 16, 4, 4))


class GAN(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.automatic_optimization = False
        self.gen = Generator()
        self.disc = nn.Sequential(nn.Conv2d(1, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8),
                                  nn.LeakyReLU(0.2), nn.Dropout(0.3), nn.Flatten(),
                                  nn.Linear(8 * 4 * 4, 1), nn.Sigmoid())

    def forward(self, z):
        return self.gen(z)

    def training_step(self, batch, batch_idx):
        imgs, _ = batch
        opt_g, opt_d = self.optimizers()
        z = torch.randn(imgs.shape[0], 8).type_as(imgs)
        valid = torch.ones(imgs.size(0), 1).type_as(imgs)
        fake = torch.zeros(imgs.size(0), 1).type_as(imgs)
        bce = nn.functional.binary_cross_entropy
        self.toggle_optimizer(opt_g)
        g_loss = bce(self.disc(self(z)), G_TARGET)
        self.manual_backward(g_loss)
        opt_g.step()
        opt_g.zero_grad()
        self.untoggle_optimizer(opt_g)
        self.toggle_optimizer(opt_d)
        real_loss = bce(self.disc(imgs), REAL_TARGET)
        fake_loss = bce(self.disc(self(z).detach()), FAKE_TARGET)
        self.manual_backward((real_loss + fake_loss) / 2)
        opt_d.step()
        opt_d.zero_grad()
        self.untoggle_optimizer(opt_d)

    def configure_optimizers(self):
        return (torch.optim.Adam(self.gen.parameters(), lr=2e-4, betas=(0.5, 0.999)),
                torch.optim.Adam(self.disc.parameters(), lr=2e-4, betas=(0.5, 0.999)))
"""

IMAGES = """
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset


class Data(pl.LightningDataModule):
    def train_dataloader(self):
        g = torch.Generator().manual_seed(0)
        x = torch.rand(64, 1, 8, 8, generator=g) * 2 - 1
        return DataLoader(TensorDataset(x, torch.zeros(64, dtype=torch.long)), batch_size=16)
"""


@pytest.mark.parametrize(
    "targets, cause",
    [(("valid", "valid", "fake"), None), (("valid", "fake", "valid"), D_CAUSE),
     (("fake", "valid", "fake"), G_CAUSE)],
    ids=["correct", "labels-swapped", "generator-toward-fake"],
)  # fmt: skip
def test_a_convolutional_gan_as_in_lightnings_example(tmp_path, targets, cause):
    source = DCGAN
    for name, target in zip(("G_TARGET", "REAL_TARGET", "FAKE_TARGET"), targets, strict=True):
        source = source.replace(name, target)
    config = write_suite(
        tmp_path, model_src=source, data_src=IMAGES, model="model:GAN",
        checks={"sanity": {"gradient_check": False, "init_loss": False}},
    )  # fmt: skip
    result = run_check(config, update=cause is None)
    if cause is None:
        assert result.status is Status.PASS, result.summary
        assert next(c for c in result.cases if c.name == CASE).status is Status.PASS
    else:
        assert result.summary.startswith(cause), result.summary
        assert "the disc's loss (optimizer 1, stepped at model.py:" in result.summary
