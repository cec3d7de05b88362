"""The fixed-input prediction regression check, on real tiny models and broken variants.

Each test records golden outputs for a project (as `mltest baseline update --check regression`
would), then edits the project as a pull request would and runs the check again.
"""

from __future__ import annotations

import json
import shutil
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch

from mltest.compare import Tolerance, compare_outputs
from mltest.config import load_config
from mltest.errors import ConfigError
from mltest.report import Status
from mltest.runner import run_suite
from tests.suites import EXAMPLES, copy_example, forget_project_modules, write_suite

# --- helpers ---------------------------------------------------------------------------------


def edit(path, *changes):
    text = path.read_text()
    for old, new in changes:
        assert old in text, f"edit target {old!r} not in {path.name}"
        text = text.replace(old, new)
    path.write_text(text)


def regression(config, tmp_path, *, update=False):
    """Run only the regression check, in a fresh import of the project; return its result."""
    forget_project_modules(config.parent)
    report = run_suite(
        config,
        tmp_path / f"report-{time.monotonic_ns()}",
        update_baselines=update,
        only=["regression"],
    )
    assert not report.errors, report.errors
    return next(c for c in report.checks if c.name == "regression")


def tabular(tmp_path, source="init", settings="inputs: {source: datamodule, examples: 64}"):
    """The tabular example with the regression check on `source`, golden recorded."""
    config = copy_example("tabular", tmp_path)
    text = config.read_text()
    text = text.replace(
        "model_under_test: {source: train, epochs: 3, seed: 0}",
        f"model_under_test: {{source: {source}, epochs: 2, seed: 0}}",
    )
    text = text.replace("inputs: {source: datamodule, examples: 64}", settings)
    config.write_text(text)
    recorded = regression(config, tmp_path, update=True)
    assert recorded.status is Status.PASS, recorded.summary
    return config


# --- harmless changes pass -------------------------------------------------------------------


def test_a_plain_rerun_passes_and_the_golden_record_is_pickle_free(tmp_path):
    config = tabular(tmp_path)
    result = regression(config, tmp_path)
    assert result.status is Status.PASS, result.summary
    assert result.metrics["moved"] == 0 and result.metrics["values"] == 64 * 3
    golden = config.parent / ".mltest" / "golden"
    from safetensors.numpy import load_file

    assert load_file(str(golden / "regression.safetensors"))["output"].shape == (64, 3)
    meta = json.loads((golden / "regression.json").read_text())
    assert {"torch", "lightning", "device", "precision"} <= set(meta["environment"])
    assert meta["inputs"]["hash"].startswith("sha256:") and meta["inputs"]["examples"] == 64
    assert meta["outputs"]["output"]["dtype"] == "float32" and meta["recorded"]
    # Other checks' baselines are untouched by the regression update.
    committed = EXAMPLES / "tabular" / ".mltest" / "baselines.json"
    assert (config.parent / ".mltest" / "baselines.json").read_text() == committed.read_text()


def test_renamed_submodules_pass(tmp_path):
    # Same creation order, so the seeded fresh init gives the same weights under new names.
    config = tabular(tmp_path)
    edit(config.parent / "model.py", ("self.net", "self.layers"))
    result = regression(config, tmp_path)
    assert result.status is Status.PASS, result.summary


def test_a_different_inference_batch_size_passes(tmp_path):
    config = tabular(tmp_path, settings="inputs: {examples: 64}\n    batch_size: 64")
    edit(config, ("batch_size: 64\n", "batch_size: 7\n"))
    result = regression(config, tmp_path)
    assert result.status is Status.PASS, result.summary
    assert "batch size 7" in result.metrics["inputs"]


@pytest.mark.slow
def test_fewer_cpu_threads_pass_on_a_trained_model(tmp_path):
    config = tabular(tmp_path, source="train")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = regression(config, tmp_path)
    finally:
        torch.set_num_threads(threads)
    assert result.status is Status.PASS, result.summary


