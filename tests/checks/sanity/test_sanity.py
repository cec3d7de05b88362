"""The training sanity check on a tiny real Lightning model and on broken variants of it.

Each variant is an edit to model.py (or mltest.yaml) as a pull request would make it. The
baseline is recorded from the unedited model first, so the edited one is compared with it.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from mltest.checks.sanity import Settings
from mltest.checks.sanity.baseline import compare_baseline
from mltest.checks.sanity.obs import ParamObs
from mltest.checks.sanity.probes.independence import dependence
from mltest.report import Status
from mltest.supervisor import run_suite
from tests.suites import copy_example, write_suite

MODEL = """
import pytorch_lightning as pl
import torch
from torch import nn
from torch.nn import functional as F


class Log(nn.Module):
    def forward(self, x):
        return torch.log(x - 1.0)


class Model(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU())
        self.extra = nn.Linear(16, 16)
        self.act = nn.ReLU()
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        h = self.backbone(x)
        h = self.act(self.extra(h)) + h
        return self.head(h)

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        return F.cross_entropy(logits, y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=0.01)
"""

DATA = """
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset


class Data(pl.LightningDataModule):
    def setup(self, stage=None):
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(64, 6, generator=gen)
        y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
        self.train = TensorDataset(x, y)

    def train_dataloader(self):
        return DataLoader(self.train, batch_size=16, shuffle=True)
