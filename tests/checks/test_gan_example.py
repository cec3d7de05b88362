"""The GAN example (examples/gan): manual optimization, two optimizers. The recorded baselines
pass on a rerun and on harmless changes; bugs fail the check that should see them."""

from __future__ import annotations

import pytest

import mltest.checks.memorization as memorization
from bench.common import context
from mltest.checks import sanity
from mltest.report import Status
from mltest.supervisor import run_suite
from tests.suites import copy_example, forget_project_modules

RENAMED = [("self.generator", "self.gen"), ("self.discriminator", "self.critic")]
VARIANTS = {
    # harmless: each must pass both checks against the recorded baselines
    "rerun": ([], None, None),
    "modules renamed": (RENAMED, None, "renamed since the baseline"),
    # the same i.i.d. normal noise drawn in another order: another random stream, same
    # distribution (the flap: one seed's count moved from 116 to 31 without `hold`)
    "randn(LATENT, n).T": (
        [("torch.randn(n, LATENT))", "torch.randn(LATENT, n).T)")], None, None),
    # bugs
    "generator optimizer over every parameter": (
        [("Adam(self.generator.parameters()", "Adam(self.parameters()")],
        ("sanity", "in more than one optimizer (optimizer 0 and optimizer 1)"), None),
    "discriminator stepped in the generator phase": (
        [("        opt_g.step()\n", "        opt_g.step()\n        opt_d.step()\n")],
        ("sanity", "The discriminator's optimizer (optimizer 1) stepped twice in one "
         "training_step, once in the baseline"), None),
    "generator loss on detached fakes": (
        [("bce(self.discriminator(fake), ones)", "bce(self.discriminator(fake.detach()), ones)")],
        ("sanity", "generator.0.weight"), None),
    "constant latent noise (mode collapse)": (
        [("torch.randn(n, LATENT))", "torch.zeros(n, LATENT))"),
         ("self.generator(self.fixed_z[: len(real)])",
          "self.generator(torch.zeros_like(self.fixed_z[: len(real)]))")],
        ("memorization", "could not memorize 1 batch(es) within 400 epochs"), None),
}  # fmt: skip


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_gan_variants(tmp_path, variant):
    edits, failure, notice = VARIANTS[variant]
    config = copy_example("gan", tmp_path)
    model = config.parent / "model.py"
    text = model.read_text()
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new)
    model.write_text(text)
    forget_project_modules(config.parent)
    results = {}
    for name, check in (("memorization", memorization), ("sanity", sanity)):
        ctx, settings = context(config, name)
        if name == "memorization":
            check.validate(ctx, settings)
        results[name] = check.run(ctx, settings)
    if failure is None:
        assert all(r.status is Status.PASS for r in results.values()), [
            r.summary for r in results.values()
        ]
        if notice:
            assert any(notice in n for n in results["sanity"].notices)
        return
    check, words = failure
    assert results[check].status is Status.FAIL
    assert words in results[check].summary + " ".join(c.message for c in results[check].cases)


def test_the_gan_example_passes_as_a_supervised_suite(tmp_path):
    config = copy_example("gan", tmp_path)
    report = run_suite(config, tmp_path / "report", only=["memorization", "sanity"])
    assert report.verdict.exit_code == 0, [c.summary for c in report.checks]
    memorized = {c.name: c for c in report.checks}["memorization"]
    assert memorized.metrics["target_quantity"] == "gap"
    assert "gap at init" in memorized.details
