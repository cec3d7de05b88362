"""The loss-growth probe on a real SGD regressor: a learning rate 100x too high and raw
(unnormalised) inputs each make the loss explode over the steps on the same batch, named with
the step, the learning rate and the likelier cause; the healthy model passes."""

from __future__ import annotations

import pytest

from mltest.report import Status
from tests.checks.sanity.models import REGRESSOR, REGRESSOR_DATA
from tests.checks.sanity.test_probes import run_check
from tests.suites import write_suite


def _run(tmp_path, lr="0.05", scale="1.0"):
    config = write_suite(
        tmp_path, model_src=REGRESSOR.replace("lr=0.05", f"lr={lr}"),
        data_src=REGRESSOR_DATA.replace("scale=1.0", f"scale={scale}"), model="model:Regressor",
        checks={"sanity": {}},
    )  # fmt: skip
    return run_check(config, update=True)


def test_the_healthy_regressor_passes(tmp_path):
    result = _run(tmp_path)
    assert result.status is Status.PASS, result.summary
    case = next(c for c in result.cases if c.name == "loss does not explode")
    assert case.status is Status.PASS


@pytest.mark.parametrize(
    "lr, scale, words, cause",
    [
        ("5.0", "1.0", "learning rate(s) 5", "learning rate too high"),
        ("0.05", "1000.0", "the inputs reach 3.41e+03 (batch[0])", "inputs not normalised"),
    ],
    ids=["lr-x100", "raw-inputs"],
)
def test_an_exploding_loss_is_named_with_its_step_and_cause(tmp_path, lr, scale, words, cause):
    result = _run(tmp_path, lr, scale)
    assert result.status is Status.FAIL
    assert "the loss explodes over the steps on the same batch" in result.summary
    assert words in result.summary and "the model has no normalisation layer" in result.summary
    assert cause in result.details
