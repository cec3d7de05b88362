"""`checks.evaluation` in mltest.yaml: bad settings are refused before anything trains, with
the file, line and key named and what to write instead."""

from __future__ import annotations

import pytest
import yaml

from mltest.config import load_config
from mltest.errors import ConfigError


def config(tmp_path, evaluation) -> str:
    path = tmp_path / "mltest.yaml"
    path.write_text(yaml.safe_dump({
        "model": {"class": "model:M"}, "data": {"class": "data:D"},
        "checks": {"evaluation": evaluation},
    }, sort_keys=False))  # fmt: skip
    return path


@pytest.mark.parametrize(
    "evaluation, expected",
    [
        ({}, ["checks.evaluation.task", "required"]),
        ({"task": "multiclass", "metrics": ["acuracy"]}, ["unknown metric", "`accuracy`"]),
        ({"task": "regression", "metrics": ["accuracy"]}, ["does not apply", "mae"]),
        ({"task": "multiclass", "metrics": {"accuracy": {"at_most": 0.3}}},
         ["metrics.accuracy.at_most", "`at_least`"]),
        ({"task": "regression", "metrics": {"mae": {"max_drop": "five"}}},
         ["checks.evaluation.metrics.mae.max_drop", '"5%"']),
        ({"task": "multiclass", "metrics": {"mine": {"function": "m:f"}}},
         ["higher_is_better"]),
        ({"task": "multiclass", "datasets": [{"name": "v", "loader": "val", "table": "t.csv"}]},
         ["exactly one"]),
        ({"task": "multiclass", "datasets": [{"name": "t", "table": "t.csv"}]},
         ["collate"]),
        ({"task": "multiclass", "slices": [{"column": "a", "function": "m:f"}]},
         ["one of `column`, `tags` or `function`"]),
        ({"task": "multiclass", "gaps": [{"metric": "f1", "slices": ["a", "b"], "at_most": 1}]},
         ["gaps: metric `f1` is not in `metrics`"]),
        ({"task": "multiclass", "candidate": {"source": "checkpoint"}}, ["needs `checkpoint"]),
        ({"task": "multiclass", "confidence": {"level": 1.5}}, ["confidence.level"]),
        ({"task": "multiclass", "restore": {"step": 2}}, ["did you mean `steps`"]),
    ],
)  # fmt: skip
def test_bad_settings_are_refused_with_the_key_and_the_fix(tmp_path, evaluation, expected):
    with pytest.raises(ConfigError) as caught:
        load_config(config(tmp_path, evaluation))
    message = str(caught.value)
    assert "mltest.yaml:" in message
    for part in expected:
        assert part in message, message


def test_defaults_a_metric_per_task_and_beats_the_trivial_predictor_on_all_only(tmp_path):
    loaded = load_config(config(tmp_path, {
        "task": "regression",
        "metrics": {"mae": {"beat_trivial_by": 0.1, "slices": {"val/district=*": {
            "at_most": 0.5, "beat_trivial_by": 0.05}}}},
    }))  # fmt: skip
    settings = loaded.checks["evaluation"]
    assert [d.name for d in settings.datasets] == ["val"]
    mae = settings.metrics["mae"]
    assert mae.limits_for("val", "all").beat_trivial_by == 0.1
    assert mae.limits_for("val", "district=A").beat_trivial_by == 0.05
    assert mae.limits_for("val", "district=A").at_most == 0.5
    assert mae.limits_for("test", "district=A").beat_trivial_by is None
    assert load_config(config(tmp_path, {"task": "binary"})).checks["evaluation"].metrics.keys() \
        == {"accuracy"}  # fmt: skip