def test_another_device_or_torch_version_is_a_notice_when_tolerances_hold(tmp_path):
    config = tabular(tmp_path)
    meta_path = config.parent / ".mltest" / "golden" / "regression.json"
    meta = json.loads(meta_path.read_text())
    meta["environment"].update(device="cuda", torch="2.99.0")
    meta_path.write_text(json.dumps(meta))
    result = regression(config, tmp_path)
    assert result.status is Status.PASS, result.summary
    assert "cuda → cpu" in result.notices[0] and "2.99.0" in result.notices[0]


# --- bugs are caught -------------------------------------------------------------------------


def test_dropout_left_on_in_predict_step_fails_as_non_deterministic(tmp_path):
    config = copy_example("tabular", tmp_path)
    edit(config, ("source: train, epochs: 3", "source: init, epochs: 3"))
    dropout_on = "self.train()  # bug: dropout active at inference\n        return torch.softmax"
    edit(config.parent / "model.py", ("return torch.softmax", dropout_on))
    golden = config.parent / ".mltest" / "golden" / "regression.safetensors"
    before = golden.read_bytes()
    recorded = regression(config, tmp_path, update=True)
    assert recorded.status is Status.FAIL and "non-deterministic" in recorded.summary
    assert golden.read_bytes() == before, "golden outputs recorded from a noisy model"
    result = regression(config, tmp_path)
    assert result.status is Status.FAIL
    assert result.summary.startswith("non-deterministic prediction"), result.summary
    assert "training=True" in result.hint


def test_a_changed_normalisation_constant_fails_as_changed_inputs(tmp_path):
    config = tabular(tmp_path)
    edit(config.parent / "data.py", ("STD = 2.0", "STD = 2.5"))
    result = regression(config, tmp_path)
    assert result.status is Status.FAIL
    assert "the fixed inputs changed" in result.summary, result.summary
    assert "moved beyond tolerance" in result.summary
    assert "normalisation constant" in result.hint and "--check regression" in result.hint
    assert "The inputs changed" in result.details and "→" in result.details


POST = """
import torch

LABELS = ["alpha", "beta", "gamma"]


def labels(probs):
    return {"label": probs.argmax(dim=1), "name": [LABELS[i] for i in probs.argmax(dim=1)]}
"""


@pytest.mark.parametrize(
    ("bug", "output"),
    [
        (('probs.argmax(dim=1), "name"', 'probs.argmax(dim=1) + 1, "name"'), "label"),
        (('["alpha", "beta", "gamma"]', '["beta", "gamma", "alpha"]'), "name"),
    ],
    ids=["argmax+1", "shifted label map"],
)
def test_an_off_by_one_label_map_in_post_processing_fails(tmp_path, bug, output):
    config = copy_example("tabular", tmp_path)
    (config.parent / "post.py").write_text(POST)
    edit(config, ("source: train, epochs: 3, seed: 0", "source: init, postprocess: post:labels"))
    assert regression(config, tmp_path, update=True).status is Status.PASS
    edit(config.parent / "post.py", bug)
    result = regression(config, tmp_path)
    assert result.status is Status.FAIL
    assert "64 of 128 output values (50%) moved" in result.summary, result.summary
    assert "unchanged inputs" in result.summary and "model_under_test" not in result.summary
    moved = {c.name: c.status for c in result.cases}
    assert moved[output] is Status.FAIL and len(moved) == 2
    assert f"| `{output}` | [0] |" in result.details  # the worst-examples table


def test_a_model_change_reports_moved_values_and_flipped_labels(tmp_path):
    config = tabular(tmp_path)
    edit(config.parent / "model.py", ("return self.net(x)", "return self.net(x * 1.5)"))
    result = regression(config, tmp_path)
    assert result.status is Status.FAIL
    assert "predicted label(s) of 64 examples flipped" in result.summary, result.summary
    assert 0 < result.metrics["flipped"] <= 64
    out = result.metrics["outputs"]["output"]
    assert out["moved"] > 0 and out["max_abs"] > 1e-3 and out["mean_rel"] > 0
    assert "| output | index | golden | got | abs diff |" in result.details


def test_a_changed_model_under_test_is_named_in_the_failure(tmp_path):
    config = tabular(tmp_path)
    edit(config, ("seed: 0}", "seed: 1}"))
    result = regression(config, tmp_path)
    assert result.status is Status.FAIL
    assert "model_under_test changed since the golden outputs were recorded (seed 0 → 1)" in (
        result.summary
    ), result.summary


