"""The segmentation example (examples/segmentation, a UNet written like Lightning's own; its
whole suite passes in tests/test_cli.py): a double softmax stops it memorizing, and a label map
swapped in predict_step flips labels per pixel and fails its key examples."""

from __future__ import annotations

import mltest.checks.memorization as memorization
from bench.common import context
from mltest.checks import key_examples, regression
from mltest.report import Status
from tests.suites import edited_example, forget_project_modules


def _check(tmp_path, module, name, edits=(), yaml_edits=()):
    config = edited_example("segmentation", tmp_path, edits, yaml_edits)
    forget_project_modules(config.parent)
    ctx, settings = context(config, name)
    module.validate(ctx, settings)
    return module.run(ctx, settings), ctx


def test_a_double_softmax_cannot_memorize(tmp_path):
    # Cross-entropy of probabilities instead of logits: the loss cannot fall below ~0.55.
    result, _ = _check(
        tmp_path, memorization, "memorization",
        [("F.cross_entropy(out, mask, ignore_index=250)\n        self.log(\"train_loss\"",
          "F.cross_entropy(out.softmax(dim=1), mask, ignore_index=250)\n"
          "        self.log(\"train_loss\"")],
        [("    max_epochs: 300", "    max_epochs: 120\n    seeds: [0]")],
    )  # fmt: skip
    assert result.status is Status.FAIL
    assert "could not memorize 1 batch(es) within 120 epochs on 1 of 1 seeds" in result.summary
    assert "seed 0: best loss 0.5" in result.summary
    assert "It memorized when the baseline was recorded (median 98 epochs)" in result.hint


def test_a_label_map_swapped_in_predict_step_flips_labels_per_pixel(tmp_path):
    result, ctx = _check(
        tmp_path, regression, "regression",
        [("        return self(img)\n", "        return self(img)[:, [0, 2, 1]]\n")],
    )
    assert result.status is Status.FAIL
    assert result.metrics["task"].startswith("segmentation (3 classes; class axis 1")
    assert "per-position labels in 8 examples flipped" in result.summary, result.summary
    keys = key_examples.run(ctx, context(ctx.loaded.path, "key_examples")[1])
    assert keys.status is Status.FAIL and "disc-inside" in keys.details


def test_renaming_the_unet_is_harmless_for_the_prediction_checks(tmp_path):
    result, ctx = _check(tmp_path, regression, "regression", [("self.net", "self.unet")])
    assert result.status is Status.PASS, result.summary
    keys = key_examples.run(ctx, context(ctx.loaded.path, "key_examples")[1])
    assert keys.status is Status.PASS, keys.summary
