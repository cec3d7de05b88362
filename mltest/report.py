"""The report: the versioned contract between the checks and everything that publishes them.

Checks produce `CheckResult`s; the runner wraps them in a `Report`; renderers and publishers
only read it. This module must not import torch, so the GitHub side stays light.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)  # version 1 had no complete/cancelled; read as complete


class Status(str, Enum):
    """Outcome of one check or sub-case."""

    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"
    SKIPPED = "skipped"


class Verdict(str, Enum):
    """Outcome of the whole suite; its exit code is what CI sees."""

    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"

    @property
    def exit_code(self) -> int:
        return {Verdict.PASS: 0, Verdict.FAIL: 1, Verdict.ERROR: 2}[self]


@dataclass
class Case:
    """A sub-case of a check (one seed, one parameter, one key example...)."""

    name: str
    status: Status
    message: str = ""


@dataclass
class CheckResult:
    """What one check found.

    Attributes:
        name: the check's name as configured (also its kind for the built-in checks).
        kind: which check implementation ran.
        status: pass / fail / error / skipped.
        summary: one line a person understands at a glance.
        details: Markdown with the evidence (tables, lists); shown collapsed.
        hint: what to do next when it did not pass (e.g. the baseline update command).
        notices: things worth knowing that do not fail the check.
        metrics: numbers for machines (JSON-serialisable).
        cases: sub-cases, one JUnit testcase each.
        duration_s: wall-clock seconds the check took.
    """

    name: str
    kind: str
    status: Status
    summary: str
    details: str = ""
    hint: str = ""
    notices: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    cases: list[Case] = field(default_factory=list)
    duration_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self), default=_json_default))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckResult:
        """Rebuild a result from its JSON form (raises KeyError/TypeError/ValueError if bad)."""
        return cls(
            **{
                **data,
                "status": Status(data["status"]),
                "cases": [Case(**{**k, "status": Status(k["status"])}) for k in data["cases"]],
            }
        )


@dataclass
class Report:
    """Results of one suite run plus the facts needed to trust and reproduce them.

    Attributes:
        complete: False while the run is in progress (the supervisor writes report.json after
            every check); a report left with False by a killed run reads as an error.
        cancelled: the run was stopped by SIGINT/SIGTERM; the verdict is error.
    """

    suite: str
    checks: list[CheckResult] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    complete: bool = True
    cancelled: bool = False
    schema_version: int = SCHEMA_VERSION

    @property
    def verdict(self) -> Verdict:
        """error if the run did not finish, was cancelled, or the suite or any check could not
        run; else fail if any check failed."""
        statuses = {c.status for c in self.checks}
        if not self.complete or self.cancelled or self.errors or Status.ERROR in statuses:
            return Verdict.ERROR
        if Status.FAIL in statuses:
            return Verdict.FAIL
        return Verdict.PASS

    @property
    def counts(self) -> dict[str, int]:
        return {s.value: sum(c.status is s for c in self.checks) for s in Status}

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["verdict"] = self.verdict.value
        data["exit_code"] = self.verdict.exit_code
        data["counts"] = self.counts
        return json.loads(json.dumps(data, default=_json_default))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        version = data.get("schema_version")
        if version not in READABLE_VERSIONS:
            raise ValueError(
                f"report schema_version {version!r} is not supported "
                f"(this mltest reads version {SCHEMA_VERSION})"
            )
        checks = [CheckResult.from_dict(c) for c in data["checks"]]
        return cls(
            suite=data["suite"],
            checks=checks,
            errors=list(data.get("errors", [])),
            metadata=dict(data.get("metadata", {})),
            complete=bool(data.get("complete", True)),
            cancelled=bool(data.get("cancelled", False)),
        )

    def write_json(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        from mltest.files import atomic_write_text

        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def read_json(cls, path: Path) -> Report:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def _json_default(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"report value of type {type(value).__name__} is not JSON-serialisable")