def test_a_checkpoint_with_a_renamed_layer_fails_naming_the_keys(tmp_path):
    config = copy_example("tabular", tmp_path)
    sys.path.insert(0, str(config.parent))
    try:
        forget_project_modules(config.parent)
        sys.modules.pop("model", None)
        from model import TabularMLP  # the copy's own model

        torch.manual_seed(0)
        torch.save(TabularMLP().state_dict(), config.parent / "weights.pt")
    finally:
        sys.path.remove(str(config.parent))
    edit(config, ("source: train, epochs: 3", "source: checkpoint, checkpoint: weights.pt"))
    assert regression(config, tmp_path, update=True).status is Status.PASS
    assert regression(config, tmp_path).status is Status.PASS
    edit(config.parent / "model.py", ("self.net", "self.layers"))
    result = regression(config, tmp_path)
    assert result.status is Status.FAIL
    assert "no longer loads" in result.summary, result.summary
    assert "`net.0.weight`" in result.details and "`layers.0.weight`" in result.details


# --- missing or damaged golden records --------------------------------------------------------


def test_a_missing_golden_fails_naming_the_update_command(tmp_path):
    config = copy_example("tabular", tmp_path)
    shutil.rmtree(config.parent / ".mltest" / "golden")
    result = regression(config, tmp_path)
    assert result.status is Status.FAIL
    assert "no golden outputs recorded" in result.summary
    assert "mltest baseline update --config" in result.hint and "--check regression" in result.hint


@pytest.mark.parametrize("damaged", ["regression.safetensors", "regression.json"])
def test_a_corrupt_golden_file_is_an_error_naming_the_file(tmp_path, damaged):
    config = tabular(tmp_path)
    path = config.parent / ".mltest" / "golden" / damaged
    path.write_bytes(b"\x00garbage{")
    result = regression(config, tmp_path)
    assert result.status is Status.ERROR
    assert str(path) in result.summary and "mltest baseline update" in result.summary
    # The update command repairs it.
    assert regression(config, tmp_path, update=True).status is Status.PASS
    assert regression(config, tmp_path).status is Status.PASS


# --- inputs from files ------------------------------------------------------------------------

COLLATE = """
import torch


def rows(examples):
    return torch.tensor([[float(e[f"f{i}"]) for i in range(8)] for e in examples])


def arrays(examples):  # one array in the file: each example is a tensor row
    return torch.stack(examples)
"""


def _write_inputs(directory, kind):
    features = np.random.default_rng(0).standard_normal((20, 8)).astype(np.float32)
    frame = pd.DataFrame(features, columns=[f"f{i}" for i in range(8)])
    if kind == "npz":
        np.savez(directory / "inputs.npz", x=features)
    elif kind == "safetensors":
        from safetensors.numpy import save_file

        save_file({"x": features}, str(directory / "inputs.safetensors"))
    elif kind == "csv":
        frame.to_csv(directory / "inputs.csv", index=False)
    elif kind == "jsonl":
        frame.to_json(directory / "inputs.jsonl", orient="records", lines=True)
    else:
        frame.to_parquet(directory / "inputs.parquet")


@pytest.mark.parametrize(
    ("kind", "collate"),
    [
        ("npz", None),
        ("safetensors", "collate:arrays"),
        ("csv", "collate:rows"),
        ("jsonl", "collate:rows"),
        ("parquet", "collate:rows"),
    ],
)
def test_inputs_from_a_file_pass_on_rerun_and_catch_a_changed_file(tmp_path, kind, collate):
    config = copy_example("tabular", tmp_path)
    (config.parent / "collate.py").write_text(COLLATE)
    _write_inputs(config.parent, kind)
    spec = f"inputs: {{file: inputs.{kind}" + (f", collate: '{collate}'" if collate else "") + "}"
    edit(
        config,
        ("source: train, epochs: 3", "source: init, epochs: 3"),
        ("inputs: {source: datamodule, examples: 64}", spec + "\n    batch_size: 6"),
    )
    assert regression(config, tmp_path, update=True).status is Status.PASS
    result = regression(config, tmp_path)
    assert result.status is Status.PASS, result.summary
    assert result.metrics["examples"] == 20 and result.metrics["values"] == 60
    # Another file of the same shape: the inputs changed, and the check says so.
    rng = np.random.default_rng(1)
    if kind in ("npz", "safetensors"):
        np.savez(config.parent / "inputs.npz", x=rng.standard_normal((20, 8)).astype("f4"))
        edit(config, (spec, "inputs: {file: inputs.npz}"))
    else:
        (config.parent / "collate.py").write_text(COLLATE.replace("float(e", "2 * float(e"))
    result = regression(config, tmp_path)
    assert result.status is Status.FAIL and "the fixed inputs changed" in result.summary


