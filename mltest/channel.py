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
MAX_LINE_BYTES = 64 * 1024 * 1024  # a result with huge details is still bounded


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
    """The supervisor's end: splits the bytes read from the pipe into messages."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        """Messages completed by `data`.

        Raises:
            ChannelError: a line is not a JSON object of a known type, or is too long.
        """
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        if len(self._buffer) > MAX_LINE_BYTES:
            raise ChannelError(f"a message longer than {MAX_LINE_BYTES} bytes")
        return [_parse(line) for line in lines if line.strip()]


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
