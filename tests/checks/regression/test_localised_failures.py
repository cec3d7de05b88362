"""A failing regression check names the module where the outputs moved, against the
segmentation example's committed golden record (its UNet trained 5 epochs, traced at init),
says what to check first, and does not suggest recording the change; a golden record without
a module trace, or with one of another recording, still fails on the comparison alone; a
harmless restructuring passes."""

from __future__ import annotations

import json

from bench.common import context
from mltest.checks import regression
from mltest.report import Status
from tests.checks.regression.test_localisation import STRIDE, UNWRAPPED, WRONG_SKIP
from tests.suites import edited_example, forget_project_modules

TRACE = ".mltest/golden/regression/cpu-torch2.13-32-true.modules.json"


def _check(tmp_path, edits=(), yaml_edits=()):
    config = edited_example("segmentation", tmp_path, edits, yaml_edits)
    forget_project_modules(config.parent)
    ctx, settings = context(config, "regression")
    regression.validate(ctx, settings)
    return regression.run(ctx, settings), ctx, settings


def test_a_stride_bug_is_named_at_its_module_and_the_golden_trace_must_be_its_own(tmp_path):
    result, ctx, settings = _check(tmp_path, [STRIDE])
    assert result.status is Status.FAIL
    assert "per-position labels in 8 examples flipped" in result.summary, result.summary
    assert (
        "first moved in the forward pass at the seeded fresh init: the output of "
        "`net.layers.3.upsample` (ConvTranspose2d) on an unchanged input with the same "
        "parameters (shape [8, 16, 16, 16] → [8, 16, 9, 9])"
    ) in result.summary
    assert result.hint.startswith("Check how `net.layers.3.upsample` is built first")
    assert "baseline update" not in result.hint
    assert result.metrics["localisation"]["first_moved"] == "net.layers.3.upsample"
    assert result.details.startswith("**Module trace** (fresh init (seed 0)")

    # The same model (cached in the context), against a trace of another recording, then
    # against a golden recorded before traces were: the comparison's finding stands alone.
    trace = ctx.loaded.path.parent / TRACE
    data = json.loads(trace.read_text())
    trace.write_text(json.dumps({**data, "outputs_hash": "sha256:other"}))
    regression.validate(ctx, settings)
    again = regression.run(ctx, settings)
    assert again.status is Status.FAIL and "first moved" not in again.summary
    assert "localisation" not in again.metrics
    assert any("comes from another recording" in n for n in again.notices), again.notices
    trace.unlink()
    regression.validate(ctx, settings)
    legacy = regression.run(ctx, settings)
    assert legacy.status is Status.FAIL and "first moved" not in legacy.summary
    assert legacy.summary == again.summary
    assert any("has no module fingerprints" in n for n in legacy.notices), legacy.notices


def test_a_learning_rate_100x_is_named_as_a_change_in_training(tmp_path):
    lr = ("init_args: {num_classes: 3, lr: 0.01}", "init_args: {num_classes: 3, lr: 1.0}")
    result, _, _ = _check(tmp_path, yaml_edits=[lr])
    assert result.status is Status.FAIL
    assert (
        "the forward pass at the seeded fresh init matches the golden trace call by call, and so "
        "do predict_step's outputs: the outputs moved through training"
    ) in result.summary, result.summary
    assert "learning rate" in result.hint and "baseline update" not in result.hint
    assert result.metrics["localisation"]["first_moved"] is None


def test_a_skip_connection_with_the_wrong_tensor_is_named_in_up_forward(tmp_path):
    result, _, _ = _check(tmp_path, [WRONG_SKIP])
    assert result.status is Status.FAIL
    assert (
        "the input of `net.layers.3.conv` (DoubleConv), while every call before it matches"
    ) in result.summary, result.summary
    assert "the change is in Up.forward (`net.layers.3`) before it calls `conv`" in result.summary
    assert result.hint.startswith("Check Up.forward first") and "baseline update" not in result.hint


def test_down_without_its_sequential_passes(tmp_path):
    # The same layers created in the same order, called one by one: the same trained model.
    result, _, _ = _check(tmp_path, [UNWRAPPED])
    assert result.status is Status.PASS, result.summary
