"""Deterministic by default, never broken by it.

The model below routes its features through `nn.MaxUnpool1d`, an op torch has no
deterministic CPU kernel for (it is the CPU stand-in for adaptive pooling's CUDA backward; the
CUDA case itself is in tests/test_gpu.py). Under the default (`trainer.deterministic` unset:
warn-only) every check runs and names the op in a notice; under `deterministic: true` the
check is an error whose message names the config key to change; a model without such an op
gets no notice.
"""

from __future__ import annotations

import os
import warnings

import pytest
import torch
import yaml

from mltest.engine import environment_facts, make_trainer
from mltest.errors import ConfigError
from mltest.report import Status
from mltest.seeding import (
    isolated_global_state,
    nondeterministic_op,
    prepare_process,
    watch_determinism,
)
from mltest.supervisor import run_suite
from tests.suites import copy_example, forget_project_modules, write_suite

MODEL = """
import pytorch_lightning as pl
import torch
from torch import nn
from torch.nn import functional as F


class Model(pl.LightningModule):
    def __init__(self, unpool: bool = True):
        super().__init__()
        self.unpool = unpool
        self.encode = nn.Linear(6, 8)
        self.pool = nn.MaxPool1d(2, return_indices=True)
        self.up = nn.MaxUnpool1d(2)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        h = torch.relu(self.encode(x))
        if self.unpool:  # scatter the pooled maxima back: no deterministic CPU kernel
            pooled, index = self.pool(h.unsqueeze(1))
            h = h + self.up(pooled, index).squeeze(1)
        return self.head(h)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self(x), y)

    def predict_step(self, batch, batch_idx, dataloader_idx=0):
        return torch.softmax(self(batch[0]), dim=1)

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
        self.data = TensorDataset(x, y)

    def train_dataloader(self):
        return DataLoader(self.data, batch_size=16, shuffle=True)

    def predict_dataloader(self):
        return DataLoader(self.data, batch_size=16)
"""

CHECKS = {
    "memorization": {"max_epochs": 300, "target": {"loss_below": 0.3}, "seeds": [0]},
    "sanity": {},
    "regression": {"inputs": {"examples": 32}},
}
OP = "max_unpooling2d_forward_out"


def run(tmp_path, *, unpool=True, deterministic=None, update=True):
    trainer = {"accelerator": "cpu"}
    if deterministic is not None:
        trainer["deterministic"] = deterministic
    config = write_suite(
        tmp_path / "project",
        model_src=MODEL if unpool else MODEL.replace("unpool: bool = True", "unpool: bool = False"),
        data_src=DATA,
        checks=CHECKS,
        trainer=trainer,
        model_under_test={"source": "train", "epochs": 2},
    )
    forget_project_modules(config.parent)
    report = run_suite(config, tmp_path / "report", update_baselines=update)
    assert not report.errors, report.errors
    return {c.name: c for c in report.checks}


def test_an_op_without_a_deterministic_kernel_runs_by_default_and_is_named(tmp_path):
    results = run(tmp_path)
    for name in ("memorization", "sanity", "regression"):
        result = results[name]
        assert result.status is Status.PASS, (name, result.summary)
        notice = [n for n in result.notices if "deterministic kernel" in n]
        assert notice == [
            f"ran without a deterministic kernel: {OP}; reruns may differ slightly "
            "(`trainer.deterministic: true` makes this an error instead)"
        ], (name, result.notices)


def test_a_model_with_deterministic_ops_only_gets_no_notice(tmp_path):
    results = run(tmp_path, unpool=False)
    for name in ("memorization", "sanity", "regression"):
        assert results[name].status is Status.PASS, results[name].summary
        assert not any("deterministic kernel" in n for n in results[name].notices)


def test_strict_mode_is_an_error_that_names_the_config_key(tmp_path):
    results = run(tmp_path, deterministic=True)
    for name in ("memorization", "sanity", "regression"):
        result = results[name]
        assert result.status is Status.ERROR, (name, result.status, result.summary)
        assert OP in result.summary and "`trainer.deterministic: warn`" in result.summary
        assert "Fix the exception" not in (result.hint or "")


def test_determinism_off_runs_without_notice(tmp_path):
    results = run(tmp_path, deterministic=False)
    assert results["sanity"].status is Status.PASS
    assert not any("deterministic kernel" in n for n in results["sanity"].notices)


