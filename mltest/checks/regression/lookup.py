"""Which golden record a run compares with: this environment's, else the closest other one's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mltest.checks.base import CheckContext
from mltest.errors import BaselineError


def find_golden(ctx: CheckContext, env_key: str, update_command: str):
    """This environment's golden record, else the closest other environment's, else None.

    Closest: the same device type (a torch minor upgrade) before another device, then the most
    recently recorded. A record of the first, single-file layout counts for the environment
    its metadata names.

    Returns:
        A `KeyedGolden` (the record and the environment key it belongs to), or None.
    """
    from mltest.checks.regression.golden import legacy_files, read_golden, record_files

    def load(files: tuple[str, str], key: str | None = None):
        tensors, meta = (ctx.baselines.read_path(f) for f in files)
        entry = (ctx.baselines.get(ctx.name, key) or {}) if key else {}
        return read_golden(tensors, meta, update_command, entry.get("outputs_hash"))

    keys = ctx.baselines.keys(ctx.name)
    if env_key in keys:
        golden = load(record_files(ctx.name, env_key), env_key)
        if golden is None:
            raise BaselineError(
                f"baselines.json lists golden outputs of `{ctx.name}` for {env_key}, but "
                f"{record_files(ctx.name, env_key)[0]} is missing; restore it from git or "
                f"run `{update_command}`"
            )
        return KeyedGolden(golden.arrays, golden.metadata, env_key)
    legacy = load(legacy_files(ctx.name))
    if legacy is not None and key_of(legacy.metadata.get("environment", {})) == env_key:
        return KeyedGolden(legacy.arrays, legacy.metadata, env_key)
    device = env_key.split("-", 1)[0]
    others = sorted(
        keys,
        key=lambda k: (
            k.split("-", 1)[0] == device,
            str((ctx.baselines.get(ctx.name, k) or {}).get("recorded", "")),
        ),
        reverse=True,
    )
    for other in others:
        golden = load(record_files(ctx.name, other), other)
        if golden is not None:
            return KeyedGolden(golden.arrays, golden.metadata, other)
    if legacy is not None:
        return KeyedGolden(legacy.arrays, legacy.metadata, key_of(legacy.metadata["environment"]))
    return None


@dataclass
class KeyedGolden:
    """A golden record and the environment it was recorded in."""

    arrays: dict[str, Any]
    metadata: dict[str, Any]
    key: str


def key_of(environment: dict[str, Any]) -> str:
    """The environment key of a golden record's `environment` metadata."""
    if environment.get("key"):
        return str(environment["key"])
    minor = ".".join(str(environment.get("torch", "?")).split("+")[0].split(".")[:2])
    return f"{environment.get('device', 'cpu')}-torch{minor}-{environment.get('precision')}"
