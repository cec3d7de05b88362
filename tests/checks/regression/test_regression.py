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

from mltest.checks.regression.compare import compare_outputs
from mltest.checks.regression.diffs import Tolerance
from mltest.config import load_config
from mltest.errors import ConfigError
from mltest.report import Status
from mltest.supervisor import run_suite
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


KEY = "cpu-torch{}-32-true".format(".".join(torch.__version__.split("+")[0].split(".")[:2]))


def record_paths(config, key=KEY):
    """The tensor and metadata files of the golden record of environment `key`."""
    folder = config.parent / ".mltest" / "golden" / "regression"
    return folder / f"{key}.safetensors", folder / f"{key}.json"


def relabel(config, new_key, noise=0.0):
    """Make the recorded golden another environment's, as if recorded on `new_key`.

    With `noise`, every float output moves by up to that much relative, standing in for the
    float noise between two devices (the real CUDA case runs in tests/test_gpu.py).
    """
    from safetensors.numpy import load_file

    tensors, meta = record_paths(config)
    _, new_meta = record_paths(config, new_key)
    arrays = load_file(str(tensors))
    rng = np.random.default_rng(0)
    for name, value in arrays.items():
        if np.issubdtype(value.dtype, np.floating):
            arrays[name] = (value * (1 + noise * rng.uniform(-1, 1, value.shape))).astype(
                value.dtype
            )
    data = json.loads(meta.read_text())
    data["environment"].update(key=new_key, device=new_key.split("-")[0])
    new_meta.write_text(json.dumps(data))
    tensors.unlink()
    meta.unlink()
    index_path = config.parent / ".mltest" / "baselines.json"
    index = json.loads(index_path.read_text())
    entry = index["checks"]["regression"].pop(KEY)
    index["checks"]["regression"][new_key] = entry
    index_path.write_text(json.dumps(index))
    write_golden_tensors(config, arrays, new_key)


def write_golden_tensors(config, arrays, key=KEY):
    """Replace a record's tensors as a recording of these outputs would: the hashes in its JSON
    and in baselines.json follow, since a record whose files disagree is refused as mixed."""
    from safetensors.numpy import save_file

    from mltest.checks.regression.golden import content_hash

    tensors, meta = record_paths(config, key)
    save_file(arrays, str(tensors))
    data = json.loads(meta.read_text())
    data["outputs_hash"] = content_hash({**arrays, **data.get("strings", {})})
    meta.write_text(json.dumps(data))
    index_path = config.parent / ".mltest" / "baselines.json"
    index = json.loads(index_path.read_text())
    index["checks"]["regression"][key]["outputs_hash"] = data["outputs_hash"]
    index_path.write_text(json.dumps(index))


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
    from safetensors.numpy import load_file

    tensors, meta_path = record_paths(config)
    assert load_file(str(tensors))["output"].shape == (64, 3)
    meta = json.loads(meta_path.read_text())
    assert {"key", "torch", "lightning", "device", "precision"} <= set(meta["environment"])
    assert meta["environment"]["key"] == KEY
    assert meta["inputs"]["hash"].startswith("sha256:") and meta["inputs"]["examples"] == 64
    assert meta["outputs"]["output"]["dtype"] == "float32" and meta["recorded"]
    # The index lists the record; other checks' baselines are untouched by the update.
    index = json.loads((config.parent / ".mltest" / "baselines.json").read_text())["checks"]
    committed = json.loads((EXAMPLES / "tabular" / ".mltest" / "baselines.json").read_text())
    assert index["regression"][KEY]["files"] == [
        f"golden/regression/{KEY}.safetensors",
        f"golden/regression/{KEY}.json",
        f"golden/regression/{KEY}.modules.json",
    ]
    assert {k: v for k, v in index.items() if k != "regression"} == {
        k: v for k, v in committed["checks"].items() if k != "regression"
    }


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


