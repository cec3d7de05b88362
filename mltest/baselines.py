"""Baselines live in the repo as one readable JSON file, so a change to them shows in review.

Entries are keyed by check name and by environment (device, torch version, precision): a
number recorded on a CPU is never compared with one measured on a GPU. Other baseline files
(golden tensors) sit beside it under the same folder.

Two ways to write, one per side of the process boundary:

- direct (`staging=None`): each `put` takes a lock on the baseline folder, re-reads the file,
  sets the entry and renames a new file into place, so a kill leaves the old file or the new
  one and two processes writing at once keep both entries;
- staged (`staging=<temp folder>`): the worker, which runs the user's code, records entries and
  files into a folder of its own and never touches the repository; the supervisor then calls
  `commit_staged`, which checks what was staged and merges it into the baseline folder the
  same locked, atomic way.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path, PurePosixPath
from typing import Any

from mltest.errors import BaselineError
from mltest.files import (
    UnsafePathError,
    atomic_write_bytes,
    child_path,
    directory_lock,
    read_regular_file,
    remove_stale_temps,
    safe_relative,
)

FILE_NAME = "baselines.json"
FORMAT_VERSION = 1
_FIX = "restore it from git or delete it and run `mltest baseline update`"
_EPOCHS = (0, 1_000_000)  # an epoch count, as the config caps integer settings
# Numbers a check compares against, per check and entry key, with the range each must lie in:
# a median of 1e300 epochs would pass any count.
_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "memorization": {"median": _EPOCHS, "schedule_epochs": _EPOCHS},
}


class BaselineStore:
    """Read and write `<directory>/baselines.json` and the files beside it.

    Args:
        directory: the baseline folder (`baseline_dir` of the config).
        staging: when given, every write goes to this folder instead, for the supervisor to
            `commit_staged` later; reads see staged entries and files first.
    """

    def __init__(self, directory: Path, *, staging: Path | None = None):
        self.directory = Path(directory)
        self.path = self.directory / FILE_NAME
        self.staging = Path(staging) if staging is not None else None
        self._data: dict[str, Any] | None = None
        self._staged: dict[str, Any] | None = None

    def get(self, check: str, key: str) -> dict[str, Any] | None:
        """The entry for `check` in environment `key`, or None when none was recorded."""
        staged = self._staged_checks().get(check, {})
        if key in staged:
            return staged[key]
        return self._committed()["checks"].get(check, {}).get(key)

    def keys(self, check: str) -> list[str]:
        """Environments that have an entry for `check` (recorded or staged)."""
        committed = self._committed()["checks"].get(check, {})
        return sorted({*committed, *self._staged_checks().get(check, {})})

    def put(self, check: str, key: str, entry: dict[str, Any]) -> None:
        """Record an entry: staged, or written at once under the lock (sorted keys, stable diff).

        Raises:
            BaselineError: the file on disk is corrupt (it is left as it is).
            UnsafePathError: the file or its folder is a symbolic link.
        """
        if self.staging is None:
            self._data = _merge_into(self.directory, {check: {key: entry}})
        else:
            self._staged = _merge_into(self.staging, {check: {key: entry}})

    def write_file(self, relative: str, data: bytes) -> Path:
        """Write a file under the baseline folder, e.g. `golden/regression.safetensors`.

        Staged to `staging/relative` when staging, else written atomically (under the lock) to
        `directory/relative`.

        Returns:
            The path written.

        Raises:
            UnsafePathError: `relative` is absolute, holds `..` or `.git`, names the baselines
                file itself, or passes through a symbolic link.
        """
        rel = _file_name(relative)
        if self.staging is not None:
            target = child_path(self.staging, rel, what="staged baseline file")
            atomic_write_bytes(target, data)
            return target
        with directory_lock(self.directory):
            target = child_path(self.directory, rel, what="baseline file")
            remove_stale_temps(target)
            atomic_write_bytes(target, data)
        return target

    def read_path(self, relative: str) -> Path:
        """Where to read a file under the baseline folder: the staged copy if one exists.

        The staged copy counts whoever staged it (this store or an earlier worker of the same
        run sharing the staging folder). The path may not exist yet.

        Raises:
            UnsafePathError: `relative` is unsafe, or the file or a folder on the way is a
                symbolic link.
        """
        rel = _file_name(relative)
        if self.staging is not None:
            staged = child_path(self.staging, rel, what="staged baseline file")
            if staged.exists():
                return staged
        return child_path(self.directory, rel, what="baseline file")

    def _committed(self) -> dict[str, Any]:
        if self._data is None:
            self._data = _read(self.path)
        return self._data

    def _staged_checks(self) -> dict[str, Any]:
        if self.staging is None:
            return {}
        if self._staged is None:
            self._staged = _read(self.staging / FILE_NAME)
        return self._staged["checks"]


def commit_staged(staging: Path, directory: Path) -> list[Path]:
    """Merge what a worker staged into the baseline folder; run by the supervisor.

    Everything staged is checked before anything is written: a symbolic link, a FIFO or other
    non-regular file, a name with `..` or `.git`, or a staged baselines.json of the wrong
    shape refuses the whole commit. Then, holding the baseline folder's lock, the staged
    entries are merged into `directory/baselines.json` (re-read, merged per check and
    environment, renamed into place) and each staged file is copied atomically. Temp files left
    by a killed worker (`.<name>.*.tmp`) are skipped. The staging folder is left as it is;
    whoever created it removes it.

    Args:
        staging: the folder the worker's `BaselineStore(staging=...)` wrote to.
        directory: the baseline folder to update.

    Returns:
        The paths written, relative to `directory`: `baselines.json` first when entries were
        merged, then the copied files in sorted order; empty when nothing was staged.

    Raises:
        BaselineError: a baselines file (staged or in `directory`) is corrupt.
        UnsafePathError: something staged, or a path in `directory`, is unsafe as above.
    """
    staging, directory = Path(staging), Path(directory)
    if staging.is_symlink():
        raise UnsafePathError(f"{staging}: the staging folder is a symbolic link; refused")
    if not staging.is_dir():
        return []
    files = _staged_files(staging)
    staged = _read(staging / FILE_NAME)["checks"]
    written: list[Path] = []
    if not staged and not files:
        return written
    with directory_lock(directory):
        if staged:
            _merge_locked(directory, staged)
            written.append(Path(FILE_NAME))
        for rel in files:
            data = read_regular_file(staging / rel)
            target = child_path(directory, rel, what="baseline file")
            remove_stale_temps(target)
            atomic_write_bytes(target, data)
            written.append(Path(rel))
    return written


def _merge_into(directory: Path, entries: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Lock `directory`, merge `entries` into its baselines file, return the new contents."""
    with directory_lock(directory):
        return _merge_locked(directory, entries)


