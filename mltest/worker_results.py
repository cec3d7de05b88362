"""What the supervisor accepts from a worker: a check's result, checked part by part.

A worker runs the pull request's code, so its messages are untrusted data. A result is taken
only when each field has its type (strings, a list of strings, a mapping of metrics, cases with
a known status); it is then cut to the report's size limits, its name is the check the
supervisor asked for, its duration is what the supervisor measured, and a `skipped` status is
refused: only the supervisor's own plan skips a configured check. Supervisor side: no torch.
"""

from __future__ import annotations

from typing import Any

from mltest.report import Case, CheckResult, Status

_TEXT_FIELDS = ("summary", "details", "hint")
_KNOWN = {*_TEXT_FIELDS, "name", "kind", "status", "notices", "metrics", "cases", "duration_s"}


class BadResult(ValueError):
    """A worker's result is not of the shape a check's result has; the message says why."""


def result_from_worker(data: Any, name: str, duration_s: float) -> CheckResult:
    """The result a worker sent for check `name`, validated and bounded.

    Args:
        data: the message's `result` field, as parsed from JSON.
        name: the check the worker was running (by the supervisor's plan).
        duration_s: how long the supervisor saw the check take.

    Raises:
        BadResult: naming the field that is wrong.
    """
    if not isinstance(data, dict):
        raise BadResult(f"the result is a {type(data).__name__}, not an object")
    unknown = sorted(set(data) - _KNOWN)
    if unknown:
        raise BadResult(f"unknown field(s) {', '.join(map(repr, unknown))[:200]}")
    try:
        status = Status(data.get("status"))
    except ValueError:
        raise BadResult(f"status {str(data.get('status'))[:40]!r} is not a status") from None
    texts = {key: data.get(key, "") for key in _TEXT_FIELDS}
    for key, value in texts.items():
        if not isinstance(value, str):
            raise BadResult(f"`{key}` is a {type(value).__name__}, not a string")
    notices = data.get("notices", [])
    if not isinstance(notices, list) or not all(isinstance(n, str) for n in notices):
        raise BadResult("`notices` is not a list of strings")
    metrics = data.get("metrics", {})
    if not isinstance(metrics, dict):
        raise BadResult("`metrics` is not an object")
    result = CheckResult(
        name=name,
        kind=name,  # the worker cannot rename a check
        status=status,
        notices=list(notices),
        metrics=metrics,
        cases=_cases(data.get("cases", [])),
        duration_s=round(max(0.0, duration_s), 3),
        **texts,
    )
    if status is Status.SKIPPED:
        result.status = Status.ERROR
        result.summary = (
            f"{name}: the worker reported this check as skipped, but it is configured and was "
            "planned to run; only mltest's plan (--check, a check that is not configured) skips "
            "a check, so this is an error. Find what in the model code makes the check skip"
        )
    return result.bounded()


def _cases(data: Any) -> list[Case]:
    if not isinstance(data, list):
        raise BadResult("`cases` is not a list")
    cases = []
    for index, case in enumerate(data):
        if not isinstance(case, dict) or set(case) - {"name", "status", "message"}:
            raise BadResult(f"case {index} is not an object with name, status and message")
        name, message = case.get("name", ""), case.get("message", "")
        if not isinstance(name, str) or not isinstance(message, str):
            raise BadResult(f"case {index}: name and message must be strings")
        try:
            cases.append(Case(name, Status(case.get("status")), message))
        except ValueError:
            status = str(case.get("status"))[:40]
            raise BadResult(f"case {index}: {status!r} is not a status") from None
    return cases
