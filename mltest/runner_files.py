"""The GitHub runner's file commands, guarded while the model code runs.

A step steers later steps through files the runner names in its environment: `GITHUB_ENV`
(`BASH_ENV=...` runs code in every later bash step), `GITHUB_PATH`, `GITHUB_OUTPUT` (the
`result` output), `GITHUB_STEP_SUMMARY`, `GITHUB_STATE`. The worker's environment holds none of
these names, but in host mode the model code runs as the runner's user and can find the files
anyway (they sit in the runner's temp folder). So the supervisor keeps a copy of each file as
the run found it and, once every process of the worker's tree is gone, puts back what was
changed and reports it: the run is then an error. Supervisor side: no torch, no user code.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

FILE_COMMANDS = (
    "GITHUB_ENV", "GITHUB_PATH", "GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY", "GITHUB_STATE",
)  # fmt: skip
_MAX_KEPT = 16 * 1024 * 1024  # a file command larger than this at the start is not guarded


@dataclass(frozen=True)
class _Kept:
    variable: str
    path: Path
    content: bytes


class RunnerFiles:
    """The file commands of the current step as the run found them."""

    def __init__(self, kept: list[_Kept]):
        self._kept = kept

    @classmethod
    def snapshot(cls, environ: Mapping[str, str]) -> RunnerFiles:
        """Remember each file command named in `environ` (none outside GitHub Actions)."""
        kept = []
        for variable in FILE_COMMANDS:
            value = environ.get(variable, "")
            if not value:
                continue
            path = Path(value)
            content = _read(path)
            if content is not None:
                kept.append(_Kept(variable, path, content))
        return cls(kept)

    def restore(self) -> list[str]:
        """Put back every file the run changed; one sentence per file, for the report's errors.

        Call it only when no process of the worker's tree is left, so nothing writes again.
        """
        problems = []
        for kept in self._kept:
            now = _read(kept.path)
            if now == kept.content:
                continue
            if now is None:
                changed = "replaced it"
            else:
                changed = f"changed its size by {len(now) - len(kept.content):+d} bytes"
            try:
                _put_back(kept.path, kept.content)
                done = "mltest restored it"
            except OSError as exc:
                done = f"mltest could not restore it ({exc}); do not trust later steps of this job"
            problems.append(
                f"${kept.variable} ({kept.path}) changed while the model code ran (something "
                f"{changed}): only mltest may write the runner's file commands; {done}. The "
                "run is an error: find what in the model code writes there"
            )
        return problems


def _read(path: Path) -> bytes | None:
    """The file's bytes, or None when it is not a regular file (a link, a folder) or too big."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > _MAX_KEPT:
            return None
        return handle.read(_MAX_KEPT + 1)


def _put_back(path: Path, content: bytes) -> None:
    """Write `content` to `path` in place (the runner holds the name), never through a link."""
    with contextlib.suppress(FileNotFoundError):
        info = os.lstat(path)
        if not stat.S_ISREG(info.st_mode):
            if stat.S_ISDIR(info.st_mode):
                os.rmdir(path)
            else:
                os.unlink(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)
