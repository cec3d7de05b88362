"""How the supervisor guards its own process: closed to processes of the same user, and
cancelled by SIGINT/SIGTERM into a final report. Supervisor side: imports no torch, no user code."""

from __future__ import annotations

import contextlib
import platform
import signal
import threading
from typing import Any


def protect_from_other_processes() -> None:
    """Make this process non-dumpable (Linux): processes of the same user, such as the worker,
    can then no longer read its environment or memory under /proc, where a token may live."""
    if platform.system() != "Linux":
        return
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE, 0


class Cancellation:
    """SIGINT/SIGTERM handlers for the run (main thread only): record the signal; the run loop
    stops the worker and writes the final report."""

    def __init__(self) -> None:
        self.signal: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Cancellation:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: object) -> None:
        self.signal = signal.Signals(signum).name
