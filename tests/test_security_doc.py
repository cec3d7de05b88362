"""docs/security.md promises only what a test shows: every row of its tables names at least
one test, and every test it names exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
TEST = re.compile(r"`(tests/[\w/]+\.py)::(test_\w+)`")


def _rows_with_a_test_column() -> list[str]:
    rows, in_table = [], False
    for line in PAGE.splitlines():
        if line.startswith("|") and "tested by" in line:
            in_table = True
        elif in_table and line.startswith("|") and not line.startswith("|---"):
            rows.append(line)
        elif not line.startswith("|"):
            in_table = False
    return rows


def test_every_promise_names_a_test():
    rows = _rows_with_a_test_column()
    assert len(rows) >= 20
    untested = [row[:80] for row in rows if not TEST.search(row.rsplit("|", 2)[-2])]
    assert not untested, f"rows of docs/security.md without a test: {untested}"


def test_every_named_test_exists():
    named = TEST.findall(PAGE)
    missing = []
    for path, name in named:
        tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
        defined = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
        if name not in defined:
            missing.append(f"{path}::{name}")
    assert not missing, f"docs/security.md names tests that do not exist: {missing}"
