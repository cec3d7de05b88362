"""The fast memorization fit (mltest's lean loop, see test_loop.py) counts exactly the epochs of
a straightforward reference (Lightning's Trainer, the target judged in eval mode after every
epoch: tests/checks/memorization/reference.py), on the bundled examples and on broken variants;
and what it changed around the fit (threads, logging, the Trainer's scratch folder, batched
read-backs) keeps that true.
"""

from __future__ import annotations

import gc
import math
import tempfile

import pytest
import torch

from bench.common import context
from mltest.checks.memorization.fit import read_back, to_floats, train_seed
from mltest.checks.memorization.report import details
from tests.checks.memorization.reference import reference_outcome
from tests.suites import edited_example


def _context(tmp_path, example, edits=(), yaml_edits=()):
    """A memorization context for a copy of `example`, with (old, new) edits applied."""
    return context(edited_example(example, tmp_path, edits, yaml_edits), "memorization")


def _outcome(ctx, settings, seed):
    run, _ = train_seed(ctx, settings, seed)
    if run.met_before_training:
        return None, "init"
    if run.nonfinite:
        return None, "nonfinite"
    return run.epochs, "met" if run.epochs is not None else "budget"


def _assert_same_counts(ctx, settings, seeds=(0, 1, 2)):
    got = {seed: _outcome(ctx, settings, seed) for seed in seeds}
    want = {seed: reference_outcome(ctx, settings, seed) for seed in seeds}
    assert got == want
    return got


@pytest.mark.parametrize(
    "example",
    [
        "tabular",
        "text_classifier",
        pytest.param("image_classifier", marks=pytest.mark.slow),
        # a per-step warm-up schedule from estimated_stepping_batches, dict batches
        pytest.param("transformer_classifier", marks=pytest.mark.slow),
    ],
)
def test_the_examples_count_what_the_reference_counts(tmp_path, example):
    if example == "transformer_classifier":
        pytest.importorskip("transformers")
    ctx, settings = _context(tmp_path, example)
    got = _assert_same_counts(ctx, settings)
    assert all(ending == "met" for _, ending in got.values())


BUGS = {
    "input never reaches the network": (
        [("return self.net(x)", "return self.net(torch.zeros_like(x))")], "budget"),
    "loss always 0": (
        [("cross_entropy(logits, y)", "cross_entropy(logits[:, :1], torch.zeros_like(y))")],
        "init"),
    "NaN loss": (
        [("loss = nn.functional.cross_entropy(logits, y)",
          "loss = nn.functional.nll_loss(torch.log(torch.softmax(logits, 1) - 1), y)")],
        "nonfinite"),
    "NaN gradient, finite loss": (
        [("        return loss\n",
          "        return loss + torch.sqrt(self.net[0].weight.pow(2).sum() * 0)\n")],
        "nonfinite"),
    "learning rate halved": ([("lr: float = 0.01", "lr: float = 0.005")], "met"),
    # eval mode differs from training a lot: the judgement must be the eval-mode one
    "heavy dropout": ([("nn.Dropout(0.1)", "nn.Dropout(0.6)")], "met"),
    "a training loss that blows up after some epochs": (
        [("        return loss\n",
          "        return loss * (1e39 if self.current_epoch >= 3 else 1.0)\n")],
        "nonfinite"),
}  # fmt: skip


@pytest.mark.parametrize("bug", list(BUGS))
def test_broken_variants_count_what_the_reference_counts(tmp_path, bug):
    edits, ending = BUGS[bug]
    ctx, settings = _context(
        tmp_path, "tabular", edits, [("max_epochs: 300", "max_epochs: 40")]
    )
    got = _assert_same_counts(ctx, settings)
    assert {e for _, e in got.values()} == {ending}


def test_several_batches_and_a_metric_target_count_what_the_reference_counts(tmp_path):
    ctx, settings = _context(
        tmp_path, "tabular", yaml_edits=[
            ("    batches: 1", "    batches: 3"),
            ("{loss_below: 0.05}", "{metric: train_acc, at_least: 1.0}"),
        ],
    )  # fmt: skip
    got = _assert_same_counts(ctx, settings)
    assert all(ending == "met" for _, ending in got.values())


def test_a_scheduler_that_monitors_a_logged_value_counts_what_the_reference_counts(tmp_path):
    plateau = (
        "        optimizer = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)\n"
        "        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, patience=0, "
        "factor=0.5)\n"
        "        return {'optimizer': optimizer, 'lr_scheduler': {'scheduler': plateau, "
        "'monitor': 'train_acc'}}\n"
    )
    ctx, settings = _context(
        tmp_path, "tabular",
        [("        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)\n", plateau)],
        [("max_epochs: 300", "max_epochs: 60")],
    )  # fmt: skip
    _assert_same_counts(ctx, settings, seeds=(0, 1))
    run, _ = train_seed(ctx, settings, 0)  # Lightning's own loop ran it, and the report says why
    assert run.loop.startswith("a learning-rate scheduler monitors `train_acc`")
    assert "Trained in Lightning's own fit loop: a learning-rate" in details([run], None, settings)


