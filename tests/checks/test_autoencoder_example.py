"""The autoencoder example (examples/autoencoder, written like Lightning's own): its committed
baselines pass as a suite; it is read as a regression model, not a 784-class classifier; an
encoder cut off from the loss is named."""

from __future__ import annotations

import pytest

from bench.common import context
from mltest.checks import sanity
from mltest.report import Status
from mltest.supervisor import run_suite
from tests.suites import copy_example, edited_example, forget_project_modules


def _sanity(tmp_path, edits=()):
    config = edited_example("autoencoder", tmp_path, edits)
    forget_project_modules(config.parent)
    ctx, settings = context(config, "sanity")
    return sanity.run(ctx, settings)


@pytest.mark.slow
def test_the_autoencoder_example_passes_as_a_supervised_suite(tmp_path):
    report = run_suite(copy_example("autoencoder", tmp_path), tmp_path / "report")
    assert report.verdict.exit_code == 0, [c.summary for c in report.checks]
    checks = {c.name: c for c in report.checks}
    assert checks["regression"].metrics["flipped"] is None  # no labels in a reconstruction
    assert checks["key_examples"].metrics["cases"] == 12


def test_the_reconstruction_loss_is_not_judged_as_a_784_class_classifier(tmp_path):
    result = _sanity(tmp_path)
    assert result.status is Status.PASS, result.summary
    assert not any("784" in n for n in result.notices), result.notices
    assert result.metrics["classes"] is None


def test_an_encoder_cut_off_from_the_loss_is_named(tmp_path):
    result = _sanity(tmp_path, [("        z = self.encoder(x)\n",
                                 "        z = self.encoder(x).detach()\n")])
    assert result.status is Status.FAIL
    assert "encoder.0.weight" in result.summary + " ".join(c.message for c in result.cases)