def _merge_locked(directory: Path, entries: dict[str, dict[str, Any]]) -> dict[str, Any]:
    path = child_path(directory, PurePosixPath(FILE_NAME), what="baselines file")
    data = _read(path)  # re-read under the lock: another process may have written since
    for check, by_key in entries.items():
        data["checks"].setdefault(check, {}).update(by_key)
    remove_stale_temps(path)
    atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())
    return data


def _read(path: Path) -> dict[str, Any]:
    """The baselines file at `path` (an empty one when missing), checked for shape."""
    if path.is_symlink():
        raise UnsafePathError(
            f"{path}: is a symbolic link; mltest neither reads nor writes baselines through "
            "links. Replace it with a regular file (or delete it) and run again"
        )
    if not path.exists():
        return {"format_version": FORMAT_VERSION, "checks": {}}
    try:
        data = json.loads(read_regular_file(path).decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise BaselineError(f"{path}: not UTF-8 text ({exc}); {_FIX}") from exc
    except json.JSONDecodeError as exc:
        raise BaselineError(f"{path}: not valid JSON ({exc}); {_FIX}") from exc
    version = data.get("format_version") if isinstance(data, dict) else None
    if version != FORMAT_VERSION:
        raise BaselineError(
            f"{path}: format_version {version!r} is not {FORMAT_VERSION}; run "
            "`mltest baseline update` to rewrite it"
        )
    checks = data.setdefault("checks", {})
    well_formed = isinstance(checks, dict) and all(
        isinstance(by_key, dict) and all(isinstance(e, dict) for e in by_key.values())
        for by_key in checks.values()
    )
    if not well_formed:
        raise BaselineError(
            f"{path}: `checks` must map check names to environments to entries; {_FIX}"
        )
    _check_numbers(path, data)
    return data


def read_baselines(directory: Path) -> dict[str, Any]:
    """`<directory>/baselines.json`, validated (an empty record when missing).

    The supervisor reads it before any worker starts, so a corrupt file ends the run with
    exit 2 naming the file and key instead of deciding a check.

    Raises:
        BaselineError: not JSON, another format, a non-finite number (NaN, Infinity, 1e400)
            anywhere, or a compared number out of its range; the message names file and key.
        UnsafePathError: the file is a symbolic link.
    """
    return _read(Path(directory) / FILE_NAME)


def _check_numbers(path: Path, data: dict[str, Any]) -> None:
    """Every number finite; the numbers checks compare with, where present, in range."""
    todo: list[tuple[str, Any]] = [("", data)]
    while todo:
        where, value = todo.pop()
        if isinstance(value, float) and not math.isfinite(value):
            raise BaselineError(
                f"{path}: `{where}` is {value}; a baseline number must be finite (was the "
                f"file edited by hand?); {_FIX}"
            )
        if isinstance(value, dict):
            todo += [(f"{where}.{key}" if where else key, item) for key, item in value.items()]
        elif isinstance(value, list):
            todo += [(f"{where}.{index}", item) for index, item in enumerate(value)]
    for check, rules in _RANGES.items():
        for env, entry in data["checks"].get(check, {}).items():
            for key, (low, high) in rules.items():
                value = entry.get(key, low)
                number = isinstance(value, int | float) and not isinstance(value, bool)
                if not number or not low <= value <= high:
                    raise BaselineError(
                        f"{path}: `checks.{check}.{env}.{key}` is {value!r}, not a number from "
                        f"{low:,} to {high:,} (an epoch count); {_FIX}"
                    )


def _file_name(relative: str) -> PurePosixPath:
    rel = safe_relative(relative, what="baseline file")
    if rel == PurePosixPath(FILE_NAME):
        raise UnsafePathError(
            f"baseline file: {relative!r} is the baselines file itself; record entries with "
            "`put(check, key, entry)` instead"
        )
    return rel


def _staged_files(staging: Path) -> list[PurePosixPath]:
    """Every file staged under `staging` (not baselines.json), each checked to be safe."""
    found: list[PurePosixPath] = []
    for folder, dirs, names in os.walk(staging):  # os.walk does not descend into links
        for name in [*dirs, *names]:
            path = Path(folder) / name
            rel = PurePosixPath(path.relative_to(staging).as_posix())
            safe_relative(rel.as_posix(), what=f"staged file {path}")
            if path.is_symlink():
                raise UnsafePathError(
                    f"{path}: a staged baseline file is a symbolic link; refused (the model "
                    "code may have planted it to make mltest write elsewhere)"
                )
            if name in names and not path.is_file():
                raise UnsafePathError(f"{path}: a staged entry is not a regular file; refused")
        for name in names:
            is_temp = name.startswith(".") and name.endswith(".tmp")
            if is_temp or (folder == str(staging) and name == FILE_NAME):
                continue
            found.append(PurePosixPath((Path(folder) / name).relative_to(staging).as_posix()))
    return sorted(found)
