"""The package's layout keeps its promises (docs/architecture.md): no import cycles, the
supervisor side never imports the worker side, each check stays in its own folder, shared
modules never import a check, modules stay small, and the architecture page names what exists.

Imports are read from the source (every `import`, at module level or inside a function), so a
lazy import counts as much as an eager one.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "mltest"
MAX_LINES = 400
CHECKS = ("memorization", "sanity", "regression", "key_examples", "evaluation")
# Run no user code and import no torch: they decide, write reports and publish.
SUPERVISOR_SIDE = ("mltest.supervisor", "mltest.worker_handle", "mltest.process_guard",
                   "mltest.run_files", "mltest.run_metadata", "mltest.cli", "mltest.render",
                   "mltest.github", "mltest.run_plan", "mltest.worker_results",
                   "mltest.process_tree", "mltest.runner_files", "mltest.baseline_commit",
                   "mltest.init_command", "mltest.init_yaml",
                   "mltest.env_request")
# Import the user's code and torch: only the worker process runs them.
WORKER_SIDE = ("mltest.worker", "mltest.project", "mltest.engine", "mltest.seeding",
               "mltest.parallel", "mltest.checks", "mltest.worker_fence",
               "mltest.warning_notices", "mltest.explore",
               "mltest.env_watch")


def _name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(module: str) -> set[str]:
    """The mltest modules `module` imports anywhere in its source."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                       for a in node.names]
        else:
            continue
        found.update(t for t in targets if t in MODULES and t != module)
    return found


GRAPH = {m: _imports(m) for m in MODULES}


def _reachable(start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in GRAPH[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def test_no_import_cycles():
    cycles = sorted(f"{a} -> {b}" for a in GRAPH for b in GRAPH[a] if a in _reachable(b))
    assert not cycles, "modules that import each other (directly or through others):\n" + \
        "\n".join(cycles)


@pytest.mark.parametrize("module", [m for m in MODULES if _within(m, SUPERVISOR_SIDE)])
def test_supervisor_side_never_reaches_the_worker_side(module):
    crossing = sorted(m for m in _reachable(module) if _within(m, WORKER_SIDE))
    assert not crossing, f"{module} imports worker-side modules: {crossing}"


@pytest.mark.parametrize("check", CHECKS)
def test_a_check_imports_no_other_check(check):
    own = f"mltest.checks.{check}"
    others = tuple(f"mltest.checks.{c}" for c in CHECKS if c != check)
    crossing = sorted(
        f"{m} -> {t}" for m in MODULES if _within(m, (own,)) for t in GRAPH[m]
        if _within(t, others)
    )
    assert not crossing, "what several checks share belongs in mltest/checks/*.py:\n" + \
        "\n".join(crossing)


def test_shared_modules_never_import_a_check():
    checks = tuple(f"mltest.checks.{c}" for c in CHECKS)
    shared = [m for m in MODULES if not _within(m, checks)]
    upward = sorted(f"{m} -> {t}" for m in shared for t in GRAPH[m] if _within(t, checks))
    assert not upward, "\n".join(upward)


def test_every_check_is_a_package_with_an_entry_that_says_what_it_reads_and_records():
    packages = sorted(p.parent.name for p in (PACKAGE / "checks").glob("*/__init__.py"))
    assert packages == sorted(CHECKS)
    for check in CHECKS:
        doc = ast.get_docstring(ast.parse((PACKAGE / "checks" / check / "__init__.py").read_text()))
        assert doc and "Reads:" in doc and "Records:" in doc, check


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_stay_small(module):
    lines = len(MODULES[module].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{MODULES[module]} has {lines} lines: split it by job"


def test_the_architecture_page_names_what_exists():
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`(mltest/[\w/]+(?:\.py|/))`", page))
    missing = sorted(p for p in named if not (ROOT / p).exists())
    assert not missing, f"docs/architecture.md names paths that do not exist: {missing}"
    for check in CHECKS:
        assert f"`mltest/checks/{check}/`" in page, check
    for module in (*SUPERVISOR_SIDE, *WORKER_SIDE):
        path = module.replace(".", "/")
        assert f"`{path}.py`" in page or f"`{path}/`" in page, f"{module} is not placed"