def test_another_torch_patch_release_is_a_notice_when_tolerances_hold(tmp_path):
    config = tabular(tmp_path)
    _, meta_path = record_paths(config)
    meta = json.loads(meta_path.read_text())
    patch = meta["environment"]["torch"].split("+")[0].rsplit(".", 1)[0] + ".99"
    meta["environment"].update(torch=patch)
    meta_path.write_text(json.dumps(meta))
    result = regression(config, tmp_path)
    assert result.status is Status.PASS, result.summary
    assert f"torch {patch} → {torch.__version__}" in result.notices[0]


# --- goldens per environment -----------------------------------------------------------------


def test_another_environments_golden_passes_on_decisions_with_a_notice(tmp_path):
    # The only golden is a CUDA one whose values differ by float noise: labels decide.
    config = tabular(tmp_path, source="train")
    relabel(config, "cuda-torch2.13-32-true", noise=2e-3)
    result = regression(config, tmp_path)
    assert result.status is Status.PASS, result.summary
    assert "predicted labels of 64 examples match" in result.summary, result.summary
    assert "cuda-torch2.13-32-true golden" in result.summary
    notice = result.notices[0]
    assert f"no golden outputs are recorded for {KEY}" in notice
    assert "mltest baseline update --config" in notice and "--check regression" in notice
    assert result.metrics["golden_key"] == "cuda-torch2.13-32-true"


def test_the_same_float_noise_fails_against_this_environments_own_golden(tmp_path):
    config = tabular(tmp_path, source="train")
    from safetensors.numpy import load_file

    tensors, _ = record_paths(config)
    arrays = load_file(str(tensors))
    arrays["output"] = arrays["output"] * np.float32(1 + 2e-3)
    write_golden_tensors(config, arrays)
    result = regression(config, tmp_path)
    assert result.status is Status.FAIL and "moved beyond tolerance" in result.summary


def test_a_recording_on_another_environment_leaves_this_ones_golden_alone(tmp_path):
    config = tabular(tmp_path)
    tensors, meta = record_paths(config)
    before = tensors.read_bytes()
    relabel(config, "cuda-torch2.13-32-true")
    assert regression(config, tmp_path, update=True).status is Status.PASS  # records cpu again
    index = json.loads((config.parent / ".mltest" / "baselines.json").read_text())
    assert sorted(index["checks"]["regression"]) == sorted([KEY, "cuda-torch2.13-32-true"])
    assert tensors.read_bytes() == before
    assert record_paths(config, "cuda-torch2.13-32-true")[0].exists()
    # A second update keeps a history of what the record held.
    assert regression(config, tmp_path, update=True).status is Status.PASS
    entry = json.loads((config.parent / ".mltest" / "baselines.json").read_text())
    history = entry["checks"]["regression"][KEY]["history"]
    assert len(history) == 1 and history[0]["outputs_hash"].startswith("sha256:")


@pytest.mark.parametrize(
    ("bug", "expected"),
    [
        # A permuted label map inside predict_step: labels flip on every example.
        (("softmax(self(x), dim=1)", "softmax(self(x), dim=1)[:, [1, 2, 0]]"),
         "predicted label(s) of 64 examples flipped"),
        # A changed normalisation constant: the inputs changed, on any device.
        (("STD = 2.0", "STD = 2.5"), "the fixed inputs changed"),
        # Dropout left on at inference: caught before any golden is read.
        (("return torch.softmax", "self.train()\n        return torch.softmax"),
         "non-deterministic prediction"),
    ],
    ids=["label map", "normalisation", "dropout at predict"],
)
def test_real_changes_still_fail_against_another_environments_golden(tmp_path, bug, expected):
    config = tabular(tmp_path, source="train")
    relabel(config, "cuda-torch2.13-32-true", noise=2e-3)
    target = "data.py" if "STD" in bug[0] else "model.py"
    edit(config.parent / target, bug)
    result = regression(config, tmp_path)
    assert result.status is Status.FAIL, result.summary
    assert expected in result.summary, result.summary


