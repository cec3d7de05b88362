"""Lookups of environment variables that mltest withheld from the model code (worker side).

The worker runs with an allow-listed environment, so code that reads `DATA_DIR` or
`HF_HUB_OFFLINE` silently takes its default. The supervisor sends the names (never the values)
of the variables it has and withheld; this module wraps `os.environ`'s lookups (`os.environ[...]`,
`.get`, `os.getenv`, `in`), and a lookup that misses one of those names, made by the model code
or a library it uses (not by Python itself, torch, Lightning or mltest, which probe the
launch environment), becomes a notice naming the variable, where it was read and how to pass
it. Lookups from C code (`getenv(3)`) are not seen.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from collections.abc import Iterable

from mltest.errors import _ENGINE_PACKAGES, _package_dirs

_STDLIB = sysconfig.get_paths()["stdlib"]
_MLTEST_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


class _Watch:
    """Withheld names, and the ones looked up so far (name -> where), in order."""

    def __init__(self, withheld: Iterable[str], unset: Iterable[str]) -> None:
        self.withheld = frozenset(withheld)
        self.unset = list(unset)
        self.seen: dict[str, str] = {}
        self.told: set[str] = set()

    def missed(self, name: object) -> None:
        if name not in self.withheld or name in self.seen:
            return
        where = _reader(sys._getframe(2))
        if where is not None:
            self.seen[name] = where


_watch: _Watch | None = None


class _WatchedEnviron(os._Environ):
    """`os.environ`'s own class, with a note taken when a lookup misses."""

    def __getitem__(self, key):
        try:
            return super().__getitem__(key)
        except KeyError:
            if _watch is not None:
                _watch.missed(key)
            raise


def install(withheld: Iterable[str], unset: Iterable[str] = ()) -> None:
    """Start watching; `os.environ` stays the same object (modules that hold it see it too)."""
    global _watch
    _watch = _Watch(withheld, unset)
    if type(os.environ) is os._Environ:
        os.environ.__class__ = _WatchedEnviron


def notices() -> list[str]:
    """Notices not given yet: variables asked for but not set, then withheld ones looked up."""
    if _watch is None:
        return []
    out = [
        f"env: {name} was asked for, but it is not set where mltest runs (the runner's "
        "environment, or the step's `env:`), so the model code ran without it"
        for name in _watch.unset
    ]
    _watch.unset = []
    for name, where in _watch.seen.items():
        if name in _watch.told:
            continue
        _watch.told.add(name)
        out.append(
            f"the model code looked up the environment variable {name} ({where}), which "
            "mltest withheld: the model code sees only an allow-list of variables, so it ran "
            f"without it. If it needs it, add a line `{name}` to the action input `env` "
            f"(`mltest run --env {name}` on the command line)"
        )
    return out


def _reader(frame) -> str | None:
    """`at model.py:12` for the first frame outside Python's own modules; None when that frame
    is mltest's or a library it drives the model with (their lookups are not the model's)."""
    engine = (_MLTEST_DIR, *_package_dirs(_ENGINE_PACKAGES))
    while frame is not None:
        filename = frame.f_code.co_filename
        path = os.path.abspath(filename)
        if filename.startswith("<") or (path.startswith(_STDLIB) and not _installed(path)):
            frame = frame.f_back
            continue
        if path.startswith(engine):
            return None
        parts = path.split(os.sep)
        return f"at {'/'.join(parts[-2:])}:{frame.f_lineno}"
    return None


def _installed(path: str) -> bool:
    """An installed package's file (site-packages can sit inside the stdlib's folder)."""
    return f"{os.sep}site-packages{os.sep}" in path or f"{os.sep}dist-packages{os.sep}" in path
