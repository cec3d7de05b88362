"""The memorization check on the real tabular example, and on broken variants of its model.

Each variant is an edit to the example's model.py, as a pull request would make it; the
example's committed baseline is what the edited model is compared with.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from mltest.checks.memorization import Settings
from mltest.checks.memorization.decide import decide
from mltest.checks.memorization.seed_run import SeedRun
from mltest.report import Status
from mltest.supervisor import run_suite
from tests.checks.wording import assert_protects_baseline
from tests.suites import copy_example, edited_example


def run_memorization(tmp_path, edits=(), yaml_edits=()):
    """Copy the tabular example, apply (old, new) edits to model.py / mltest.yaml, run it."""
    config = edited_example("tabular", tmp_path, edits, yaml_edits)
    report = run_suite(config, tmp_path / "report", only=["memorization"])
    return report, report.checks[0]


def test_the_example_memorizes_within_its_baseline(tmp_path):
    report, result = run_memorization(tmp_path)
    assert result.status is Status.PASS, result.summary
    assert report.verdict.exit_code == 0
    assert result.metrics["median_epochs"] == result.metrics["baseline_epochs"]


def test_a_rerun_gives_the_same_epoch_counts(tmp_path):
    _, first = run_memorization(tmp_path / "a")
    _, second = run_memorization(tmp_path / "b")
    assert first.metrics["epochs"] == second.metrics["epochs"]
    assert first.metrics["loss_curves"] == second.metrics["loss_curves"]


def test_renaming_submodules_is_harmless(tmp_path):
    _, result = run_memorization(tmp_path, [("self.net", "self.layers")])
    assert result.status is Status.PASS, result.summary


def test_fewer_cpu_threads_is_harmless(tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _, result = run_memorization(tmp_path)
    finally:
        torch.set_num_threads(threads)
    assert result.status is Status.PASS, result.summary


BROKEN = {
    "input never reaches the network": (
        [("return self.net(x)", "return self.net(torch.zeros_like(x))")],
        "could not memorize",
    ),
    "cross-entropy over one output (loss always 0)": (
        [("cross_entropy(logits, y)", "cross_entropy(logits[:, :1], torch.zeros_like(y))")],
        "already met before any training",
    ),
    "log of a negative probability (NaN)": (
        [
            (
                "loss = nn.functional.cross_entropy(logits, y)",
                "loss = nn.functional.nll_loss(torch.log(torch.softmax(logits, 1) - 1), y)",
            )
        ],
        "became nan",
    ),
    "a gradient that is NaN while the loss is finite (sqrt at 0)": (
        [
            (
                "        return loss\n",
                "        return loss + torch.sqrt(self.net[0].weight.pow(2).sum() * 0)\n",
            )
        ],
        "non-finite weights in net.0.weight",
    ),
}


@pytest.mark.parametrize("bug", list(BROKEN))
def test_broken_models_fail(tmp_path, bug):
    edits, expected = BROKEN[bug]
    report, result = run_memorization(
        tmp_path, edits, yaml_edits=[("max_epochs: 300", "max_epochs: 40")]
    )
    assert result.status is Status.FAIL
    assert expected in result.summary
    assert report.verdict.exit_code == 1
    assert_protects_baseline(result.hint)


def test_a_learning_rate_bug_is_caught_as_slower_than_baseline(tmp_path):
    _, result = run_memorization(tmp_path, yaml_edits=[("lr: 0.01", "lr: 0.005")])
    assert result.status is Status.FAIL
    assert "slower than the baseline of 14" in result.summary
    assert "mltest baseline update --config" in result.hint
    assert "the learning rate is 0.005" in result.hint  # measured, for a person to compare
    assert_protects_baseline(result.hint)


def test_missing_baseline_fails_and_names_the_command(tmp_path):
    config = copy_example("tabular", tmp_path)
    (config.parent / ".mltest" / "baselines.json").unlink()
    result = run_suite(config, tmp_path / "report", only=["memorization"]).checks[0]
    assert result.status is Status.FAIL
    assert "no baseline is recorded for cpu-torch" in result.summary
    assert "mltest baseline update --config" in result.hint


def test_baseline_update_records_counts_and_keeps_history(tmp_path):
    config = copy_example("tabular", tmp_path)
    text = config.read_text().replace("lr: 0.01", "lr: 0.005")
    config.write_text(text)
    report = run_suite(config, tmp_path / "r", update_baselines=True, only=["memorization"])
    assert report.checks[0].status is Status.PASS
    assert "(was 14)" in report.checks[0].summary
    rerun = run_suite(config, tmp_path / "r2", only=["memorization"]).checks[0]
    assert rerun.status is Status.PASS
    assert rerun.metrics["baseline_history"] == [14]


def test_the_check_leaves_global_state_as_it_found_it(tmp_path):
    torch.manual_seed(123)
    random.seed(5)
    np.random.seed(7)
    expected = (torch.rand(3), random.random(), np.random.rand())
    torch.manual_seed(123)
    random.seed(5)
    np.random.seed(7)
    deterministic = torch.are_deterministic_algorithms_enabled()
    run_memorization(tmp_path)
    assert torch.are_deterministic_algorithms_enabled() == deterministic
    after = (torch.rand(3), random.random(), np.random.rand())
    assert torch.equal(after[0], expected[0]) and after[1:] == expected[1:]


# --- the decision itself, table-driven ----------------------------------------------------------


def runs(*epochs):
    return [
        SeedRun(seed=i, epochs=e, initial_loss=1.0, final_loss=0.01) for i, e in enumerate(epochs)
    ]


@pytest.mark.parametrize(
    ("epochs", "baseline", "status", "notice"),
    [
        ((10, 10, 10), 10, Status.PASS, False),
        ((12, 12, 12), 10, Status.PASS, False),  # +2 epochs: inside the epoch tolerance
        ((13, 13, 13), 10, Status.FAIL, False),  # +30% and +3 epochs: both limits exceeded
        ((5, 5, 5), 4, Status.PASS, False),  # +25%... but only +1 epoch
        ((7, 7, 7), 4, Status.FAIL, False),  # +75% and +3 epochs
        ((5, 40, 6), 5, Status.PASS, False),  # one slow seed does not move the median
        ((4, 4, 4), 10, Status.PASS, True),  # much faster: a notice, not a failure
    ],
)
def test_decide_applies_the_tolerance_to_the_median(epochs, baseline, status, notice):
    got, summary, _, notices, _ = decide(
        runs(*epochs), {"median": baseline}, Settings(), "cpu", [], "mltest baseline update"
    )
    assert got is status, summary
    assert bool(notices) is notice


def test_decide_names_other_environments_when_this_one_has_no_baseline():
    status, summary, hint, _, _ = decide(
        runs(3, 3, 3), None, Settings(), "cuda-torch2.13-32-true", ["cpu-torch2.13-32-true"], "CMD"
    )
    assert status is Status.ERROR  # another environment, not a model bug: exit 2
    assert "cuda-torch2.13-32-true" in summary and "cpu-torch2.13-32-true" in summary
    assert "CMD" in hint


def test_decide_reports_a_seed_that_never_memorized():
    stuck = runs(5, 5) + [SeedRun(seed=9, epochs=None, initial_loss=1.0, final_loss=0.7)]
    status, summary, _, _, _ = decide(stuck, {"median": 5}, Settings(), "cpu", [], "CMD")
    assert status is Status.FAIL
    assert "on 1 of 3 seeds (the baseline allows 0): seed 9: loss 0.7" in summary


def test_seeds_in_forked_workers_give_the_sequential_counts(tmp_path):
    _, sequential = run_memorization(tmp_path / "a")
    _, parallel = run_memorization(
        tmp_path / "b", yaml_edits=[("    batches: 1", "    batches: 1\n    workers: 2")]
    )
    assert parallel.status is Status.PASS, parallel.summary
    assert parallel.metrics["epochs"] == sequential.metrics["epochs"]
    assert parallel.metrics["seeds"] == [0, 1, 2]


def test_an_exception_in_a_worker_names_the_users_line(tmp_path):
    step = "        x, y = batch\n"
    report, result = run_memorization(
        tmp_path,
        [(step, step + "        raise RuntimeError('boom')\n")],
        yaml_edits=[("    batches: 1", "    batches: 1\n    workers: 2")],
    )
    assert result.status is Status.ERROR
    assert "raised RuntimeError: boom (at model.py:26 in training_step)" in result.summary
    assert "worker process for 0" in result.summary