"""

# Freezing the backbone by optimizer choice: the correct model hands only the rest over.
ONLY_HEAD = (
    "torch.optim.Adam(self.parameters(), lr=0.01)",
    "torch.optim.Adam([*self.extra.parameters(), *self.head.parameters()], lr=0.01)",
)


def sanity(tmp_path, edits=(), settings=None, record=True, model=MODEL):
    """Write the project, record the baseline from the unedited model, apply edits, run.

    The edited project is a copy in a new directory, as a new checkout would be: a module
    already imported from the first directory must not stand in for the edited file.
    """
    config = write_suite(
        tmp_path / "base", model_src=model, data_src=DATA, checks={"sanity": settings or {}}
    )
    if record:
        recorded = run_suite(config, tmp_path / "rec", update_baselines=True, only=["sanity"])
        assert _result(recorded).status is Status.PASS, _result(recorded).summary
    edited = tmp_path / "edited"
    shutil.copytree(config.parent, edited, ignore=shutil.ignore_patterns("__pycache__"))
    text = (edited / "model.py").read_text()
    for old, new in edits:
        assert old in text, f"edit target {old!r} not in model.py"
        text = text.replace(old, new)
    (edited / "model.py").write_text(text)
    return _result(run_suite(edited / "mltest.yaml", tmp_path / "report", only=["sanity"]))


def _result(report):
    assert not report.errors, report.errors
    return next(c for c in report.checks if c.name == "sanity")


def _failed_cases(result):
    return {c.name for c in result.cases if c.status is Status.FAIL}


# --- green: the plain model, a rerun, harmless changes --------------------------------------


def test_the_plain_model_passes_with_every_option_on(tmp_path):
    result = sanity(tmp_path, settings={"batch_independence": True})
    assert result.status is Status.PASS, result.summary
    assert "8 of 8 parameters" in result.summary
    assert result.metrics["trained"][0] == "backbone.0.weight"


def test_a_rerun_gives_the_same_result(tmp_path):
    first = sanity(tmp_path)
    second = _result(run_suite(tmp_path / "edited" / "mltest.yaml", tmp_path / "r2"))
    assert second.status is Status.PASS
    assert first.metrics["loss"] == second.metrics["loss"]
    assert first.metrics["trained"] == second.metrics["trained"]


def test_renamed_submodules_pass_with_a_notice(tmp_path):
    result = sanity(tmp_path, [("self.extra", "self.middle")])
    assert result.status is Status.PASS, result.summary
    assert any("renamed" in n and "extra.weight → middle.weight" in n for n in result.notices)


def test_fewer_cpu_threads_pass(tmp_path):
    threads = torch.get_num_threads()
    config = write_suite(tmp_path, model_src=MODEL, data_src=DATA, checks={"sanity": {}})
    run_suite(config, tmp_path / "rec", update_baselines=True, only=["sanity"])
    torch.set_num_threads(1)
    try:
        result = _result(run_suite(config, tmp_path / "report", only=["sanity"]))
    finally:
        torch.set_num_threads(threads)
    assert result.status is Status.PASS, result.summary


# --- red: each bug the check exists for, named ----------------------------------------------

BUGS = {
    "layer output discarded": (
        [("h = self.act(self.extra(h)) + h", "_ = self.act(self.extra(h))")],
        "trainable parameters change",
        ["extra.weight", "extra.bias", "no gradient"],
    ),
    "detached activation": (
        [("h = self.backbone(x)", "h = self.backbone(x).detach()")],
        "trainable parameters change",
        ["backbone.0.weight", "backbone.1.bias", "no gradient"],
    ),
    "batch norm forced to eval mode while training": (
        [("x, y = batch", "x, y = batch\n        self.backbone[1].eval()")],
        "running statistics move",
        ["backbone.1", "eval mode", "running_mean"],
    ),
    "parameter left out of the optimizer": (
        [("self.parameters(), lr", "[*self.backbone.parameters(), *self.head.parameters()], lr")],
        "trainable parameters change",
        ["extra.weight", "in no optimizer"],
    ),
    "one-output cross-entropy": (
        [("cross_entropy(logits, y)", "cross_entropy(logits[:, :1], torch.zeros_like(y))")],
        "loss is not zero",
        ["loss is exactly 0"],
    ),
    "NaN from a bad op": (
        [("self.act = nn.ReLU()", "self.act = Log()")],
        "finite values",
        ["module `act` (Log)", "loss is nan"],
    ),
}


@pytest.mark.parametrize("bug", list(BUGS))
def test_broken_models_fail_and_name_the_culprit(tmp_path, bug):
    edits, aspect, words = BUGS[bug]
    result = sanity(tmp_path, edits)
    assert result.status is Status.FAIL
    assert aspect in _failed_cases(result)
    for word in words:
        assert word in result.summary, (word, result.summary)
    assert result.hint


def test_a_zero_gradient_is_named_even_when_weight_decay_moved_the_parameter(tmp_path):
    edits = [
        ("h = self.act(self.extra(h)) + h", "h = self.act(self.extra(h)) * 0 + h"),
        (
            "torch.optim.Adam(self.parameters(), lr=0.01)",
            "torch.optim.AdamW(self.parameters(), lr=0.01, weight_decay=0.5)",
        ),
    ]
    result = sanity(tmp_path, edits)
    assert result.status is Status.FAIL
    assert "extra.weight, extra.bias: an all-zero gradient" in result.summary
    row = next(line for line in result.details.splitlines() if "`extra.weight`" in line)
    assert "| 0 |" in row and not row.endswith("| 0 |")  # grad 0, yet it moved


def test_a_frozen_backbone_handed_to_the_optimizer_fails(tmp_path):
    # The correct model freezes its backbone by optimizer choice and says so in the config.
    result = sanity(
        tmp_path,
        [(ONLY_HEAD[1], ONLY_HEAD[0])],
        settings={"frozen": ["backbone.*"]},
        model=MODEL.replace(*ONLY_HEAD),
    )
    assert result.status is Status.FAIL
    assert "frozen parameters stay" in _failed_cases(result)
    assert result.summary.startswith(
        "4 frozen parameter(s) changed: backbone.0.weight (frozen in config, in the optimizer"
    )


def test_a_parameter_that_stops_training_fails_against_the_baseline(tmp_path):
    edits = [
        (
            "self.head = nn.Linear(16, 3)",
            "self.head = nn.Linear(16, 3)\n        self.extra.requires_grad_(False)",
        )
    ]
    result = sanity(tmp_path, edits)
    assert result.status is Status.FAIL
    assert _failed_cases(result) == {"baseline"}
    assert "trained in the baseline but not now: extra.weight, extra.bias" in result.summary
    assert "Trained in the baseline (8)" in result.details and "Train now (6)" in result.details
    assert "mltest baseline update --config" in result.hint


def test_missing_baseline_fails_after_the_absolute_checks_pass(tmp_path):
    result = sanity(tmp_path, record=False)
    assert result.status is Status.FAIL
    assert _failed_cases(result) == {"baseline"}
    assert "no baseline" in result.summary and "mltest baseline update" in result.hint


def test_a_broken_step_records_no_baseline(tmp_path):
    config = write_suite(
        tmp_path,
        model_src=MODEL.replace("self.backbone(x)", "self.backbone(x).detach()"),
        data_src=DATA,
        checks={"sanity": {}},
    )
    result = _result(run_suite(config, tmp_path / "rec", update_baselines=True))
    assert result.status is Status.FAIL and "baseline not recorded" in result.summary
    assert not (config.parent / ".mltest" / "baselines.json").exists()


def test_output_range_is_checked_on_the_forward_output(tmp_path):
    bad = sanity(tmp_path / "a", settings={"output_range": [0.0, 1.0]}, record=False)
    assert bad.status is Status.FAIL and "output range" in _failed_cases(bad)
    assert "outside [0, 1]" in bad.summary
    # probabilities out of forward, their log into nll_loss (a sigmoid into cross_entropy
    # would be the bug the loss-input probe names)
    probabilities = MODEL.replace(
        "return self.head(h)", "return torch.softmax(self.head(h), dim=1)"
    ).replace("F.cross_entropy(logits, y)", "F.nll_loss(torch.log(logits), y)")
    good = sanity(tmp_path / "b", model=probabilities, settings={"output_range": [0.0, 1.0]})
    assert good.status is Status.PASS, good.summary


def test_batch_independence_catches_a_view_that_mixes_samples(tmp_path):
    edits = [("h = self.backbone(x)", "h = self.backbone(x)\n        h = h.t().reshape(h.shape)")]
    result = sanity(tmp_path, edits, settings={"batch_independence": True}, record=False)
    assert "batch independence" in _failed_cases(result)
    assert "output 0 depends on other samples" in result.summary


def test_a_frozen_pattern_that_matches_nothing_is_a_config_error(tmp_path):
    result = sanity(tmp_path, settings={"frozen": ["encoder.*"]}, record=False)
    assert result.status is Status.ERROR
    assert "checks.sanity.frozen" in result.summary and "'encoder.*'" in result.summary


def test_a_baseline_from_another_device_is_used_with_a_notice(tmp_path):
    sanity(tmp_path)
    path = tmp_path / "base" / ".mltest" / "baselines.json"
    data = json.loads(path.read_text())
    data["checks"]["sanity"] = {"cuda-torch2.13-16-mixed": data["checks"]["sanity"].popitem()[1]}
    path.write_text(json.dumps(data))
    result = _result(run_suite(path.parent.parent / "mltest.yaml", tmp_path / "r2"))
    assert result.status is Status.PASS, result.summary
    assert any(
        "compared with the one recorded for cuda-torch2.13-16-mixed" in n for n in result.notices
    )


def test_the_check_leaves_global_state_as_it_found_it(tmp_path):
    torch.manual_seed(123)
    rng, threads = torch.get_rng_state(), torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    sanity(tmp_path, settings={"batch_independence": True}, record=False)
    assert torch.equal(torch.get_rng_state(), rng)
    assert torch.get_num_threads() == threads
    assert torch.are_deterministic_algorithms_enabled() == deterministic


class _TokenModel(torch.nn.Module):
    """Token ids in, one score per sample out; `mix` averages over the batch by mistake."""

    def __init__(self, mix):
        super().__init__()
        self.embed = torch.nn.Embedding(10, 4)
        self.mix = mix

    def forward(self, ids):
        h = self.embed(ids).mean(dim=1)
        return h - h.mean(dim=0) if self.mix else h


@pytest.mark.parametrize("mix", [False, True])
def test_batch_independence_with_integer_inputs(mix):
    torch.manual_seed(0)
    ids = torch.randint(0, 10, (4, 5))
    size, found = dependence(_TokenModel(mix), ids)
    assert size == 4
    assert found == ({0: [1, 2, 3], 3: [0, 1, 2]} if mix else {0: [], 3: []})


def test_an_input_key_not_in_the_batch_is_a_clear_error(tmp_path):
    result = sanity(tmp_path, settings={"batch_independence": True, "input_key": 5}, record=False)
    assert result.status is Status.ERROR
    assert "checks.sanity.input_key 5 is not in the batch (list with indices 0..1)" in (
        result.summary
    )


def test_output_range_must_be_ordered(tmp_path):
    with pytest.raises(ValueError, match="lo < hi"):
        Settings(output_range=(1.0, 0.0))


# --- the examples, and the pure baseline comparison -----------------------------------------


@pytest.mark.parametrize("example", ["tabular", "image_classifier"])
def test_the_examples_pass_against_their_committed_baseline(tmp_path, example):
    config = copy_example(example, tmp_path)
    result = _result(run_suite(config, tmp_path / "report", only=["sanity"]))
    assert result.status is Status.PASS, result.summary
    assert result.metrics["step_seconds"] < 5


def _param(name, moved=True, shape=(2,)):
    return ParamObs(name, shape, True, True, "ok", 1.0, 0.1 if moved else 0.0)


def test_compare_baseline_tells_renames_from_changes():
    entry = {"parameters": ["a.weight 2 trains", "b.weight 2 still"]}
    same = compare_baseline([_param("a.weight"), _param("b.weight", False)], entry, "k", "cmd")
    assert same == ([], None)
    renamed = compare_baseline([_param("x.weight"), _param("y.weight", False)], entry, "k", "cmd")
    assert renamed[0] == [] and "a.weight → x.weight" in renamed[1]
    flipped, _ = compare_baseline([_param("a.weight", False), _param("b.weight")], entry, "k", "c")
    assert "not now: a.weight" in flipped[0].message
    assert "did not in the baseline: b.weight" in flipped[0].message


def test_the_baseline_file_is_readable_in_review(tmp_path):
    sanity(tmp_path)
    data = json.loads((tmp_path / "base" / ".mltest" / "baselines.json").read_text())
    (entry,) = data["checks"]["sanity"].values()
    assert entry["parameters"][:2] == ["backbone.0.weight 16x6 trains", "backbone.0.bias 16 trains"]
