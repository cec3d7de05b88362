"""The autoencoder example (examples/autoencoder, written like Lightning's own; its whole suite
passes in tests/test_cli.py): it is read as a regression model, not a 784-class classifier; an
encoder cut off from the loss is named."""

from __future__ import annotations

from bench.common import context
from mltest.checks import sanity
from mltest.report import Status
from tests.suites import edited_example, forget_project_modules


def _sanity(tmp_path, edits=()):
    config = edited_example("autoencoder", tmp_path, edits)
    forget_project_modules(config.parent)
    ctx, settings = context(config, "sanity")
    return sanity.run(ctx, settings)


def test_the_reconstruction_loss_is_not_judged_as_a_784_class_classifier(tmp_path):
    # With a harmless change against the committed baseline: flatten instead of view.
    result = _sanity(tmp_path, [("x.view(x.size(0), -1)", "x.flatten(1)")])
    assert result.status is Status.PASS, result.summary
    assert not any("784" in n for n in result.notices), result.notices
    assert result.metrics["classes"] is None


def test_an_encoder_cut_off_from_the_loss_is_named(tmp_path):
    result = _sanity(tmp_path, [("        z = self.encoder(x)\n",
                                 "        z = self.encoder(x).detach()\n")])
    assert result.status is Status.FAIL
    assert "encoder.0.weight" in result.summary + " ".join(c.message for c in result.cases)
