"""The one small exception hierarchy. Messages name the file, key or check and say what to do."""

import sysconfig
import traceback
from pathlib import Path

_LIBRARY_DIRS = ("torch", "lightning", "pytorch_lightning", "mltest", "site-packages")
_STDLIB = sysconfig.get_paths()["stdlib"]


class MltestError(Exception):
    """Base of every error mltest raises on purpose; its message is shown to the user as is."""


class ConfigError(MltestError):
    """The config file is missing, malformed, or holds an unknown or wrongly typed key."""


class ProjectError(MltestError):
    """The user's model or data module could not be imported or built."""


class BaselineError(MltestError):
    """A baseline or golden file is missing, unreadable or of another format."""


class CheckTimeout(MltestError):
    """A check ran past its wall-clock time budget."""


class CheckFailed(MltestError):
    """Raised by shared helpers to fail the running check with a diagnosis.

    The runner reports it as a failure (not an error): the user's change broke something.
    """

    def __init__(self, summary: str, *, details: str = "", hint: str = ""):
        super().__init__(summary)
        self.summary = summary
        self.details = details
        self.hint = hint


def describe(exc: BaseException) -> str:
    """`Type: message (at file.py:12 in fn)`, short enough for a PR comment."""
    return f"{type(exc).__name__}: {exc}{user_frame(exc)}"


def user_frame(exc: BaseException) -> str:
    """` (at file.py:12 in fn)` for the innermost frame outside torch, Lightning and mltest."""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if is_user_file(frame.filename):
            return f" (at {Path(frame.filename).name}:{frame.lineno} in {frame.name})"
    return ""


def is_user_file(filename: str) -> bool:
    """Whether a frame's file is the user's: not torch, Lightning, mltest or the stdlib
    (`<frozen importlib._bootstrap>` and other `<...>` pseudo-files are the interpreter's)."""
    if filename.startswith((_STDLIB, "<")):
        return False
    return not any(f"/{part}/" in filename for part in _LIBRARY_DIRS)
