"""The report: the versioned contract between the checks and everything that publishes them.

Checks produce `CheckResult`s; the runner wraps them in a `Report`; renderers and publishers
only read it. This module must not import torch, so the GitHub side stays light.

report.json is strict JSON (RFC 8259): a non-finite number (an honest NaN loss) is written as
the string `"NaN"`, `"Infinity"` or `"-Infinity"`, so jq, JavaScript and Go read every report.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)  # version 1 had no complete/cancelled; read as complete


@dataclass(frozen=True)
class ResultLimits:
    """How large one check's result may be. The worker cuts its results to these sizes before
    sending them and the supervisor cuts again on receipt, so a model that raises with a
    65,000-character message, or checks that produce huge tables, cannot make the report, the
    PR comment or the pipe between the processes unbounded."""

    text: int = 2_000  # summary, hint, each notice, a case's message (characters)
    name: int = 200  # a case's name
    details: int = 200_000  # the Markdown details (characters)
    notices: int = 50
    cases: int = 5_000
    metrics_bytes: int = 4_000_000  # metrics as JSON
    metrics_depth: int = 16  # nesting of metrics


LIMITS = ResultLimits()
NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


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


_BAD = (Status.FAIL, Status.ERROR)


def _failing(cases: list[Case]) -> int:
    return sum(c.status in _BAD for c in cases)


def _kept_cases(cases: list[Case], limit: int) -> list[Case]:
    """At most `limit` cases, in their order: failures and errors first (a 10,000-row table
    must not lose its failures to the cut), then passing ones while room is left."""
    if len(cases) <= limit:
        return list(cases)
    bad = {i for i, c in enumerate(cases) if c.status in _BAD}
    keep = set(sorted(bad)[:limit])
    keep.update([i for i in range(len(cases)) if i not in bad][: limit - len(keep)])
    return [c for i, c in enumerate(cases) if i in keep]


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
        """The result as strict-JSON-ready data (non-finite numbers as strings)."""
        return strict_json_data(asdict(self))

    def bounded(self, limits: ResultLimits = LIMITS) -> CheckResult:
        """This result with every part cut to `limits` (and said so), metrics dropped with a
        notice when they are nested too deep or too large; the status never changes."""
        notices = [cut(str(n), limits.text) for n in self.notices[: limits.notices]]
        if len(self.notices) > limits.notices:
            notices.append(f"{len(self.notices) - limits.notices} more notice(s) left out")
        metrics = self.metrics if isinstance(self.metrics, dict) else {}
        too_big = _metrics_problem(metrics, limits)
        if too_big:
            notices.append(f"the check's metrics were left out of the report: {too_big}")
            metrics = {}
        kept = _kept_cases(self.cases, limits.cases)
        if len(kept) < len(self.cases):
            failing = _failing(self.cases) - _failing(kept)
            notices.append(
                f"{len(self.cases) - len(kept)} of {len(self.cases)} cases left out of the "
                "report, "
                + (f"{failing} of them failing" if failing else "all passing (every failure "
                   "and error is listed)")
            )  # fmt: skip
        cases = [
            Case(cut(str(c.name), limits.name), c.status, cut(str(c.message), limits.text))
            for c in kept
        ]
        return CheckResult(
            name=self.name,
            kind=self.kind,
            status=self.status,
            summary=cut(str(self.summary), limits.text),
            details=cut(str(self.details), limits.details),
            hint=cut(str(self.hint), limits.text),
            notices=notices,
            metrics=metrics,
            cases=cases,
            duration_s=self.duration_s,
        )

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
        run; else fail if any check failed; else pass, but only when at least one check ran
        and passed (a run in which nothing ran proves nothing: error)."""
        statuses = {c.status for c in self.checks}
        if not self.complete or self.cancelled or self.errors or Status.ERROR in statuses:
            return Verdict.ERROR
        if Status.FAIL in statuses:
            return Verdict.FAIL
        if Status.PASS not in statuses:
            return Verdict.ERROR
        return Verdict.PASS

    @property
    def counts(self) -> dict[str, int]:
        return {s.value: sum(c.status is s for c in self.checks) for s in Status}

    def to_dict(self) -> dict[str, Any]:
        """The report as strict-JSON-ready data (non-finite numbers as strings)."""
        data = asdict(self)
        data["verdict"] = self.verdict.value
        data["exit_code"] = self.verdict.exit_code
        data["counts"] = self.counts
        return strict_json_data(data)

    def to_json(self) -> str:
        """report.json's text: strict JSON, no bare NaN or Infinity."""
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"

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

        atomic_write_text(path, self.to_json())

    @classmethod
    def read_json(cls, path: Path) -> Report:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def strict_json_data(value: Any) -> Any:
    """`value` as plain JSON data: enums, paths and numpy/torch scalars converted, and every
    non-finite float replaced by `"NaN"`, `"Infinity"` or `"-Infinity"`."""
    plain = json.loads(json.dumps(value, default=_json_default))
    return _finite(plain)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


def cut(text: str, limit: int) -> str:
    """`text`, or its first part and how many characters were left out."""
    if len(text) <= limit:
        return text
    keep = max(0, limit - 60)  # room for the note
    return f"{text[:keep]} … ({len(text) - keep:,} more characters left out)"


def _metrics_problem(metrics: dict[str, Any], limits: ResultLimits) -> str:
    """Why `metrics` cannot go into the report as they are, or ""."""
    depth, todo = 0, [(metrics, 1)]
    while todo:  # iterative: a 600-level nesting must not exhaust the stack here either
        value, level = todo.pop()
        depth = max(depth, level)
        if depth > limits.metrics_depth:
            return f"nested more than {limits.metrics_depth} levels deep"
        if isinstance(value, dict):
            todo += [(item, level + 1) for item in value.values()]
        elif isinstance(value, list):
            todo += [(item, level + 1) for item in value]
    try:
        size = len(json.dumps(metrics, default=_json_default))
    except (TypeError, ValueError) as exc:
        return f"not JSON data ({exc})"
    if size > limits.metrics_bytes:
        return f"{size:,} bytes of JSON, more than {limits.metrics_bytes:,}"
    return ""


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
