"""The action's inputs as one validated, frozen settings object.

`action.yml` forwards each input as an ``MLTEST_*`` variable; this module is the only place
that reads them, and it rejects a bad value before any training starts, naming the input and
the values it accepts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from mltest.errors import MltestError
from mltest.github.comment import validate_comment_id
from mltest.report import Verdict


class SettingsError(MltestError):
    """An action input has a value mltest does not accept.

    Attributes:
        input: the input's name (a key of INPUT_ENV).
    """

    def __init__(self, message: str, input: str) -> None:
        super().__init__(message)
        self.input = input


class CommentMode(str, Enum):
    """When to post the sticky PR comment."""

    ALWAYS = "always"
    ON_FAILURE = "on-failure"
    OFF = "off"


class BaselineMode(str, Enum):
    """What the run does with baselines and golden outputs."""

    COMPARE = "compare"  # compare with the committed ones (the pull-request case)
    UPDATE = "update"  # record them on this runner and hand them back as an artifact


class FailOn(str, Enum):
    """Which verdicts fail the job (and so the required status check)."""

    FAILURE = "failure"  # a failed check or an error fails the job
    ERROR = "error"  # only a suite that could not run fails the job
    NOTHING = "nothing"  # never fail the job; read the outputs instead

    def exit_code(self, verdict: Verdict) -> int:
        """The job's exit code for ``verdict``: 0, or the verdict's own code (1 fail, 2 error)."""
        if self is FailOn.FAILURE or (self is FailOn.ERROR and verdict is Verdict.ERROR):
            return verdict.exit_code
        return 0


# input name -> environment variable action.yml sets; the parity test reads this table.
INPUT_ENV = {
    "config": "MLTEST_CONFIG",
    "report-dir": "MLTEST_REPORT_DIR",
    "comment": "MLTEST_COMMENT",
    "comment-id": "MLTEST_COMMENT_ID",
    "fail-on": "MLTEST_FAIL_ON",
    "gpus": "MLTEST_GPUS",
    "github-token": "MLTEST_GITHUB_TOKEN",
    "max-time": "MLTEST_MAX_TIME",
    "baselines": "MLTEST_BASELINES",
    "env": "MLTEST_ENV",
    "allow-secret-env": "MLTEST_ALLOW_SECRET_ENV",
}


@dataclass(frozen=True)
class ActionSettings:
    """What the action was asked to do.

    Attributes:
        config: the suite's YAML config, relative to the working directory.
        report_dir: where report.json, report.md and junit.xml go.
        comment: when to post the PR comment.
        comment_id: the sticky comment's id; empty means derived from the suite name.
        fail_on: which verdicts fail the job.
        require_gpu: a GPU was asked for (``gpus`` not empty), so its absence is an error.
        max_time_s: a time budget for the whole suite (None: only the checks' own budgets).
        baselines: compare with the committed baselines, or record new ones on this runner.
        token: the token for the comment; never printed.
        env: input `env`, one entry a line (`NAME` or `NAME=value`); validated by the
            supervisor (mltest.env_request), so a refused entry is in the report too.
        allow_secret_env: input `allow-secret-env`: credential-like names `env` may pass.
    """

    config: Path = Path("mltest.yaml")
    report_dir: Path = Path("mltest-report")
    comment: CommentMode = CommentMode.ALWAYS
    comment_id: str = ""
    fail_on: FailOn = FailOn.FAILURE
    require_gpu: bool = False
    max_time_s: float | None = None
    baselines: BaselineMode = BaselineMode.COMPARE
    token: str = field(default="", repr=False)
    env: tuple[str, ...] = field(default=(), repr=False)
    allow_secret_env: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ActionSettings:
        """Read and validate the ``MLTEST_*`` variables.

        Raises:
            SettingsError: a value is not allowed; the message names the input.
        """

        def get(name: str, default: str) -> str:
            return (env.get(INPUT_ENV[name]) or default).strip()

        comment_id = get("comment-id", "")
        if comment_id:
            try:
                validate_comment_id(comment_id)
            except ValueError as exc:
                raise SettingsError(
                    f"input {exc} ({INPUT_ENV['comment-id']})", "comment-id"
                ) from exc
        return cls(
            config=Path(get("config", "mltest.yaml")),
            report_dir=Path(get("report-dir", "mltest-report")),
            comment=_choice("comment", get("comment", "always"), CommentMode),
            comment_id=comment_id,
            fail_on=_choice("fail-on", get("fail-on", "failure"), FailOn),
            require_gpu=bool(get("gpus", "")),
            max_time_s=_seconds("max-time", get("max-time", "")),
            baselines=_choice("baselines", get("baselines", "compare"), BaselineMode),
            token=env.get(INPUT_ENV["github-token"], "").strip(),
            env=tuple(env.get(INPUT_ENV["env"], "").splitlines()),
            allow_secret_env=tuple(get("allow-secret-env", "").split()),
        )

    @classmethod
    def leniently_from_env(cls, env: Mapping[str, str]) -> tuple[ActionSettings, list[str]]:
        """The settings with each input mltest does not accept read as its default, and the
        messages about those inputs: an early error is still published (with the comment,
        comment-id and fail-on asked for) when a bad input is the error or comes with it."""
        problems: list[str] = []
        env = dict(env)
        while True:
            try:
                return cls.from_env(env), problems
            except SettingsError as exc:
                problems.append(str(exc))
                env.pop(INPUT_ENV[exc.input], None)


def _seconds(name: str, value: str) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise SettingsError(
            f"input {name} ({INPUT_ENV[name]}) must be a positive number of seconds or empty; "
            f"got {value!r}",
            name,
        )
    return seconds


def _choice(name: str, value: str, enum: type[Enum]) -> Enum:
    try:
        return enum(value.lower())
    except ValueError:
        allowed = ", ".join(m.value for m in enum)
        raise SettingsError(
            f"input {name} ({INPUT_ENV[name]}) must be one of {allowed}; got {value!r}", name
        ) from None
