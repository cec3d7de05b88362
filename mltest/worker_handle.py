"""The supervisor's handle on one worker process: start it without secrets, read its messages
against a deadline, take its Python stack, stop it, and say in words how it ended."""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mltest.channel import CHANNEL_FD_ENV, JOB_ENV, Job, Receiver
from mltest.process_tree import Containment, process_stat

# The worker's environment is built from this allow-list, never by removing known secrets.
_PASS_NAMES = frozenset(
    {
        "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TERM", "PWD",
        "TMPDIR", "TEMP", "TMP", "CI", "PYTHONPATH", "PYTHONHASHSEED", "PYTHONUNBUFFERED",
        "PYTHONDONTWRITEBYTECODE", "PYTHONWARNINGS", "PYTHONIOENCODING", "PYTHONUTF8",
        "VIRTUAL_ENV", "CONDA_PREFIX", "CONDA_DEFAULT_ENV", "LD_LIBRARY_PATH",
        "RUNNER_TRACKING_ID",  # the runner's clean-up at the job's end finds leftovers by it
        "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OPENBLAS_CORETYPE",
        "OPENBLAS_L2_SIZE", "NUMEXPR_NUM_THREADS", "CUBLAS_WORKSPACE_CONFIG",
    }
)  # fmt: skip
_PASS_PREFIXES = ("LC_", "CUDA_", "NVIDIA_", "CUDNN_", "NCCL_", "TORCH_", "PYTORCH_", "XDG_")
# Even an allowed prefix never carries a name that looks like a credential.
_SECRET_NAME = re.compile(
    r"TOKEN|SECRET|PASSW|CREDENTIAL|PRIVATE|COOKIE|SESSION|AUTH|(^|_)KEY($|_)|APIKEY",
    re.IGNORECASE,
)
STOP_GRACE_S = 3.0  # between SIGTERM and SIGKILL (Lightning catches SIGTERM and carries on)
STOPPED_LIMIT_S = 2.0  # a worker stopped this long (SIGSTOP, a debugger) is killed
_DRAIN_READS = 64  # reads per drain: a worker that writes endlessly cannot hold the loop


def looks_secret(name: str) -> bool:
    """Whether an environment variable's name looks like a credential's (`GITHUB_TOKEN`...)."""
    return bool(_SECRET_NAME.search(name))


def worker_environment(source: Mapping[str, str], passed: Iterable[str] = ()) -> dict[str, str]:
    """The environment a worker gets: allowed names from `source`, plus names the caller
    passes on purpose (`--pass-env`); nothing else, so no token of any name reaches user code.
    """
    env = {
        name: value
        for name, value in source.items()
        if (name in _PASS_NAMES or name.startswith(_PASS_PREFIXES))
        and not _SECRET_NAME.search(name)
    }
    for name in passed:
        if name in source:
            env[name] = source[name]
    env["PYTHONUNBUFFERED"] = "1"
    return env