# --- settings ---------------------------------------------------------------------------------


def test_a_table_without_collate_is_a_config_error(tmp_path):
    config = write_suite(
        tmp_path, model_src="", data_src="", checks={"regression": {"inputs": {"file": "x.csv"}}}
    )
    with pytest.raises(ConfigError, match="collate"):
        load_config(config)


def test_a_tolerance_for_an_unknown_output_is_an_error(tmp_path):
    config = copy_example("tabular", tmp_path)
    edit(config, ("examples: 64}", "examples: 8}\n    per_output: {logits: {rtol: 0.1}}"))
    result = regression(config, tmp_path)
    assert result.status is Status.ERROR and "'logits'" in result.summary


# --- the comparison itself --------------------------------------------------------------------


def test_compare_checks_names_and_shapes_both_ways():
    golden = {"a": np.zeros((2, 3), "f4"), "gone": np.zeros(2, "f4")}
    got = {"a": np.zeros((3, 3), "f4"), "new": np.zeros(2, "f4")}
    problems = compare_outputs(golden, got).problems
    assert problems == [
        "`a`: shape was (2, 3), now (3, 3)",
        "`gone`: in the golden file but not produced any more",
        "`new`: produced now but not in the golden file",
    ]


def test_compare_tolerances_exact_kinds_and_nan():
    golden = np.array([1.0, 100.0, np.nan, np.inf], "f4")
    inside = golden + np.array([5e-6, 5e-3, 0, 0], "f4")
    assert compare_outputs({"x": golden}, {"x": inside}).ok
    outside = golden + np.array([5e-4, 0, 0, 0], "f4")
    diff = compare_outputs({"x": golden}, {"x": outside}).outputs[0]
    assert diff.moved == 1 and diff.worst[0].index == (0,)
    loose = {"x": Tolerance(rtol=0, atol=1e-3)}
    assert compare_outputs({"x": golden}, {"x": outside}, per_output=loose).ok
    assert compare_outputs({"x": golden}, {"x": np.array([1, 100, 0, np.inf], "f4")}).moved == 1
    assert compare_outputs({"i": np.array([1, 2])}, {"i": np.array([1, 3])}).moved == 1
    assert compare_outputs({"i": np.array([1, 2])}, {"i": np.array([1.0, 2.0])}).problems
    assert compare_outputs({"s": ["a", "b"]}, {"s": ["a", "c"]}).moved == 1


def test_compare_counts_flipped_labels_for_classifiers_only():
    golden = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]], "f4")
    got = np.array([[0.1, 0.9], [0.2, 0.8], [0.6, 0.4]], "f4")
    assert compare_outputs({"p": golden}, {"p": got}).flipped == 1
    assert compare_outputs({"p": golden}, {"p": got}, task="regression").flipped is None
    assert compare_outputs({"v": golden[:, 0]}, {"v": got[:, 0]}).flipped is None


def test_compare_finds_the_one_moved_value_among_ten_million():
    # Its speed is measured in bench/ (golden_compare), not asserted here.
    rng = np.random.default_rng(0)
    golden = rng.standard_normal((100_000, 100), dtype=np.float32)
    got = golden + rng.standard_normal(golden.shape, dtype=np.float32) * 1e-7
    got[123, 45] += 1.0
    comparison = compare_outputs({"x": golden}, {"x": got})
    assert comparison.moved == 1 and comparison.outputs[0].worst[0].index == (123, 45)
