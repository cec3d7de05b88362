"""Pydantic's validation errors as lines a user can act on: the file, the line, the key path,
what was received and what is allowed; an unknown key gets the nearest valid name."""

from __future__ import annotations

import difflib
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError


def describe_errors(
    path: Path, exc: ValidationError, model: type[BaseModel], lines: dict, prefix: tuple
) -> str:
    """Turn pydantic's errors into lines that name file, line, key path and the fix."""
    messages = []
    for error in exc.errors():
        loc = (*prefix, *error["loc"])
        key = ".".join(str(part) for part in loc)
        line = _nearest_line(lines, loc)
        where = f"{path}:{line}" if line else str(path)
        kind = error["type"]
        if kind == "extra_forbidden":
            allowed = _allowed_keys(model, error["loc"][:-1])
            messages.append(
                f"{where}: unknown key `{key}`{suggest(str(loc[-1]), allowed)}; "
                f"allowed here: {', '.join(sorted(allowed)) or '(none)'}"
            )
        elif kind == "missing":
            messages.append(f"{where}: `{key}` is required but missing; add it")
        else:
            got = error.get("input")
            shown = "" if isinstance(got, dict) else f", got {_show(got)}"
            reason = error["msg"].removeprefix("Value error, ")
            if isinstance(got, bool) and kind in ("int_type", "float_type"):
                reason = "expected a number, not a boolean; write the number itself"
            elif kind == "finite_number":
                reason = "NaN and infinity are not allowed; write a finite number"
            messages.append(f"{where}: `{key}`: {reason}{shown}")
    return "\n".join(messages)


def _show(value: Any) -> str:
    """A received value as the user wrote it in YAML, cut short when long."""
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    shown = repr(value)
    return shown if len(shown) <= 80 else f"{shown[:60]}... ({len(shown):,} characters)"


def _nearest_line(lines: dict, loc: tuple) -> int | None:
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _allowed_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    """Names accepted at `loc` inside `model`, following nested config sections."""
    current: Any = model
    for part in loc:
        current = _field_type(current, part)
        if current is None:
            return []
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or name for name, f in current.model_fields.items()]
    return []


def _field_type(model: Any, part: Any) -> Any:
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return None
    for name, field in model.model_fields.items():
        if part in (name, field.alias):
            return unwrap(field.annotation)
    return None


def unwrap(annotation: Any) -> Any:
    """`Optional[X]` / `X | None` -> X; other annotations unchanged."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def suggest(name: str, candidates) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean `{close[0]}`?)" if close else ""
