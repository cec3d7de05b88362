"""A count far below the baseline is a finding, not a gain: it fails with the causes measured.

On the real tabular example: a learning rate raised tenfold memorizes 4-5x faster and fails;
the label-leak probe names an input element copied from the label, on the example's own model
and batch, and finds none in the unchanged example.
"""

from __future__ import annotations

import pytest

from mltest.checks.memorization import Settings
from mltest.checks.memorization.decide import decide
from mltest.checks.memorization.evidence import (
    fixed_by_target,
    idle_norms,
    leak_probe,
    lr_fact,
    norm_fact,
)
from mltest.checks.memorization.seed_run import SeedRun
from mltest.report import Status
from mltest.supervisor import run_suite
from tests.checks.wording import assert_protects_baseline
from tests.suites import copy_example, edited_example


def test_a_raised_learning_rate_fails_as_much_faster_with_the_rate_measured(tmp_path):
    config = copy_example("tabular", tmp_path)
    recorded = run_suite(config, tmp_path / "r0", update_baselines=True, only=["memorization"])
    assert recorded.checks[0].status is Status.PASS, recorded.checks[0].summary
    config.write_text(config.read_text().replace("lr: 0.01", "lr: 0.1"))
    result = run_suite(config, tmp_path / "r1", only=["memorization"]).checks[0]
    assert result.status is Status.FAIL, result.summary
    assert result.metrics["failure"] == "much faster"
    assert "faster than the baseline of 14" in result.summary
    assert "a finding to explain" in result.summary
    assert (
        "optimizer 0 (Adam) group 0 (all parameters) starts at lr 0.1, 10x the baseline's 0.01 "
        "— set at model.py:36 in configure_optimizers"
    ) in result.hint
    assert "the leak probe found no input element fixed by the loss target" in result.hint
    assert "gain to lock in" not in result.hint
    assert result.hint.index("label leak") < result.hint.index("baseline update")
    assert_protects_baseline(result.hint)


def _example_model_and_batch(tmp_path, edits=()):
    """The tabular example's fresh model and first 64 training rows, from its edited files
    (loaded by path: another test's `data` module may already sit in sys.modules)."""
    import importlib.util

    config = edited_example("tabular", tmp_path, edits)

    def load(name):
        spec = importlib.util.spec_from_file_location(f"leak_{name}", config.parent / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    data = load("data").TabularDataModule()
    data.setup()
    return load("model").TabularMLP(), data.train[:64]


LEAK = "        x = torch.cat([x[:, :5], nn.functional.one_hot(y, 3).float() * 3], 1)\n"


def test_the_leak_probe_names_input_elements_copied_from_the_label(tmp_path):
    model, batch = _example_model_and_batch(
        tmp_path, [("        logits = self(x)\n", LEAK + "        logits = self(x)\n")]
    )
    found = leak_probe(model, batch)
    assert found.startswith(
        "label leak: input 0 of `TabularMLP` has element(s) x[:, 5], x[:, 6], x[:, 7] "
    )
    assert "on all 64 examples" in found


def test_the_leak_probe_finds_nothing_in_the_unchanged_example(tmp_path):
    model, batch = _example_model_and_batch(tmp_path)
    assert leak_probe(model, batch) == ""


def test_a_value_target_copied_into_the_input_is_a_leak():
    import torch

    x = torch.randn(16, 4)
    y = torch.randn(16)
    x[:, 2] = 0.5 * y + 1
    assert fixed_by_target(x, y) == [2]
    assert fixed_by_target(torch.randn(16, 4), y) == []
    assert fixed_by_target(x, torch.randint(0, 3, (16, 8))) is None  # a target per position


@pytest.mark.parametrize(
    ("epochs", "baseline", "status", "failure"),
    [
        ((3, 3, 3), 10, Status.FAIL, "much faster"),  # 3.3x and 7 epochs below
        ((4, 4, 4), 10, Status.PASS, None),  # 2.5x: within faster_limit, a notice
        ((1, 1, 1), 3, Status.PASS, None),  # 3x but 2 epochs: within the epoch tolerance
    ],
)
def test_faster_limit_with_the_epoch_tolerance(epochs, baseline, status, failure):
    runs = [SeedRun(seed=i, epochs=e, initial_loss=1.0) for i, e in enumerate(epochs)]
    got, summary, hint, notices, kind = decide(
        runs, {"median": baseline}, Settings(), "cpu", [], "CMD"
    )
    assert got is status, summary
    assert (kind.value if kind else None) == failure
    if status is Status.PASS:
        assert "check for a label leak or a raised learning rate before recording" in notices[0]
    off = decide(runs, {"median": baseline}, Settings(faster_limit=None), "cpu", [], "CMD")
    assert off[0] is Status.PASS


def test_measured_facts_compare_with_what_the_baseline_recorded():
    base = {"learning_rates": [0.01], "idle_norms": []}
    assert "not the cause" in lr_fact([0.01], base)
    assert "0.001 (0.1x the baseline's)" in lr_fact([0.001], base)
    assert "predates recording it" in lr_fact([0.01], {})
    idle = ["bn (BatchNorm1d, eval mode)"]
    assert norm_fact(idle, base) == (
        "normalisation layer(s) not training: bn (BatchNorm1d, eval mode) (not so in the "
        "baseline)"
    )
    assert norm_fact(idle, {"idle_norms": idle}) == ""


def test_normalisation_layers_in_eval_mode_or_frozen_are_named():
    from torch import nn

    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.LayerNorm(4), nn.GroupNorm(2, 4))
    model[1].eval()
    model[2].requires_grad_(False)
    assert idle_norms(model) == ["1 (BatchNorm1d, eval mode)", "2 (LayerNorm, frozen)"]


def test_batch_norm_put_in_eval_mode_in_training_step_is_named_in_the_slower_hint(tmp_path):
    # The image example's BatchNorm layers switched to eval mode inside training_step: learning
    # slows down (about 20 epochs instead of 12), and the hint names the layers it measured.
    edit = (
        "        logits = self(x)\n",
        "        for m in self.modules():\n"
        "            if isinstance(m, nn.BatchNorm2d):\n"
        "                m.eval()\n"
        "        logits = self(x)\n",
    )
    config = edited_example("image_classifier", tmp_path, [edit])
    report = run_suite(config, tmp_path / "r", only=["memorization"])
    (result,) = [c for c in report.checks if c.name == "memorization"]
    assert result.status is Status.FAIL, result.summary
    assert result.metrics["failure"] == "slower"
    assert (
        "normalisation layer(s) not training: features.1 (BatchNorm2d, eval mode), "
        "features.5 (BatchNorm2d, eval mode)" in result.hint
    )
    assert_protects_baseline(result.hint)
