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
