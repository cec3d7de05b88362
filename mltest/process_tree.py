"""Containment of the worker's process tree: nothing the model code starts outlives the run.

Supervisor side: imports no torch and no user code. Three layers, each catching what the one
before may miss:

1. a cgroup v2 of its own for the worker, where the supervisor may create one (a delegated
   cgroup, e.g. under systemd's `Delegate=yes`); killing the cgroup ends every member at once;
2. the supervisor as the children's *subreaper* (Linux `PR_SET_CHILD_SUBREAPER`): a process
   whose parent dies (a daemon that forked twice and called `setsid`, a helper whose worker was
   killed) is re-parented to the supervisor instead of init, so it stays a descendant and is
   found by walking `/proc`;
3. a random marker in the worker's environment, inherited by everything it starts: a process
   that carries it is the worker's, wherever it was re-parented. The GitHub runner's own
   `RUNNER_TRACKING_ID` is passed on to the worker the same way, so the runner's clean-up at the
   end of the job still finds a leftover process if the supervisor itself was killed.

`sweep()` kills every process found by any layer, repeating until none is left (a process may
fork while its siblings die), and reaps the ones re-parented to the supervisor.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import sys
import time
from pathlib import Path

MARKER_ENV = "MLTEST_WORKER_TREE"
_PR_SET_CHILD_SUBREAPER = 36
_PR_GET_CHILD_SUBREAPER = 37
_CGROUP_ROOT = Path("/sys/fs/cgroup")
_SWEEP_ROUNDS = 100


class Containment:
    """The worker trees of one run. Use as a context manager around every worker it starts.

    Attributes:
        marker: the value of `MLTEST_WORKER_TREE` in every worker's environment.
        subreaper: whether orphans re-parent to this process (Linux only).
        cgroup: the cgroup v2 folder the workers are put in, or None where none can be made.
    """

    def __init__(self) -> None:
        self.marker = secrets.token_hex(12)
        self.subreaper = False
        self.cgroup: Path | None = None
        self._was_subreaper = 0
        self._children_before: set[int] = set()

    def __enter__(self) -> Containment:
        self._children_before = children(os.getpid())
        self._was_subreaper, self.subreaper = _set_subreaper(True)
        self.cgroup = _make_cgroup()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sweep()
        if self.cgroup is not None:
            with contextlib.suppress(OSError):
                self.cgroup.rmdir()
        if self.subreaper and not self._was_subreaper:
            _set_subreaper(False)

    def environment(self) -> dict[str, str]:
        """What to add to a worker's environment so that its whole tree can be found."""
        return {MARKER_ENV: self.marker}

    def adopt(self, pid: int) -> None:
        """Put a just-started worker in the run's cgroup (before it can run user code)."""
        if self.cgroup is None:
            return
        try:
            (self.cgroup / "cgroup.procs").write_text(str(pid))
        except OSError:  # not movable after all: the other two layers still hold
            self.cgroup = None

    def sweep(self) -> list[int]:
        """SIGKILL every process of the workers' trees until none is left; return their pids.

        Call it only after the worker itself was reaped (`Popen.wait`): a worker reaped here
        would leave its `Popen` without an exit code.
        """
        killed: list[int] = []
        if self.cgroup is not None:  # the whole cgroup at once, where the kernel offers it
            with contextlib.suppress(OSError):
                (self.cgroup / "cgroup.kill").write_text("1")
        for _ in range(_SWEEP_ROUNDS):
            members = self.members()
            if not members:
                break
            for pid in members:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            killed += [pid for pid in members if pid not in killed]
            time.sleep(0.02)
            self._reap()
        self._reap()
        return killed

    def members(self) -> set[int]:
        """Live processes that belong to the workers' trees (zombies excluded)."""
        table = process_table()
        me = os.getpid()
        found = set(self._cgroup_members())
        kids: dict[int, list[int]] = {}
        for pid, (ppid, _state) in table.items():
            kids.setdefault(ppid, []).append(pid)
        todo = [pid for pid in kids.get(me, []) if pid not in self._children_before]
        while todo:  # every descendant of the children started during the run
            pid = todo.pop()
            found.add(pid)
            todo += kids.get(pid, [])
        found |= {pid for pid in table if pid != me and _carries(pid, self.marker)}
        return {pid for pid in found if pid != me and table.get(pid, (0, "Z"))[1] != "Z"}

    def _cgroup_members(self) -> list[int]:
        if self.cgroup is None:
            return []
        try:
            return [int(p) for p in (self.cgroup / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def _reap(self) -> None:
        """Collect the exit status of orphans re-parented here (they were never our Popens)."""
        me = os.getpid()
        for pid, (ppid, state) in process_table().items():
            if ppid == me and state == "Z" and pid not in self._children_before:
                with contextlib.suppress(ChildProcessError, OSError):
                    os.waitpid(pid, os.WNOHANG)


def process_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, state letter) for every process in /proc (empty without /proc)."""
    table = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return table
    for entry in entries:
        if entry.isdigit():
            stat = process_stat(int(entry))
            if stat is not None:
                table[int(entry)] = stat
    return table


def process_stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, state) of `pid` from /proc/PID/stat: `T` stopped, `t` stopped by a
    debugger, `Z` a zombie...; None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(errors="replace")
    except OSError:
        return None
    fields = text.rsplit(")", 1)[-1].split()  # the command name may hold spaces and ')'
    if len(fields) < 2 or not fields[1].lstrip("-").isdigit():
        return None
    return int(fields[1]), fields[0]


def children(pid: int) -> set[int]:
    """The live direct children of `pid`."""
    return {child for child, (ppid, _state) in process_table().items() if ppid == pid}


def _carries(pid: int, marker: str) -> bool:
    try:
        data = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:  # gone, or another user's
        return False
    return f"{MARKER_ENV}={marker}".encode() in data


def _set_subreaper(on: bool) -> tuple[int, bool]:
    """Set this process's subreaper flag; return (the flag before, whether it is set now)."""
    if not sys.platform.startswith("linux"):
        return 0, False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        before = ctypes.c_int(0)
        libc.prctl(_PR_GET_CHILD_SUBREAPER, ctypes.byref(before), 0, 0, 0)
        ok = libc.prctl(_PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return 0, False
    return before.value, ok and on


def _make_cgroup() -> Path | None:
    """A new cgroup v2 below this process's own, or None (no cgroup v2, or not ours to use)."""
    if not (_CGROUP_ROOT / "cgroup.controllers").exists():
        return None  # cgroup v1 or none: the subreaper and the marker do the work
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    own = next((line[3:] for line in lines if line.startswith("0::")), None)
    if own is None:
        return None
    folder = _CGROUP_ROOT / own.lstrip("/") / f"mltest-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        folder.mkdir()
    except OSError:
        return None
    return folder