def test_hooks_still_read_logged_values_and_the_module_gets_its_log_back(tmp_path):
    reads = (
        "    def on_train_epoch_end(self):\n"
        "        self.seen = float(self.trainer.callback_metrics['train_acc'])\n\n"
        "    def configure_optimizers(self):\n"
    )
    hook = [("    def configure_optimizers(self):\n", reads)]
    ctx, settings = _context(tmp_path, "tabular", hook)
    run, _ = train_seed(ctx, settings, 0)
    assert run.epochs == reference_outcome(ctx, settings, 0)[0]
    model = ctx.project.new_model(0)
    assert "log" not in model.__dict__  # a fresh one, for the class's own methods
    assert type(model).log is not None


def test_the_counts_do_not_depend_on_the_callers_thread_count(tmp_path):
    ctx, settings = _context(tmp_path, "tabular")
    before = torch.get_num_threads()
    runs = []
    try:
        for threads in (2, 1):
            torch.set_num_threads(threads)
            runs.append(train_seed(ctx, settings, 0)[0])
            assert torch.get_num_threads() == threads, "the check's thread count leaked"
    finally:
        torch.set_num_threads(before)
    assert runs[0].epochs == runs[1].epochs
    assert runs[0].losses == runs[1].losses


def test_fits_leave_no_folder_in_the_temp_dir(tmp_path, monkeypatch):
    ctx, settings = _context(tmp_path / "project", "tabular")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    for seed in (0, 1, 2):
        train_seed(ctx, settings, seed)
    gc.collect()
    assert list(scratch.iterdir()) == []


def test_what_a_trainer_writes_in_its_scratch_folder_goes_with_it(tmp_path, monkeypatch):
    from mltest.engine import make_trainer

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    ctx, _ = _context(tmp_path / "project", "tabular")
    trainer = make_trainer(ctx.project.new_model(0), {})
    folder = tmp_path / trainer.default_root_dir.rsplit("/", 1)[-1]
    assert not folder.exists()  # only a name until something is written
    folder.mkdir()
    (folder / "written.txt").write_text("x")
    del trainer
    gc.collect()
    assert not folder.exists()


@pytest.mark.parametrize(
    "value",
    [
        torch.tensor(0.1), torch.tensor([0.3], dtype=torch.float64), torch.tensor(1 / 3).half(),
        torch.tensor(0.7).bfloat16(), torch.tensor(True), torch.tensor(7), 0.25, 3,
        torch.tensor(float("nan")), torch.tensor(float("-inf")), torch.tensor([[2.5]]),
    ],
)  # fmt: skip
def test_batched_read_back_gives_the_floats_float_gives(value):
    got = to_floats([torch.tensor(0.5), value, 1.5])
    want = [0.5, float(value), 1.5]
    assert got[0] == want[0] and got[2] == want[2]
    assert got[1] == want[1] or (math.isnan(got[1]) and math.isnan(want[1]))
    assert type(got[1]) is float
    if isinstance(value, torch.Tensor):  # the one copy a GPU's values take (CPU ones need none)
        batched = read_back([torch.tensor(0.5), value])
        assert batched[0] == 0.5 and type(batched[1]) is float
        assert batched[1] == want[1] or (math.isnan(batched[1]) and math.isnan(want[1]))


def test_batched_read_back_refuses_what_float_refuses():
    with pytest.raises((ValueError, RuntimeError)):
        to_floats([torch.tensor([1.0, 2.0])])
    with pytest.raises((ValueError, RuntimeError)):
        read_back([torch.tensor([1.0, 2.0])])


@pytest.mark.parametrize("hold", [1, 3])
def test_a_manual_optimization_gan_judged_by_validation_step_counts_what_the_reference_counts(
    tmp_path, hold
):
    # Two optimizers stepped in training_step; the target is a metric validation_step logs,
    # and must hold `hold` judgements in a row (seed 1: 23 epochs with 1, 55 with 3).
    ctx, settings = _context(tmp_path, "gan", yaml_edits=[("hold: 3", f"hold: {hold}")])
    got = _assert_same_counts(ctx, settings, seeds=(0, 1))
    assert all(ending == "met" for _, ending in got.values())
    assert got[1][0] == {1: 23, 3: 55}[hold]
