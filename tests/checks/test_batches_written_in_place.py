"""A training_step that writes into its batch (`x /= 255`, token ids masked in place) is
harmless under a data loader, which gives every step new tensors. The checks reuse fixed
batches, so each step and each judgement must get the batch as the data gave it: the same
epoch counts, losses and sanity verdict as a training_step that scales a copy."""

from __future__ import annotations

import pytest

from mltest.report import Status
from mltest.supervisor import run_suite
from tests.suites import edited_example

STEP = "        x, y = batch\n        logits = self(x)"
SCALED_COPY = "        x, y = batch\n        x = x * 1.5\n        logits = self(x)"
SCALED_IN_PLACE = "        x, y = batch\n        x.mul_(1.5)\n        logits = self(x)"


# A transfer hook takes the lean loop's other path to the device (Lightning's own calls).
HOOK = (
    "    def training_step(self, batch, batch_idx):",
    "    def on_after_batch_transfer(self, batch, dataloader_idx):\n"
    "        return batch\n\n"
    "    def training_step(self, batch, batch_idx):",
)


def _checks(tmp_path, step: str, hook: bool) -> dict:
    config = edited_example("tabular", tmp_path, edits=[(STEP, step), *([HOOK] if hook else [])])
    report = run_suite(config, tmp_path / "report", only=["memorization", "sanity"])
    return {c.name: c for c in report.checks}


@pytest.mark.parametrize("hook", [False, True], ids=["plain batches", "transfer hook"])
def test_a_step_that_scales_its_batch_in_place_trains_as_one_that_scales_a_copy(tmp_path, hook):
    copy = _checks(tmp_path / "copy", SCALED_COPY, hook)
    in_place = _checks(tmp_path / "in-place", SCALED_IN_PLACE, hook)
    # Before: every epoch and every judgement scaled the fixed batch once more (counts 5, 6,
    # 4 instead of 14, 14, 13), and sanity's gradient check, which calls training_step several
    # times on one batch, reported "the gradient is wrong".
    for name in ("memorization", "sanity"):
        assert in_place[name].status is Status.PASS, in_place[name].summary
        assert copy[name].status is Status.PASS, copy[name].summary
    assert in_place["memorization"].metrics["epochs"] == copy["memorization"].metrics["epochs"]
    assert (in_place["memorization"].metrics["loss_curves"]
            == copy["memorization"].metrics["loss_curves"])  # fmt: skip
    assert in_place["sanity"].summary == copy["sanity"].summary
