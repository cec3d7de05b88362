"""GitHub Actions' side channels: workflow commands on stdout, GITHUB_OUTPUT, the job summary.

All writing goes through `Actions`, so tests pass a string buffer and temporary files.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

SUMMARY_LIMIT_BYTES = 1024 * 1024  # GitHub rejects a step summary above 1 MiB


def _escape_data(value: str) -> str:
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(value: str) -> str:
    return _escape_data(value).replace(":", "%3A").replace(",", "%2C")


class Actions:
    """Writes workflow commands, outputs and the job summary for the current step.

    Args:
        env: the environment (GITHUB_OUTPUT and GITHUB_STEP_SUMMARY are read from it; when
            absent, as on a laptop, outputs and summary are skipped).
        stream: where workflow commands go (stdout in a real run).
    """

    def __init__(self, env: Mapping[str, str], stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self.output_path = Path(env["GITHUB_OUTPUT"]) if env.get("GITHUB_OUTPUT") else None
        self.summary_path = (
            Path(env["GITHUB_STEP_SUMMARY"]) if env.get("GITHUB_STEP_SUMMARY") else None
        )

    def log(self, message: str) -> None:
        print(message, file=self.stream, flush=True)

    def annotate(self, level: str, message: str, *, title: str = "", file: str = "") -> None:
        """Emit an ``error``/``warning``/``notice`` annotation."""
        if level not in ("error", "warning", "notice"):
            raise ValueError(f"annotation level must be error, warning or notice, got {level!r}")
        props = ",".join(
            f"{key}={_escape_property(value)}"
            for key, value in (("title", title), ("file", file))
            if value
        )
        self.log(f"::{level}{' ' + props if props else ''}::{_escape_data(message)}")

    def error(self, message: str, *, title: str = "") -> None:
        self.annotate("error", message, title=title)

    def warning(self, message: str, *, title: str = "") -> None:
        self.annotate("warning", message, title=title)

    def set_outputs(self, outputs: Mapping[str, str]) -> None:
        """Append step outputs to GITHUB_OUTPUT using the multi-line heredoc form.

        The delimiter is random, so no value (a report can hold anything) can end it early.
        """
        if self.output_path is None:
            return
        chunks = []
        for name, value in outputs.items():
            delimiter = f"ghadelimiter_{uuid.uuid4()}"
            while delimiter in value:
                delimiter = f"ghadelimiter_{uuid.uuid4()}"
            chunks.append(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
        with self.output_path.open("a", encoding="utf-8") as fh:
            fh.write("".join(chunks))

    def write_summary(self, markdown: str) -> bool:
        """Append Markdown to the job summary; False (and nothing written) when over 1 MiB."""
        if self.summary_path is None:
            return False
        data = markdown if markdown.endswith("\n") else markdown + "\n"
        if len(data.encode("utf-8")) > SUMMARY_LIMIT_BYTES:
            return False
        with self.summary_path.open("a", encoding="utf-8") as fh:
            fh.write(data)
        return True
