"""Write small real projects (model, data module, mltest.yaml) into a temporary directory.

Tests describe a project as source text and settings; this writes it the way a user's repo
looks, so the code under test imports it exactly as it imports a real project.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import yaml

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def write_suite(
    directory: Path,
    *,
    model_src: str | None = None,
    data_src: str | None = None,
    model: str = "model:Model",
    data: str = "data:Data",
    checks: dict[str, Any] | None = None,
    extra_files: dict[str, str] | None = None,
    **top: Any,
) -> Path:
    """Write model.py, data.py, any extra files and mltest.yaml; return the config path."""
    directory.mkdir(parents=True, exist_ok=True)
    if model_src is not None:
        (directory / "model.py").write_text(textwrap.dedent(model_src))
    if data_src is not None:
        (directory / "data.py").write_text(textwrap.dedent(data_src))
    for name, text in (extra_files or {}).items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    config = {"model": {"class": model}, "data": {"class": data}, "trainer": {"accelerator": "cpu"}}
    config.update(top)
    config["checks"] = checks or {}
    path = directory / "mltest.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def copy_example(name: str, directory: Path) -> Path:
    """A copy of a bundled example project (so tests may edit it); returns its config path."""
    import shutil

    target = directory / name
    # Only what git holds: a report folder left by someone's local run is not the example.
    ignore = shutil.ignore_patterns("__pycache__", "mltest-report")
    shutil.copytree(EXAMPLES / name, target, ignore=ignore)
    return target / "mltest.yaml"


def forget_project_modules(directory: Path) -> None:
    """Drop modules imported from `directory`, so a file a test edited is imported afresh
    (a real run is a new process; here every run shares one)."""
    root = str(Path(directory).resolve())
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", None) or "").startswith(root):
            del sys.modules[name]


def edited_example(name: str, directory: Path, edits=(), yaml_edits=()) -> Path:
    """A copy of a bundled example with (old, new) replacements in its model.py and
    mltest.yaml, each of which must be found; returns the config path."""
    config = copy_example(name, directory)
    for path, changes in ((config.parent / "model.py", edits), (config, yaml_edits)):
        text = path.read_text()
        for old, new in changes:
            assert old in text, f"edit target {old!r} not in {path.name}"
            text = text.replace(old, new)
        path.write_text(text)
    return config
