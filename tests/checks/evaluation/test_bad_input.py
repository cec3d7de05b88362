"""Bad input to the evaluation gate is refused with the key, the file and the fix, before the
candidate trains; through `mltest run` it ends the suite with exit 2 and the report written."""

from __future__ import annotations

import time

import pytest

from mltest.errors import ConfigError, ProjectError
from mltest.supervisor import run_suite
from tests.checks.evaluation.gate import gate
from tests.checks.evaluation.test_restore import DATA, MODEL
from tests.suites import write_suite

HELPERS = """
import torch


def rows():
    return [{"id": f"r{i}", "a": float(i % 5), "b": 1.0, "label": i % 2,
             "colour": "red" if i % 3 else "blue"} for i in range(40)]


def collate(rows):
    return [torch.tensor([[r["a"], r["b"], 0.0, 0.0] for r in rows])]


def numbered(example):
    return 7


def broken_metric(preds, target):
    raise ValueError("no such thing")
"""


def project(tmp_path, evaluation, model=MODEL):
    settings = {"task": "multiclass", "candidate": {"epochs": 1}, "restore": {"enabled": False},
                "confidence": {"resamples": 50}, **evaluation}  # fmt: skip
    return write_suite(tmp_path, model_src=model, data_src=DATA, model="model:Model",
                       data="data:Data", checks={"evaluation": settings},
                       extra_files={"helpers.py": HELPERS})  # fmt: skip


TABLE = {"name": "t", "table": "helpers:rows", "collate": "helpers:collate", "target": "label"}


@pytest.mark.parametrize(
    "evaluation, error, expected",
    [
        ({"datasets": [{**TABLE, "table": "missing.csv"}]}, ConfigError,
         ["checks.evaluation.datasets.0.table: missing.csv", "file not found"]),
        ({"datasets": [{**TABLE, "target": "labels"}]}, ConfigError,
         ["target column `labels`", "columns: id, a, b, label, colour"]),
        ({"datasets": [TABLE], "slices": [{"column": "shape"}]}, ConfigError,
         ["no column `shape`", "helpers:rows"]),
        ({"datasets": [{**TABLE, "collate": "helpers:colate"}]}, ProjectError,
         ["checks.evaluation.datasets.0.collate", "did you mean `collate`"]),
        ({"candidate": {"source": "checkpoint", "checkpoint": "model.ckpt"}}, ConfigError,
         ["candidate.checkpoint: model.ckpt", "file not found"]),
        ({"slices": [{"function": "helpers:numbered"}]}, ProjectError,
         ["(function helpers:numbered)", "example 0", "returned 7", "a slice name"]),
        ({"metrics": {"mine": {"function": "helpers:broken_metric", "higher_is_better": True}}},
         ProjectError, ["metrics.mine", "raised ValueError: no such thing"]),
        ({"datasets": [{"name": "test", "loader": "test"}]}, ProjectError,
         ["test_dataloader", "does not define"]),
        ({"metrics": ["auroc"]}, None, []),
    ],
)  # fmt: skip
def test_bad_input_is_refused_naming_the_key_and_the_fix(tmp_path, evaluation, error, expected):
    config = project(tmp_path, evaluation)
    if error is None:
        gate(config)  # scores from predict_step: AUROC works
        return
    with pytest.raises(error) as caught:
        gate(config)
    for part in expected:
        assert part in str(caught.value), str(caught.value)


def test_labels_only_predictions_refuse_auroc_and_name_the_fix(tmp_path):
    labels = MODEL.replace("return torch.softmax(self(batch[0]), dim=1)",
                           "return self(batch[0]).argmax(dim=1)")  # fmt: skip
    with pytest.raises(ProjectError, match="needs class scores, but predict_step returns labels"):
        gate(project(tmp_path, {"metrics": ["accuracy", "auroc"]}, model=labels))


def test_through_mltest_run_a_bad_table_ends_the_suite_with_exit_2_and_a_report(tmp_path):
    config = project(tmp_path, {"datasets": [{**TABLE, "target": "labels"}]})
    report = run_suite(config, tmp_path / f"report-{time.monotonic_ns()}", only=["evaluation"])
    assert report.verdict.exit_code == 2
    assert any("checks.evaluation" in e and "target column `labels`" in e for e in report.errors)