def test_a_committed_golden_of_the_first_layout_is_still_read(tmp_path):
    config = tabular(tmp_path)
    tensors, meta = record_paths(config)
    golden = config.parent / ".mltest" / "golden"
    tensors.rename(golden / "regression.safetensors")
    meta.rename(golden / "regression.json")
    index_path = config.parent / ".mltest" / "baselines.json"
    index = json.loads(index_path.read_text())
    del index["checks"]["regression"]
    index_path.write_text(json.dumps(index))
    result = regression(config, tmp_path)
    assert result.status is Status.PASS and result.metrics["golden_key"] == KEY, result.summary
    edit(config.parent / "model.py", ("return self.net(x)", "return self.net(x * 1.5)"))
    assert regression(config, tmp_path).status is Status.FAIL


# --- numerical noise of a trained model under test --------------------------------------------

IMAGE_20_EPOCHS = "model_under_test: {source: train, epochs: 20, seed: 0}"  # the example's


@pytest.mark.slow
def test_a_trained_model_passes_with_its_own_thread_count_and_fails_on_a_label_map(tmp_path):
    # The case: a model under test trained 20 epochs; the PR sets one torch thread
    # in the model's __init__ (harmless), then shifts the label map (a bug).
    config = copy_example("image_classifier", tmp_path)
    assert IMAGE_20_EPOCHS in config.read_text()
    (config.parent / "post.py").write_text(POST)
    edit(config, ("seed: 0}", "seed: 0, postprocess: 'post:labels'}"))
    recorded = regression(config, tmp_path, update=True)
    assert recorded.status is Status.PASS, recorded.summary
    one_thread = "super().__init__()\n        torch.set_num_threads(1)"
    edit(config.parent / "model.py", ("super().__init__()", one_thread))
    threads = torch.get_num_threads()
    result = regression(config, tmp_path)
    assert torch.get_num_threads() == threads, "the model's thread count leaked"
    assert result.status is Status.PASS, result.summary
    edit(config.parent / "post.py", ('["alpha", "beta", "gamma"]', '["beta", "gamma", "alpha"]'))
    result = regression(config, tmp_path)
    assert result.status is Status.FAIL, result.summary
    assert {c.name: c.status for c in result.cases}["name"] is Status.FAIL


@pytest.mark.slow
@pytest.mark.parametrize(("epochs", "noticed"), [(3, True), (20, False)])
def test_training_noise_is_measured_at_update_and_real_changes_still_fail(
    tmp_path, epochs, noticed
):
    # 3 epochs leave the model's outputs noisy (about 0.14 between harmless re-trainings): the
    # widened tolerance is worth a notice; 20 epochs (about 0.001) is normal and stays quiet.
    config = copy_example("image_classifier", tmp_path)
    edit(config, (IMAGE_20_EPOCHS, IMAGE_20_EPOCHS.replace("20", str(epochs))))
    assert regression(config, tmp_path, update=True).status is Status.PASS
    _, meta = record_paths(config)
    noise = json.loads(meta.read_text())["noise"]["output"]
    assert 0 < noise < 0.5, noise  # one vs two CPU threads: small but not nothing
    # Harmless: the golden recorded on a machine whose sums differ (outputs moved by the
    # measured noise) still passes, and says the tolerance came from the noise.
    from safetensors.numpy import load_file

    tensors, _ = record_paths(config)
    arrays = load_file(str(tensors))
    arrays["output"] = arrays["output"] + np.float32(noise)
    write_golden_tensors(config, arrays)
    result = regression(config, tmp_path)
    assert result.status is Status.PASS, result.summary
    assert any("numerically noisy" in n for n in result.notices) is noticed, result.notices
    if noticed:  # so coarse that the notice is the point: the user is told to train longer
        return
    # A real change moves outputs far beyond the noise.
    edit(config.parent / "model.py", ("softmax(self(x), dim=1)", "softmax(self(x) * 3, dim=1)"))
    result = regression(config, tmp_path)
    assert result.status is Status.FAIL, result.summary


# --- bugs are caught -------------------------------------------------------------------------


def test_dropout_left_on_in_predict_step_fails_as_non_deterministic(tmp_path):
    config = copy_example("tabular", tmp_path)
    edit(config, ("source: train, epochs: 3", "source: init, epochs: 3"))
    dropout_on = "self.train()  # bug: dropout active at inference\n        return torch.softmax"
    edit(config.parent / "model.py", ("return torch.softmax", dropout_on))
    golden = record_paths(config)[0]
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
    index_path = config.parent / ".mltest" / "baselines.json"
    index = json.loads(index_path.read_text())
    del index["checks"]["regression"]
    index_path.write_text(json.dumps(index))
    result = regression(config, tmp_path)
    assert result.status is Status.FAIL
    assert "no golden outputs recorded" in result.summary
    assert "mltest baseline update --config" in result.hint and "--check regression" in result.hint


