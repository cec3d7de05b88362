"""Baselines live in the repo as one readable JSON file, so a change to them shows in review.

Entries are keyed by check name and by environment (device, torch version, precision): a
number recorded on a CPU is never compared with one measured on a GPU.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mltest.errors import BaselineError

FILE_NAME = "baselines.json"
FORMAT_VERSION = 1


class BaselineStore:
    """Read and write `<baseline_dir>/baselines.json`."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.path = self.directory / FILE_NAME
        self._data: dict[str, Any] | None = None

    def _load(self) -> dict[str, Any]:
        if self._data is None:
            if not self.path.exists():
                self._data = {"format_version": FORMAT_VERSION, "checks": {}}
            else:
                try:
                    data = json.loads(self.path.read_text(encoding="utf-8"))
                except json.JSONDecodeError as exc:
                    raise BaselineError(
                        f"{self.path}: not valid JSON ({exc}); restore it from git or "
                        "delete it and run `mltest baseline update`"
                    ) from exc
                if data.get("format_version") != FORMAT_VERSION:
                    raise BaselineError(
                        f"{self.path}: format_version {data.get('format_version')!r} is not "
                        f"{FORMAT_VERSION}; run `mltest baseline update` to rewrite it"
                    )
                self._data = data
        return self._data

    def get(self, check: str, key: str) -> dict[str, Any] | None:
        """The entry for `check` in environment `key`, or None when none was recorded."""
        return self._load()["checks"].get(check, {}).get(key)

    def keys(self, check: str) -> list[str]:
        """Environments that have an entry for `check`."""
        return sorted(self._load()["checks"].get(check, {}))

    def put(self, check: str, key: str, entry: dict[str, Any]) -> None:
        """Record an entry and write the file at once (sorted keys, stable diffs)."""
        data = self._load()
        data["checks"].setdefault(check, {})[key] = entry
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
