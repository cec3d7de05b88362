"""Python warnings raised while a check runs, kept as that check's notices (worker side).

Torch's own warnings often name a bug (`Using a target size ... that is different to the input
size ... broadcasting` is a regression loss on mismatched shapes), and a console that printed
them is not the report. The worker runs each check inside `caught()`: every warning that gets
past the filters (Python's defaults, plus Lightning's advice about how mltest drives it, which
mltest silences anyway) is recorded instead of printed, with the innermost frame of the model
code that led to it, and comes back deduplicated as notices of the check.
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

from mltest.errors import is_user_file

MAX_NOTICES = 10  # distinct warnings kept per check; the rest are counted
MAX_MESSAGE = 400  # characters of one warning's message


class CaughtWarnings:
    """The distinct warnings of one check, in the order they first came."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, str, str], None] = {}

    def add(self, message, category, filename, lineno, file=None, line=None) -> None:
        """`warnings.showwarning`'s signature: record instead of print."""
        where = _user_frame() or f"{Path(str(filename)).name}:{lineno}"
        self.seen.setdefault((category.__name__, str(message).strip(), where), None)

    def notices(self) -> list[str]:
        """One line per distinct warning: `UserWarning at model.py:23 in training_step: ...`."""
        lines = []
        for category, message, where in list(self.seen)[:MAX_NOTICES]:
            if len(message) > MAX_MESSAGE:
                message = message[: MAX_MESSAGE - 3].rstrip() + "..."
            lines.append(f"{category} at {where}: {message}")
        more = len(self.seen) - MAX_NOTICES
        if more > 0:
            lines.append(f"... and {more} more distinct warning(s) not shown")
        return lines


@contextlib.contextmanager
def caught() -> Iterator[CaughtWarnings]:
    """Record the warnings raised inside; Python's filters and Lightning's noise still apply.

    Entering resets the once-per-place registries, so each check sees its warnings afresh.
    """
    from mltest.engine import LIGHTNING_NOISE

    record = CaughtWarnings()
    with warnings.catch_warnings():
        for pattern in LIGHTNING_NOISE:
            warnings.filterwarnings("ignore", message=pattern)
        warnings.showwarning = record.add  # restored on exit
        yield record


def _user_frame() -> str:
    """`model.py:23 in training_step`: the innermost frame of the model code now running."""
    frame = sys._getframe(1)  # the warnings module first, then whoever warned
    while frame is not None:
        if is_user_file(frame.f_code.co_filename):
            name = Path(frame.f_code.co_filename).name
            return f"{name}:{frame.f_lineno} in {frame.f_code.co_name}"
        frame = frame.f_back
    return ""
