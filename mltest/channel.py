"""What travels between the supervisor and the worker: one JSON object per line on a pipe.

The worker sends, in order: `facts` (versions and device, once), then for each check `start`
and `result`, and `done` at the end; `suite_error` instead when the user's project cannot be
loaded at all. The supervisor treats every message as untrusted data from a process that ran
user code: it is parsed, never executed, and anything malformed ends that worker.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

# How the supervisor tells the worker where its job file and its end of the pipe are.
CHANNEL_FD_ENV = "MLTEST_CHANNEL_FD"
JOB_ENV = "MLTEST_JOB"
MESSAGE_TYPES = frozenset({"facts", "start", "result", "suite_error", "done"})
MAX_MESSAGE_BYTES = 16 * 1024 * 1024  # one message; the worker keeps results far smaller


class ChannelError(Exception):
    """The worker sent something that is not a message of this protocol."""


@dataclass
class Job:
    """What the supervisor asks one worker process to do (a JSON file named in its env).

    Attributes:
        config: the config file, absolute.
        checks: names of the checks to run, in order.
        update_baselines: record baselines instead of comparing with them.
        staging: folder where the worker stages baseline and golden files for the supervisor.
        stack_file: where the worker's Python stacks are dumped on SIGUSR1 or a crash.
    """

    config: str
    checks: list[str]
    update_baselines: bool
    staging: str
    stack_file: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(self.__dict__)

    @classmethod
    def from_json(cls, text: str) -> Job:
        return cls(**json.loads(text))


class Sender:
    """The worker's end: writes whole lines with one `os.write` each, so a message is never
    interleaved with another. Without a descriptor (a ddp rank other than 0) it sends nothing."""

    def __init__(self, fd: int | None):
        self.fd = fd

    def send(self, kind: str, **payload: Any) -> None:
        if self.fd is None:
            return
        data = (json.dumps({"type": kind, **payload}, default=_jsonable) + "\n").encode()
        view = memoryview(data)
        while view:
            written = os.write(self.fd, view)
            view = view[written:]


class Receiver:
    """The supervisor's end: splits the bytes read from the pipe into messages.

    Linear in the bytes received: a partial line is kept as a list of chunks and joined once,
    when its newline arrives, so one large message costs one copy, not one per read.
    """

    def __init__(self, max_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._partial: list[bytes] = []
        self._partial_size = 0

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        """Messages completed by `data`.

        Raises:
            ChannelError: a line is not a JSON object of a known type, or is longer than
                `max_bytes`.
        """
        lines = data.split(b"\n")
        if len(lines) == 1:  # no newline: the message goes on
            self._keep(data)
            return []
        messages = []
        self._keep(lines[0])
        first = b"".join(self._partial)
        self._partial, self._partial_size = [], 0
        for line in (first, *lines[1:-1]):
            self._check_size(len(line))
            if line.strip():
                messages.append(_parse(line))
        self._keep(lines[-1])
        return messages

    def _keep(self, chunk: bytes) -> None:
        if chunk:
            self._check_size(self._partial_size + len(chunk))
            self._partial.append(chunk)
            self._partial_size += len(chunk)

    def _check_size(self, size: int) -> None:
        if size > self.max_bytes:
            raise ChannelError(
                f"a message of more than {self.max_bytes // (1024 * 1024)} MiB (its details or "
                "metrics are too large to be a check's result)"
            )


def _parse(line: bytes) -> dict[str, Any]:
    try:
        message = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ChannelError(f"not a JSON message ({exc})") from exc
    if not isinstance(message, dict) or message.get("type") not in MESSAGE_TYPES:
        raise ChannelError(f"not a message of the worker protocol: {str(message)[:200]}")
    return message


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "value"):  # enums
        return value.value
    return str(value)
