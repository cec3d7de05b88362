"""How the supervisor guards its own process: closed to processes of the same user, secrets
gone from its environment, and cancelled by SIGINT/SIGTERM into a final report. Supervisor
side: imports no torch, no user code."""

from __future__ import annotations

import contextlib
import os
import platform
import signal
import threading
from collections.abc import Iterable
from typing import Any


def protect_from_other_processes() -> None:
    """Make this process non-dumpable (Linux): processes of the same user, such as the worker,
    can then no longer read its environment or memory under /proc, where a token may live."""
    if platform.system() != "Linux":
        return
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE, 0


def forget_secrets(names: Iterable[str]) -> list[str]:
    """Remove these variables from this process's environment, values first wiped in place.

    `os.environ.pop` alone is not enough: `/proc/<pid>/environ` shows the environment block
    the process started with, and the value stays there. The block is overwritten (Linux, via
    the C `environ` array) before the variable is unset, so neither a reader of that file (a
    root runner's model code, which non-dumpable does not stop) nor a child sees the value.

    Returns:
        The names that were present.
    """
    wanted = {name for name in names if name in os.environ}
    if platform.system() == "Linux" and wanted:
        _wipe_values(wanted)
    for name in wanted:
        os.environ.pop(name, None)
    return sorted(wanted)


def _wipe_values(names: set[str]) -> None:
    import ctypes

    with contextlib.suppress(OSError, AttributeError, ValueError):
        libc = ctypes.CDLL(None)
        entry = ctypes.POINTER(ctypes.c_void_p).in_dll(libc, "environ")
        prefixes = {(name + "=").encode() for name in names}
        index = 0
        while entry[index]:
            address = entry[index]
            text = ctypes.string_at(address)
            prefix = next((p for p in prefixes if text.startswith(p)), None)
            if prefix is not None:
                ctypes.memset(address + len(prefix), ord("x"), len(text) - len(prefix))
            index += 1


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
