"""Under `mltest baseline update`: what a check staged becomes the repository's baselines.

The worker stages each check's baseline entries and files in a folder of its own; after the
check's result came in, the supervisor checks the write paths again (in host mode the model
code could have swapped in a link meanwhile), commits the staged files atomically and records
in the run metadata which files changed and a patch of the text files for the job summary.
Supervisor side: no torch, no user code.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from mltest.errors import MltestError


def commit_check(
    staging: Path, loaded: Any, metadata: dict[str, Any], allow_outside_repo: bool
) -> str:
    """Commit one check's staged baselines; "" when done, else the reason it could not be.

    Args:
        staging: the check's staging folder.
        loaded: the validated config (its `baseline_dir` is where the files go).
        metadata: the report's run metadata: `baseline_dir`, `baseline_files` and
            `baseline_patch` are updated here, by the supervisor only.
        allow_outside_repo: the command line's `--allow-outside-repo`.
    """
    from mltest.baselines import commit_staged
    from mltest.config import check_write_paths

    try:
        target = check_write_paths(loaded, allow_outside=allow_outside_repo)
        folder = target["baseline_dir"]
        before = text_files(folder, staging)
        written = commit_staged(staging, folder)
    except (MltestError, OSError) as exc:
        return str(exc)
    if written:
        _record_written(metadata, folder, written, before)
    return ""


def _record_written(
    meta: dict[str, Any], folder: Path, written: list[Path], before: dict[str, str]
) -> None:
    """Which files changed, and a patch of the text files."""
    meta["baseline_dir"] = str(folder)
    files = meta.setdefault("baseline_files", [])
    files += [str(path) for path in written if str(path) not in files]
    patch = meta.get("baseline_patch", "")
    for path in written:
        if str(path) in before:
            new = read_text(folder / path)
            patch += unified_diff(before[str(path)], new, shown_path(folder / path))
    if patch:
        meta["baseline_patch"] = patch[:PATCH_LIMIT]


PATCH_LIMIT = 60_000  # characters of baseline patch kept for the job summary


def text_files(folder: Path, staging: Path) -> dict[str, str]:
    """Current text of the JSON files a commit of `staging` will replace (`""` when new)."""
    names = {"baselines.json"} | {
        str(p.relative_to(staging)) for p in staging.rglob("*.json") if p.is_file()
    }
    return {name: read_text(folder / name) for name in names}


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""


def unified_diff(old: str, new: str, shown: str) -> str:
    lines = difflib.unified_diff(
        old.splitlines(keepends=True),
        new.splitlines(keepends=True),
        fromfile=f"a/{shown}" if old else "/dev/null",
        tofile=f"b/{shown}",
    )
    return "".join(lines)


def shown_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
