"""Inputs that differ from the golden's only in their last bits (another CPU's rounding) are
the same inputs; a real change to the data path, however small in bytes, still is not.

The rounding case is made the way it arises: every float moved by one unit in the last place,
as a data module's arithmetic does on a CPU with other vector units."""

from __future__ import annotations

import numpy as np
import pytest

from mltest.checks.regression.input_sketch import same_up_to_rounding, sketch
from mltest.report import Status
from tests.checks.regression.test_regression import edit, regression
from tests.suites import copy_example

FEATURES = np.random.default_rng(0).standard_normal((20, 8)).astype(np.float32)


def _last_bits(x: np.ndarray) -> np.ndarray:
    """Every other value one unit in the last place up, the rest one down."""
    up = np.nextafter(x, np.float32(np.inf))
    down = np.nextafter(x, np.float32(-np.inf))
    return np.where(np.arange(x.size).reshape(x.shape) % 2 == 0, up, down).astype(np.float32)


def _real_changes() -> dict[str, np.ndarray]:
    swapped = FEATURES.copy()
    swapped[[3, 4]] = swapped[[4, 3]]
    return {
        "two examples swapped": swapped,
        "a normalisation constant off by 1e-3": FEATURES - np.float32(1e-3),
        "rescaled by 1.0001": FEATURES * np.float32(1.0001),
        "one value changed": np.where(np.arange(160).reshape(20, 8) == 77, 0.0, FEATURES).astype(
            np.float32
        ),
    }


def test_rounding_in_the_last_bits_is_the_same_inputs():
    recorded = sketch({"x": FEATURES, "ids": np.arange(20)})
    assert same_up_to_rounding(recorded, {"x": _last_bits(FEATURES), "ids": np.arange(20)})


@pytest.mark.parametrize("change", sorted(_real_changes()))
def test_real_changes_are_not_rounding(change):
    recorded = sketch({"x": FEATURES})
    assert not same_up_to_rounding(recorded, {"x": _real_changes()[change]})


def test_integer_inputs_and_layout_are_compared_exactly():
    recorded = sketch({"x": FEATURES, "ids": np.arange(20)})
    assert not same_up_to_rounding(recorded, {"x": FEATURES, "ids": np.arange(1, 21)})
    assert not same_up_to_rounding(recorded, {"x": FEATURES.reshape(40, 4), "ids": np.arange(20)})
    assert not same_up_to_rounding(recorded, {"x": FEATURES})


def test_a_damaged_sketch_counts_as_changed_inputs_not_a_crash():
    recorded = sketch({"x": FEATURES})
    for damaged in ({"x": "oops"}, {"x": {**recorded["x"], "sums": ["a"] * 6}},
                    {"x": {**recorded["x"], "sums": None}}):  # fmt: skip
        assert not same_up_to_rounding(damaged, {"x": FEATURES})


def test_the_check_passes_on_rounded_inputs_with_a_notice_and_fails_on_a_swap(tmp_path):
    config = copy_example("tabular", tmp_path)
    np.savez(config.parent / "inputs.npz", x=FEATURES)
    edit(
        config,
        ("source: train, epochs: 3", "source: init, epochs: 3"),
        ("inputs: {source: datamodule, examples: 64}", "inputs: {file: inputs.npz}"),
    )
    assert regression(config, tmp_path, update=True).status is Status.PASS

    np.savez(config.parent / "inputs.npz", x=_last_bits(FEATURES))
    result = regression(config, tmp_path)
    assert result.status is Status.PASS, result.summary
    assert any("only by float rounding" in n for n in result.notices), result.notices

    np.savez(config.parent / "inputs.npz", x=_real_changes()["two examples swapped"])
    result = regression(config, tmp_path)
    assert result.status is Status.FAIL and "the fixed inputs changed" in result.summary
