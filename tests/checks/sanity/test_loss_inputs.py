"""What a log-softmax loss receives, on the real GRU classifier: probabilities fed to
cross_entropy (a softmax applied twice), log_softmax over the batch axis, raw scores or
probabilities fed to nll_loss are named with the loss call's file:line; scores and
log-probabilities over the class axis pass."""

from __future__ import annotations

import pytest
import torch

from mltest.checks.sanity.probes.loss_inputs import judge, read
from mltest.report import Status
from tests.checks.sanity.models import SEQ_DATA, SEQ_MODEL
from tests.checks.sanity.test_probes import run_check
from tests.suites import write_suite

LOSS = "loss = F.cross_entropy(logits, y)"
CASE = "what the loss receives"


def _run(tmp_path, old, new, **top):
    assert old in SEQ_MODEL
    config = write_suite(
        tmp_path, model_src=SEQ_MODEL.replace(old, new), data_src=SEQ_DATA,
        model="model:SeqModel", data="data:SeqData",
        checks={"sanity": {"gradient_check": False, "units": False}}, **top,
    )  # fmt: skip
    result = run_check(config, update=True)
    line = next(
        n for n, text in enumerate(SEQ_MODEL.replace(old, new).splitlines(), 1) if "loss = " in text
    )
    return result, f"model.py:{line} in training_step"


@pytest.mark.parametrize(
    "old, new",
    [(LOSS, LOSS), (LOSS, "loss = F.nll_loss(F.log_softmax(logits, dim=1), y)"),
     (LOSS, "loss = F.cross_entropy(torch.log_softmax(logits, -1), y)")],
    ids=["logits", "log-softmax-then-nll", "log-softmax-then-cross-entropy"],
)  # fmt: skip
def test_scores_and_class_log_probabilities_pass(tmp_path, old, new):
    result, where = _run(tmp_path, old, new)
    assert result.status is Status.PASS, result.summary
    assert next(c for c in result.cases if c.name == CASE).status is Status.PASS
    assert f"at {where}: [16, 4]" in result.details


@pytest.mark.parametrize(
    "old, new, words, cause",
    [
        ("return self.head(self.norm(pooled))",
         "return torch.softmax(self.head(self.norm(pooled)), dim=1)",
         "receives probabilities: its input [16, 4] (values", "softmax applied twice"),
        (LOSS, "loss = nn.CrossEntropyLoss()(F.softmax(logits, dim=-1), y)",
         "sums to 1 along axis 1 (the class axis)", "softmax applied twice"),
        (LOSS, "loss = F.nll_loss(F.log_softmax(logits, dim=0), y)",
         "receives log-probabilities normalised over axis 0, not over the class axis 1",
         "normalised over the wrong axis"),
        (LOSS, "loss = F.nll_loss(logits, y)", "receives raw scores, not log-probabilities",
         "raw scores given to nll_loss"),
        (LOSS, "loss = F.nll_loss(F.softmax(logits, dim=1), y)",
         "receives probabilities, not log-probabilities", "softmax where log_softmax was meant"),
        ("return self.head(self.norm(pooled))",
         "return torch.relu(self.head(self.norm(pooled)))",
         "receives scores that are all non-negative", "activation before the loss"),
    ],
    ids=["softmax-in-forward", "softmax-into-module", "log-softmax-over-batch", "nll-on-scores",
         "nll-on-probabilities", "relu-on-logits"],
)  # fmt: skip
def test_what_the_loss_receives_is_named_with_the_call(tmp_path, old, new, words, cause):
    result, where = _run(tmp_path, old, new)
    assert result.status is Status.FAIL
    case = next(c for c in result.cases if c.name == CASE)
    assert case.status is Status.FAIL and words in case.message, case.message
    assert f"at {where}" in case.message
    assert cause in result.details


def test_read_tells_the_axis_a_tensor_is_normalised_over():
    scores = torch.randn(6, 3, 5)
    assert read("cross_entropy", scores).kind is None
    assert (read("nll_loss", scores.log_softmax(1)).kind, read("nll_loss", scores).axis) == (
        "log-probabilities", None)  # fmt: skip
    probs = read("cross_entropy", scores.softmax(2))
    assert (probs.kind, probs.axis, probs.class_axis) == ("probabilities", 2, 1)
    assert read("cross_entropy", torch.randn(5)).class_axis == 0
    # not finite: the finite-values finding names it, this probe stays quiet
    assert judge([read("nll_loss", torch.full((4, 3), float("nan")))]) == []


@pytest.mark.gpu
def test_a_softmax_applied_twice_is_named_on_cuda(tmp_path):
    result, where = _run(
        tmp_path, "return self.head(self.norm(pooled))",
        "return torch.softmax(self.head(self.norm(pooled)), dim=1)",
        trainer={"accelerator": "gpu", "devices": 1},
    )  # fmt: skip
    assert result.metrics["environment"].startswith("cuda-")
    case = next(c for c in result.cases if c.name == CASE)
    assert case.status is Status.FAIL and f"`cross_entropy` at {where} receives probabilities" in (
        case.message
    )
