"""The one small exception hierarchy. Messages name the file, key or check and say what to do."""

import os
import sys
import sysconfig
import traceback
from pathlib import Path

_LIBRARY_DIRS = ("torch", "lightning", "pytorch_lightning", "mltest", "site-packages")
_STDLIB = sysconfig.get_paths()["stdlib"]
_MLTEST_DIR = os.path.dirname(os.path.abspath(__file__))
# What mltest drives the model code through: a failing frame in one of these is blamed on
# whoever called it (mltest or the model code), not on the library.
_ENGINE_PACKAGES = (
    "torch",
    "lightning",
    "pytorch_lightning",
    "lightning_fabric",
    "lightning_utilities",
    "torchmetrics",
    "numpy",
    "pandas",
    "safetensors",
    "pydantic",
    "yaml",
)
# Errors about the autograd graph the model code built, whoever called backward on it (Lightning
# in automatic optimization, mltest's own loops): never mltest's, although no model frame is on
# the stack by then.
MODEL_GRAPH_ERRORS = ("Trying to backward through the graph a second time",)
ISSUES_URL = "https://github.com/org/mltest-action/issues"
INTERNAL_HINT = (
    f"This is a bug in mltest, not in the model code: please report it ({ISSUES_URL}) with "
    "the traceback in the details and the versions in report.json. The other checks still ran."
)


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


def raised(exc: BaseException) -> str:
    """Who raised, for a message: `the model code raised T: msg (at model.py:3 in f)`, or,
    when the failing frame is mltest's own, `an internal error in mltest: T: msg (at
    mltest/x.py:3 in f); please report it`: a bug of mltest's is never blamed on the model."""
    where = internal_frame(exc)
    if where:
        return f"an internal error in mltest: {type(exc).__name__}: {exc}{where}; please report it"
    return f"the model code raised {describe(exc)}"


def internal_frame(exc: BaseException) -> str:
    """` (at mltest/checks/x.py:12 in fn)` when the exception's failing frame is mltest's, else "".

    The failing frame is the innermost one outside Python's own modules and the libraries
    mltest drives the model with (torch, Lightning, numpy, ...): an error inside `torch.cat`
    called by mltest is mltest's; one inside a layer's forward is the model's, and so is one
    in any other library the model code calls (transformers, timm). An error about the graph
    the model built (`MODEL_GRAPH_ERRORS`) is the model's wherever backward was called.
    """
    if isinstance(exc, RuntimeError) and any(m in str(exc) for m in MODEL_GRAPH_ERRORS):
        return ""
    engine = tuple(_package_dirs(_ENGINE_PACKAGES))
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        name = os.path.abspath(frame.filename) if not frame.filename.startswith("<") else ""
        if not name or name.startswith(_STDLIB) or name.startswith(engine):
            continue
        if name.startswith(_MLTEST_DIR + os.sep):
            if _hands_on(frame):
                continue
            shown = os.path.relpath(name, os.path.dirname(_MLTEST_DIR))
            return f" (at {shown}:{frame.lineno} in {frame.name})"
        return ""
    return ""


def _hands_on(frame: traceback.FrameSummary) -> bool:
    """Whether an mltest frame only hands the model's own torch call on: a probe's torch
    function mode (`return func(*args, ...)`), where the model's error passes through."""
    return frame.name == "__torch_function__" and (frame.line or "").startswith("return func(")


def _package_dirs(names: tuple[str, ...]):
    """The folders of the named packages this process imported (one not imported has no frame)."""
    for name in names:
        origin = getattr(sys.modules.get(name), "__file__", None)
        if origin:
            yield os.path.dirname(os.path.abspath(origin)) + os.sep
