"""Who raised: a step returning Lightning's documented dict idiom works in every check, an
exception in the model code is the model code's ("the model code raised ... at model.py:N"),
and one whose failing frame is mltest's own is an internal error of mltest ("please report
it", exit 2, with the mltest frame), never blamed on the model.

The suites run for real: a supervisor and its worker process on the bundled tabular example.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import mltest
from mltest.errors import internal_frame, raised
from mltest.report import Status, Verdict
from mltest.supervisor import run_suite
from tests.suites import edited_example

RETURN = "        return loss\n\n    def predict_step"


def by_name(report):
    return {c.name: c for c in report.checks}


# Lightning's documented idiom (predictions next to the loss) and UNet's dict of logs.
RETURNED = '{"loss": loss, "preds": logits.argmax(1), "log": {"train_loss": loss}}'


def test_a_step_returning_a_dict_of_non_scalars_passes_every_check(tmp_path):
    """Against the example's committed baselines: the returned extras change nothing."""
    config = edited_example(
        "tabular", tmp_path, [(RETURN, RETURN.replace("loss\n", f"{RETURNED}\n", 1))]
    )
    report = run_suite(config, tmp_path / "report")
    assert report.verdict is Verdict.PASS, [(c.name, c.summary) for c in report.checks]
    assert by_name(report)["memorization"].summary.startswith("memorized in 14 epochs")


def test_a_metric_target_on_a_returned_tensor_names_what_it_is(tmp_path):
    config = edited_example(
        "tabular",
        tmp_path,
        [(RETURN, RETURN.replace("loss\n", '{"loss": loss, "preds": logits.argmax(1)}\n', 1))],
        [("target: {loss_below: 0.05}", "target: {metric: preds, at_least: 1.0}")],
    )
    result = by_name(run_suite(config, tmp_path / "report", only=["memorization"]))
    memorization = result["memorization"]
    assert memorization.status is Status.ERROR
    assert "returned it as a Tensor of shape (64,), not one number" in memorization.summary


# Appended to the tabular example's model.py, imported in the worker: it breaks a function of
# mltest's own, so the next call fails in mltest's frame (as a bug of mltest's would).
BREAK_MLTEST = """

import mltest.checks.memorization.fit as _fit

_fit.to_floats = None
"""

RAISE_IN_STEP = ("        x, y = batch\n", "        x, y = batch\n        y = {}['labels']\n")


def test_an_error_in_mltest_is_reported_as_mltest_s_not_the_model_s(tmp_path):
    config = edited_example("tabular", tmp_path)
    model = config.parent / "model.py"
    model.write_text(model.read_text() + BREAK_MLTEST)
    report = run_suite(config, tmp_path / "report", only=["memorization", "sanity"])
    assert report.verdict is Verdict.ERROR and report.verdict.exit_code == 2
    result = by_name(report)["memorization"]
    assert result.status is Status.ERROR
    assert result.summary.startswith("memorization: an internal error in mltest: TypeError")
    assert "(at mltest/checks/memorization/fit.py:" in result.summary
    assert "in evaluate); please report it" in result.summary
    assert "model code" not in result.summary
    assert "bug in mltest, not in the model code" in result.hint
    assert "/mltest/checks/memorization/fit.py" in result.details  # the traceback
    assert by_name(report)["sanity"].status is Status.PASS  # the other checks still ran


def test_an_error_in_the_model_code_is_the_model_code_s(tmp_path):
    config = edited_example("tabular", tmp_path, [RAISE_IN_STEP])
    report = run_suite(config, tmp_path / "report", only=["memorization"])
    result = by_name(report)["memorization"]
    assert result.status is Status.ERROR and report.verdict.exit_code == 2
    assert result.summary == (
        "memorization: the model code raised KeyError: 'labels' (at model.py:26 in training_step)"
    )
    assert "mltest" not in result.hint


# --- which frame decides ---------------------------------------------------------------------


def _raise_from(path: Path, body: str) -> BaseException:
    """The exception `body` raises when run as code of the file at `path`."""
    source = "def failing():\n" + "".join(f"    {line}\n" for line in body.splitlines())
    namespace = {"torch": torch}
    exec(compile(source, str(path), "exec"), namespace)
    try:
        namespace["failing"]()
    except Exception as exc:
        return exc
    raise AssertionError("did not raise")


MLTEST_FILE = Path(mltest.__file__).parent / "checks" / "imagined.py"


@pytest.mark.parametrize(
    ("path", "body", "internal"),
    [
        (MLTEST_FILE, "float(torch.ones(3))", True),  # mltest's own line
        (MLTEST_FILE, "torch.cat([])", True),  # inside torch, called by mltest
        (Path("/repo/model.py"), "torch.cat([])", False),  # inside torch, called by the model
        (Path("/venv/site-packages/transformers/x.py"), "torch.cat([])", False),  # its library
    ],
)
def test_the_failing_frame_decides_who_raised(path, body, internal):
    exc = _raise_from(path, body)
    assert bool(internal_frame(exc)) is internal
    expected = "an internal error in mltest" if internal else "the model code raised"
    assert raised(exc).startswith(expected)
    if internal:
        assert internal_frame(exc) == f" (at mltest{os.sep}checks{os.sep}imagined.py:2 in failing)"


def test_an_error_the_model_raises_through_a_probe_s_torch_function_mode_is_the_model_s():
    # The sanity check's loss-input probe watches every torch call of the step; a model's own
    # error (a second backward through a freed graph, here an empty cat) passes through its
    # `return func(...)` and stays the model's.
    from mltest.checks.sanity.probes.loss_inputs import _LossCalls

    with _LossCalls([], []):
        exc = _raise_from(Path("/repo/model.py"), "torch.cat([])")
    assert internal_frame(exc) == ""
    assert raised(exc).startswith("the model code raised ValueError") and "model.py:2" in (
        raised(exc)
    )