class WorkerProcess:
    """One running worker. Messages come from `messages(until)`; `stop()` ends it for sure.

    Args:
        job: what the worker is asked to do.
        env: its environment (already filtered: no secret).
        containment: the run's process-tree containment; the worker and everything it starts
            are found and killed through it.
        pause_commands: a random token: the worker's output goes to the job log between
            `::stop-commands::<token>` and `::<token>::`, so GitHub Actions runs no workflow
            command the model code prints (`::add-mask::`, `::error::`, `::set-output`...).
            None outside GitHub Actions.
        cwd: its working directory (default: this process's).
    """

    def __init__(
        self,
        job: Job,
        env: dict[str, str],
        containment: Containment,
        *,
        pause_commands: str | None = None,
        cwd: Path | None = None,
    ):
        self.job = job
        self.containment = containment
        self._pause = pause_commands
        read_fd, write_fd = os.pipe()
        self._receiver = Receiver()
        self._read = os.fdopen(read_fd, "rb", buffering=0)
        os.set_blocking(read_fd, False)
        # A file, not stdin: ddp's other ranks are this module started again, and read it too.
        job_file = Path(f"{job.stack_file}.job.json")
        job_file.write_text(job.to_json(), encoding="utf-8")
        if self._pause:
            _say(f"::stop-commands::{self._pause}")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mltest.worker"],
            stdin=subprocess.DEVNULL,
            # One stream while commands are paused: the runner reads stdout and stderr
            # separately, so a line on stderr could overtake the pause on stdout.
            stderr=subprocess.STDOUT if self._pause else None,
            env={
                **env,
                **containment.environment(),
                CHANNEL_FD_ENV: str(write_fd),
                JOB_ENV: str(job_file),
            },
            cwd=cwd,
            pass_fds=(write_fd,),
            start_new_session=True,  # its own process group: stop() reaches its children too
        )
        os.close(write_fd)
        containment.adopt(self.process.pid)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._read, selectors.EVENT_READ, "pipe")
        self._pidfd = _pidfd(self.process.pid)
        if self._pidfd is not None:  # wakes the wait the moment the worker ends
            self._selector.register(self._pidfd, selectors.EVENT_READ, "exit")
        self._stopped_since: float | None = None
        self._pipe_open = True
        self._ended = False  # stop() has run

    def messages(self, until: float, poll_s: float = 0.2) -> tuple[list[dict[str, Any]], str]:
        """Messages that arrived by `until` (monotonic time), or within one poll.

        The worker's end is judged by the process, not the pipe: a helper it forked may hold
        the pipe open long after the worker itself was killed.

        Returns:
            (messages, state): state is `open`; `exited` (the worker process has ended; what
            it wrote before is in `messages`); `stopped` (it has been stopped, by SIGSTOP or a
            debugger, for STOPPED_LIMIT_S); or `timeout` (`until` passed).

        Raises:
            ChannelError: it sent something that is not a protocol message.
        """
        if self._ended:
            return [], "exited"
        if self.process.poll() is not None:
            return self._drain(), "exited"
        remaining = until - time.monotonic()
        if remaining <= 0:
            return [], "timeout"
        ready = self._selector.select(min(remaining, poll_s))
        messages = self._drain() if any(key.data == "pipe" for key, _ in ready) else []
        if self.process.poll() is not None:
            return messages + self._drain(), "exited"
        if self._stopped_for() >= STOPPED_LIMIT_S:
            return messages, "stopped"
        return messages, "open"

    def _drain(self) -> list[dict[str, Any]]:
        """Everything the pipe holds now, without waiting for more (non-blocking reads)."""
        messages: list[dict[str, Any]] = []
        for _ in range(_DRAIN_READS if self._pipe_open else 0):
            try:
                data = self._read.read(1 << 20)
            except BlockingIOError:
                break
            if data is None:  # nothing more for now (a non-blocking read)
                break
            if not data:  # every writer closed its end: wait on the process alone from now on
                messages += self._receiver.feed(b"\n")
                self._selector.unregister(self._read)
                self._pipe_open = False
                break
            messages += self._receiver.feed(data)
        return messages

    def _stopped_for(self) -> float:
        """Seconds the worker has been stopped (state T or t in /proc), 0 when running."""
        stat = process_stat(self.process.pid)
        if stat is None or stat[1] not in "Tt":
            self._stopped_since = None
            return 0.0
        now = time.monotonic()
        if self._stopped_since is None:
            self._stopped_since = now
        return now - self._stopped_since

    def stack(self, wait_s: float = 1.0) -> str:
        """The worker's Python stacks, dumped by faulthandler on SIGUSR1 (best effort)."""
        path = Path(self.job.stack_file)
        if self._stopped_for() > 0:  # a stopped process dumps nothing
            return read_stack(path)[-4000:]
        before = _size(path)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, signal.SIGUSR1)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and _size(path) == before:
            time.sleep(0.05)
        time.sleep(0.1)  # let it finish writing all threads
        return read_stack(path)[-4000:]

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """SIGTERM to the worker's process group, SIGKILL after `grace_s` (at once when it is
        stopped); reap it; then kill whatever else of its tree is left."""
        if self._ended:
            return
        if self.process.poll() is None and self._stopped_for() == 0:
            _signal_group(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(grace_s)
        _signal_group(self.process.pid, signal.SIGKILL)  # children left behind, too
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)
        self.containment.sweep()  # forked helpers, daemons that called setsid
        self._selector.close()
        self._read.close()
        if self._pidfd is not None:
            os.close(self._pidfd)
        self._ended = True
        if self._pause:
            _say(f"::{self._pause}::")

    def how_it_ended(self) -> str:
        """`exited with code 0`, `was killed by SIGKILL (...)`: for error messages."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)
        return describe_exit(self.process.returncode)


def describe_exit(code: int | None) -> str:
    """A worker's return code in words, with the usual cause of each signal."""
    if code is None:
        return "stopped answering"
    if code >= 0:
        return f"exited with code {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        return f"was killed by signal {-code}"
    causes = {
        "SIGKILL": "often the kernel's out-of-memory killer; check `dmesg`, use less memory",
        "SIGSEGV": "a segmentation fault in native code",
        "SIGABRT": "native code aborted",
        "SIGBUS": "a bus error in native code, often a too small /dev/shm in Docker",
    }
    cause = causes.get(name)
    return f"was killed by {name}" + (f" ({cause})" if cause else "")


def read_stack(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return ""


def user_frame_in_stack(stack: str) -> str:
    """`model.py:12 in training_step`: the innermost frame outside torch, Lightning, mltest."""
    from mltest.errors import is_user_file

    pattern = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+) in (?P<fn>\S+)')
    # faulthandler prints one block per thread, innermost frame first; the thread that took
    # the signal (the main thread, where checks run) is marked "Current thread".
    blocks = stack.split("\n\n")
    main = next((b for b in blocks if "Current thread" in b), blocks[0])
    for match in pattern.finditer(main):
        if is_user_file(match["file"]):
            return f"{Path(match['file']).name}:{match['line']} in {match['fn']}"
    return ""


def _say(line: str) -> None:
    """A line on this process's stdout, before or after the worker's own output."""
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()
        os.write(sys.stdout.fileno(), (line + "\n").encode())


def _pidfd(pid: int) -> int | None:
    """A descriptor that becomes readable when `pid` ends (Linux 5.3+), else None."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
