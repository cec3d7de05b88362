"""Action inputs are validated before any training, with messages naming input and choices."""

from __future__ import annotations

import pytest

from mltest.github.settings import ActionSettings, CommentMode, FailOn, SettingsError
from mltest.report import Verdict


def test_defaults():
    settings = ActionSettings.from_env({})
    assert settings == ActionSettings()
    assert settings.comment is CommentMode.ALWAYS and settings.fail_on is FailOn.FAILURE


def test_token_is_never_in_the_repr():
    settings = ActionSettings.from_env({"MLTEST_GITHUB_TOKEN": "ghs_secret"})
    assert settings.token == "ghs_secret"
    assert "ghs_secret" not in repr(settings)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "MLTEST_COMMENT",
            "sometimes",
            "input comment (MLTEST_COMMENT) must be one of always, "
            "on-failure, off; got 'sometimes'",
        ),
        (
            "MLTEST_FAIL_ON",
            "warning",
            "input fail-on (MLTEST_FAIL_ON) must be one of failure, error, nothing; got 'warning'",
        ),
        ("MLTEST_COMMENT_ID", "a b", "comment-id must be"),
    ],
)
def test_bad_values_name_the_input_and_the_choices(variable, value, message):
    with pytest.raises(SettingsError) as info:
        ActionSettings.from_env({variable: value})
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("fail_on", "codes"),
    [
        (FailOn.FAILURE, {Verdict.PASS: 0, Verdict.FAIL: 1, Verdict.ERROR: 2}),
        (FailOn.ERROR, {Verdict.PASS: 0, Verdict.FAIL: 0, Verdict.ERROR: 2}),
        (FailOn.NOTHING, {Verdict.PASS: 0, Verdict.FAIL: 0, Verdict.ERROR: 0}),
    ],
)
def test_fail_on_decides_the_exit_code(fail_on, codes):
    assert {v: fail_on.exit_code(v) for v in Verdict} == codes


def test_gpus_input_means_a_gpu_is_required():
    assert ActionSettings.from_env({"MLTEST_GPUS": "all"}).require_gpu
    assert not ActionSettings.from_env({"MLTEST_GPUS": ""}).require_gpu


def test_an_early_error_reads_each_bad_input_as_its_default_and_keeps_the_good_ones():
    env = {
        "MLTEST_COMMENT": "sometimes",
        "MLTEST_MAX_TIME": "-1",
        "MLTEST_FAIL_ON": "nothing",
        "MLTEST_COMMENT_ID": "gpu-a",
    }
    settings, problems = ActionSettings.leniently_from_env(env)
    assert settings.comment is CommentMode.ALWAYS and settings.max_time_s is None
    assert settings.fail_on is FailOn.NOTHING and settings.comment_id == "gpu-a"
    assert [p.split(" (")[0] for p in problems] == ["input comment", "input max-time"]
    assert ActionSettings.leniently_from_env({"MLTEST_FAIL_ON": "error"})[1] == []
