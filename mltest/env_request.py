"""Environment variables the model code gets on purpose, beyond the allow-list (supervisor side).

The worker starts with an allow-listed environment (`worker_handle.worker_environment`). A team
whose code reads `DATA_DIR`, `HF_HUB_OFFLINE` or a switch of its own passes it by name: an entry
`NAME` copies the variable from the environment mltest runs in, `NAME=value` sets it (the
action's `env` input, one entry a line; `mltest run --env`). A name that looks like a
credential is refused unless allowed by name (`allow-secret-env`), and the runner's token and
file commands never pass. Values are never printed: every message names the variable only.

The supervisor also works out which variables it withheld from the model code (names only),
so the worker can say when the model code looks one of them up.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from mltest.errors import MltestError
from mltest.runner_files import FILE_COMMANDS
from mltest.worker_handle import looks_secret, worker_environment

# docker mode: the names (never the values) of the runner's environment, which the suite's
# container does not see, so a lookup of one of them can still be explained.
RUNNER_NAMES_ENV = "MLTEST_RUNNER_ENV_NAMES"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# The job's tokens and the runner's control files: no allowance lets model code have them.
NEVER_PASSED = frozenset(
    {"MLTEST_GITHUB_TOKEN", "GITHUB_TOKEN", "GH_TOKEN", "ACTIONS_RUNTIME_TOKEN",
     "ACTIONS_ID_TOKEN_REQUEST_TOKEN", "ACTIONS_ID_TOKEN_REQUEST_URL", *FILE_COMMANDS}
)  # fmt: skip
_RESERVED_PREFIX = "MLTEST_"  # mltest's own settings and the worker's plumbing
_MAX_WITHHELD = 2000  # names sent to the worker; a runner has a few hundred at most
_HOW_TO_ALLOW = (
    "the action input `allow-secret-env` (a line with the name), or `--allow-secret-env NAME` "
    "on the command line"
)


class EnvError(MltestError):
    """An `env` entry mltest refuses: a bad name, a credential not allowed, a reserved name."""


@dataclass(frozen=True)
class EnvRequest:
    """What was asked for, validated.

    Attributes:
        passed: names copied from the environment mltest runs in.
        values: literal `NAME=value` settings (never shown: repr leaves them out).
    """

    passed: tuple[str, ...] = ()
    values: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    @classmethod
    def parse(cls, entries: Iterable[str], allow_secret: Iterable[str] = ()) -> EnvRequest:
        """Read entries (`NAME` or `NAME=value`; blank lines and `#` comments skipped).

        Raises:
            EnvError: naming the entry's variable (never its value) and what to do.
        """
        allowed = set()
        for number, line in enumerate(_lines(allow_secret), 1):
            allowed.add(_valid_name(line, f"allow-secret-env, entry {number}"))
        passed: list[str] = []
        values: dict[str, str] = {}
        for number, line in enumerate(_lines(entries), 1):
            name, has_value, value = line.partition("=")
            name = _valid_name(name.strip(), f"env, entry {number}")
            _refuse_unsafe(name, allowed)
            if has_value:
                values[name] = value
            elif name not in passed:
                passed.append(name)
        return cls(tuple(passed), tuple(values.items()))


@dataclass(frozen=True)
class WorkerEnv:
    """The worker's environment and what the supervisor tells the worker about the rest.

    Attributes:
        env: the worker's environment (allow-list, plus what was asked for).
        withheld: names the supervisor (or, in docker mode, the runner) has and the worker does
            not get, secrets left out: a lookup of one of them gets a notice.
        unset: names asked for by `NAME` that are not set where mltest runs.
    """

    env: dict[str, str] = field(repr=False)
    withheld: tuple[str, ...]
    unset: tuple[str, ...]


def build_worker_env(source: Mapping[str, str], request: EnvRequest) -> WorkerEnv:
    """The worker's environment for `request`, filtered from `source`."""
    env = worker_environment(source, request.passed)
    env.update(request.values)
    runner = set(source.get(RUNNER_NAMES_ENV, "").split())
    candidates = (set(source) | runner) - set(env)
    withheld = sorted(
        name
        for name in candidates
        if _NAME.match(name)
        and not looks_secret(name)
        and name not in NEVER_PASSED
        and not name.startswith(_RESERVED_PREFIX)
    )[:_MAX_WITHHELD]
    unset = tuple(name for name in request.passed if name not in source)
    return WorkerEnv(env, tuple(withheld), unset)


def _lines(entries: Iterable[str]) -> list[str]:
    """Entries one per item, an item holding several lines (an action input) split up."""
    out = []
    for entry in entries:
        for line in str(entry).splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                out.append(line)
    return out


def _valid_name(name: str, what: str) -> str:
    if not _NAME.match(name):
        # Only the start that could be a name: the rest may be a value (`HF_TOKEN: hf_...`).
        start = re.match(r"[A-Za-z0-9_]{0,60}", name).group()
        shown = f" (starting `{start}`)" if start else ""
        raise EnvError(
            f"{what}{shown} is not an environment variable name (letters, digits and _, not "
            "starting with a digit); write one entry a line: `NAME` to pass the variable "
            "from the runner's environment, or `NAME=value` to set it"
        )
    return name


def _refuse_unsafe(name: str, allowed: set[str]) -> None:
    if name in NEVER_PASSED or name.startswith(_RESERVED_PREFIX):
        raise EnvError(
            f"env: {name} is never passed to the model code (the job's token, the runner's "
            "file commands and mltest's own MLTEST_* settings stay with mltest); remove it"
        )
    if looks_secret(name) and name not in allowed:
        raise EnvError(
            f"env: {name} looks like a credential, and the model code gets no credential "
            f"unless it is allowed by name: if the model code really needs it, allow it with "
            f"{_HOW_TO_ALLOW}; otherwise remove it from env"
        )
