"""Config validation: every bad config names the file, the line, the key and the fix."""

from __future__ import annotations

import textwrap

import pytest

from mltest.config import load_config
from mltest.errors import ConfigError

GOOD = """\
suite: demo
model:
  class: model:Model
  init_args: {lr: 0.1}
data:
  class: data:Data
seeds: [0, 1]
checks:
  memorization:
    max_epochs: 50
    target: {loss_below: 0.1}
"""


def write(tmp_path, text):
    path = tmp_path / "mltest.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_a_good_config_loads_with_defaults(tmp_path):
    loaded = load_config(write(tmp_path, GOOD))
    assert loaded.config.suite == "demo"
    assert loaded.config.model.init_args == {"lr": 0.1}
    memo = loaded.checks["memorization"]
    assert memo.max_epochs == 50 and memo.batches == 1 and memo.tolerance.relative == 0.25
    assert loaded.root == tmp_path.resolve()
    assert list(loaded.checks) == ["memorization"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (  # typo in a check setting: line, key path and the nearest valid name
            ("    max_epochs: 50", "    max_epoch: 50"),
            [":10:", "unknown key `checks.memorization.max_epoch`", "did you mean `max_epochs`"],
        ),
        (  # typo at the top level
            ("seeds: [0, 1]", "seed: [0, 1]"),
            [":7:", "unknown key `seed`", "did you mean `seeds`"],
        ),
        (  # wrong type
            ("max_epochs: 50", "max_epochs: fifty"),
            [":10:", "`checks.memorization.max_epochs`", "integer", "'fifty'"],
        ),
        (  # out of range
            ("max_epochs: 50", "max_epochs: 0"),
            [":10:", "`checks.memorization.max_epochs`", "greater than or equal to 1"],
        ),
        (  # a missing required key
            ("  class: data:Data\n", "  init_args: {}\n"),
            ["`data.class` is required but missing"],
        ),
        (  # not an import path
            ("class: model:Model", "class: model.Model"),
            [":3:", "`model.class`", "package.module:ClassName", "'model.Model'"],
        ),
        (  # an unknown check
            ("  memorization:", "  memorisation:"),
            [":9:", "unknown check `checks.memorisation`", "did you mean `memorization`"],
        ),
        (  # two targets at once
            ("{loss_below: 0.1}", "{loss_below: 0.1, metric: acc, at_least: 1.0}"),
            [":11:", "`checks.memorization.target`", "not both"],
        ),
        (  # a trainer setting the checks own
            ("seeds: [0, 1]", "seeds: [0, 1]\ntrainer: {max_epochs: 3}"),
            ["`trainer`", "max_epochs cannot be set here"],
        ),
    ],
)
def test_bad_configs_name_the_line_the_key_and_the_fix(tmp_path, change, expected):
    old, new = change
    assert old in GOOD
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, GOOD.replace(old, new, 1)))
    message = str(caught.value)
    assert str(tmp_path / "mltest.yaml") in message
    for part in expected:
        assert part in message


def test_missing_file_says_how_to_fix_it(tmp_path):
    with pytest.raises(ConfigError, match="config file not found.*--config PATH"):
        load_config(tmp_path / "nope.yaml")


def test_invalid_yaml_is_reported_with_its_position(tmp_path):
    with pytest.raises(ConfigError, match=r"mltest.yaml:2:5: not valid YAML: expected ',' or '}'"):
        load_config(write(tmp_path, "model: {class: a:b\ndata: [\n"))


def test_a_list_at_the_top_level_is_rejected(tmp_path):
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(write(tmp_path, "- a\n- b\n"))


def test_an_empty_check_section_takes_the_defaults(tmp_path):
    loaded = load_config(write(tmp_path, GOOD.split("checks:")[0] + "checks:\n  memorization:\n"))
    assert loaded.checks["memorization"].max_epochs == 200