@pytest.mark.parametrize("damaged", [0, 1], ids=["safetensors", "json"])
def test_a_corrupt_golden_file_is_an_error_naming_the_file(tmp_path, damaged):
    config = tabular(tmp_path)
    path = record_paths(config)[damaged]
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


def test_a_predict_step_that_normalises_in_place_never_writes_the_inputs_file(tmp_path):
    # The tensor file is mapped, not copied: a write into a batch must stay in this run.
    config = copy_example("tabular", tmp_path)
    _write_inputs(config.parent, "safetensors")
    inputs = config.parent / "inputs.safetensors"
    before = inputs.read_bytes()
    model = config.parent / "model.py"
    edit(
        model,
        ("        return torch.softmax(self(x), dim=1)",
         "        x.sub_(x.mean(dim=0))  # normalised in place\n"
         "        return torch.softmax(self(x), dim=1)"),
    )  # fmt: skip
    edit(
        config,
        ("source: train, epochs: 3", "source: init, epochs: 3"),
        ("inputs: {source: datamodule, examples: 64}",
         "inputs: {file: inputs.safetensors}\n    batch_size: 6"),
    )  # fmt: skip
    assert regression(config, tmp_path, update=True).status is Status.PASS
    result = regression(config, tmp_path)
    assert result.status is Status.PASS, result.summary
    assert inputs.read_bytes() == before


def test_a_bfloat16_inputs_file_is_refused_naming_the_array_and_what_to_save(tmp_path):
    from safetensors.torch import save_file

    config = copy_example("tabular", tmp_path)
    save_file({"x": torch.ones(20, 8, dtype=torch.bfloat16)},
              str(config.parent / "inputs.safetensors"))  # fmt: skip
    edit(config, ("inputs: {source: datamodule, examples: 64}",
                  "inputs: {file: inputs.safetensors, collate: 'collate:arrays'}"))  # fmt: skip
    (config.parent / "collate.py").write_text(COLLATE)
    report = run_suite(config, tmp_path / "report", only=["regression"])
    message = " ".join(map(str, report.errors))
    assert "checks.regression.inputs.file" in message and "array `x` is bfloat16" in message
    assert "save it as float32" in message and "pickle" not in message


SCALE_IN_PLACE = (
    "        return torch.softmax(self(x), dim=1)",
    "        x.mul_(2)  # scaled in place, as `x /= 255` does\n"
    "        return torch.softmax(self(x), dim=1)",
)


def test_a_predict_step_that_scales_its_batch_in_place_is_neither_unstable_nor_changed(tmp_path):
    # On the CPU predict_step gets the check's own batch: the determinism rerun must predict
    # the first batch as it was, and a change of the inputs is shown as the file holds it.
    config = copy_example("tabular", tmp_path)
    _write_inputs(config.parent, "npz")
    edit(config.parent / "model.py", SCALE_IN_PLACE)
    edit(
        config,
        ("source: train, epochs: 3", "source: init, epochs: 3"),
        ("inputs: {source: datamodule, examples: 64}", "inputs: {file: inputs.npz}"),
    )
    recorded = regression(config, tmp_path, update=True)
    assert recorded.status is Status.PASS, recorded.summary
    result = regression(config, tmp_path)
    assert result.status is Status.PASS, result.summary
    moved = np.load(config.parent / "inputs.npz")["x"] + np.float32(5)
    np.savez(config.parent / "inputs.npz", x=moved)
    result = regression(config, tmp_path)
    assert result.status is Status.FAIL and "the fixed inputs changed" in result.summary
    assert f"→ {float(moved.mean()):.4g} |" in result.details  # not the doubled values
    assert f"{float(2 * moved.mean()):.4g}" not in result.details


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