def test_the_watch_records_every_occurrence_and_lets_other_warnings_through():
    unpool = torch.nn.MaxUnpool1d(2)
    x, index = torch.nn.MaxPool1d(2, return_indices=True)(torch.randn(1, 1, 8))
    with isolated_global_state(), warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        with watch_determinism("warn") as watch:
            unpool(x, index)
            warnings.warn("the user's own warning", UserWarning, stacklevel=1)
        assert watch.ops == {OP}
        assert [str(w.message) for w in shown] == ["the user's own warning"]
        with watch_determinism("warn") as second:  # seen again: a second check reports it too
            unpool(x, index)
        assert second.ops == {OP}
        with pytest.raises(ConfigError, match="trainer.deterministic"), watch_determinism(True):
            unpool(x, index)


def test_messages_name_the_op_only_for_determinism_alerts():
    alert = (
        "adaptive_avg_pool2d_backward_cuda does not have a deterministic implementation, but "
        "you set 'torch.use_deterministic_algorithms(True)'."
    )
    assert nondeterministic_op(alert) == "adaptive_avg_pool2d_backward_cuda"
    cublas = "this operation is not deterministic because it uses CuBLAS and you have CUDA"
    assert "CUBLAS_WORKSPACE_CONFIG" in nondeterministic_op(cublas)
    assert nondeterministic_op("CUDA out of memory. Tried to allocate 2 GiB") is None


def test_prepare_process_sets_what_cuda_needs_before_it_starts(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    with isolated_global_state():
        prepare_process()
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")  # the user's own choice is kept
    with isolated_global_state():
        prepare_process()
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"


@pytest.mark.parametrize(
    ("setting", "lightning", "mode"),
    [({}, "warn", "warn"), ({"deterministic": True}, True, "strict"),
     ({"deterministic": False}, False, "off")],
)
def test_the_trainer_and_the_report_follow_the_config(setting, lightning, mode):
    from pytorch_lightning.demos.boring_classes import BoringModel

    with isolated_global_state():
        make_trainer(BoringModel(), {"accelerator": "cpu", **setting})
        assert torch.are_deterministic_algorithms_enabled() is bool(lightning)
        assert torch.is_deterministic_algorithms_warn_only_enabled() is (lightning == "warn")
    facts = environment_facts(setting)
    assert facts["determinism"] == mode
    assert {"torch", "lightning", "cuda", "cudnn", "device", "precision"} <= set(facts)
    assert facts["torch"] == torch.__version__
    if not torch.cuda.is_available():
        assert facts["cuda"] is None and facts["cudnn"] is None


# A preallocated output with an off-by-one fill loop: the last class's score is memory nobody
# wrote. Under the default mode torch fills new tensors with NaN, so this fails the same way on
# every run. The checks keep that fill for the first epoch and the first predicted batch only
# (it costs every allocation a write), which must still catch it.
_UNWRITTEN = (
    "        return self.net(x)\n",
    "        logits = self.net(x)\n"
    "        out = logits.new_empty(len(logits), self.hparams.classes)\n"
    "        for c in range(self.hparams.classes - 1):  # off by one: the last is never written\n"
    "            out[:, c] = logits[:, c]\n"
    "        return out\n",
)


def test_a_read_of_unwritten_memory_fails_every_check_that_runs_the_model(tmp_path):
    config = copy_example("tabular", tmp_path)
    model = config.parent / "model.py"
    assert _UNWRITTEN[0] in model.read_text()
    model.write_text(model.read_text().replace(*_UNWRITTEN))
    settings = yaml.safe_load(config.read_text())
    settings["checks"]["regression"]["batch_size"] = 16  # 4 batches: the first one shows it
    settings["checks"]["key_examples"]["batch_size"] = 4
    config.write_text(yaml.safe_dump(settings, sort_keys=False))
    report = run_suite(config, tmp_path / "report", only=["memorization", "regression",
                                                           "key_examples"])  # fmt: skip
    results = {c.name: c for c in report.checks}
    memorization = results["memorization"]
    assert memorization.status is Status.FAIL, memorization.summary
    assert "nan at epoch 1" in memorization.summary, memorization.summary
    regression = results["regression"]
    assert regression.status is Status.FAIL and "NaN" in regression.summary, regression.summary
    key_examples = results["key_examples"]
    assert key_examples.status is Status.FAIL, key_examples.summary
    assert "got NaN in its own prediction" in key_examples.cases[0].message  # the first batch


def test_the_fill_of_new_tensors_is_put_back_after_a_fit_and_a_prediction():
    from pytorch_lightning.demos.boring_classes import BoringModel

    from mltest.checks.prediction import predict
    from mltest.seeding import fill_new_tensors, filling_new_tensors

    for before in (True, False):
        with isolated_global_state():
            fill_new_tensors(before)
            predict(BoringModel(), [torch.randn(4, 32) for _ in range(3)])
            assert filling_new_tensors() is before
            with isolated_global_state():
                fill_new_tensors(not before)
            assert filling_new_tensors() is before
    assert filling_new_tensors()  # torch's default, untouched by the test
