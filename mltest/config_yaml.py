"""Read a YAML config file defensively: it comes from the pull request under test.

A size cap, strict UTF-8, no anchors or aliases (refused while composing, before anything
could expand them: an 856-byte alias bomb otherwise grows to gigabytes when walked), bounded
nesting (the composer recurses), and no duplicate or merge keys (YAML keeps the last one
silently). Every refusal is a ConfigError naming file:line and the fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from mltest.errors import ConfigError

MAX_CONFIG_BYTES = 1_000_000
MAX_NESTING = 32


def read_yaml(path: Path) -> tuple[Any, dict[tuple, int]]:
    """Parse `path` into Python values plus a map of key path -> 1-based line.

    Raises:
        ConfigError: too large, not UTF-8, not valid YAML, an anchor or alias, nested too
            deep, or a duplicate key; the message names the file and line.
    """
    text = _read_text(path)
    loader = _ConfigLoader(text, path)
    try:
        node = loader.get_single_node()
        lines = _key_lines(path, node)
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: not valid YAML: {problem}") from exc
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise ConfigError(f"{path}: a value could not be read: {exc}") from exc
    finally:
        loader.dispose()
    return data, lines


class _ConfigLoader(yaml.SafeLoader):
    """SafeLoader that refuses anchors, aliases and deep nesting as it composes."""

    def __init__(self, text: str, path: Path):
        super().__init__(text)
        self._path = path
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        mark = event.start_mark
        where = f"{self._path}:{mark.line + 1}:{mark.column + 1}"
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            alias = isinstance(event, yaml.AliasEvent)
            raise ConfigError(
                f"{where}: YAML {'alias `*' if alias else 'anchor `&'}{anchor}` is not allowed "
                "in an mltest config (aliases can expand a small file into gigabytes); write "
                "the values out"
            )
        nests = isinstance(event, yaml.CollectionStartEvent)
        if nests:
            self._depth += 1
            if self._depth > MAX_NESTING:
                raise ConfigError(
                    f"{where}: nested more than {MAX_NESTING} levels deep; allowed up to "
                    f"{MAX_NESTING}. Flatten the settings"
                )
        try:
            return super().compose_node(parent, index)
        finally:
            if nests:
                self._depth -= 1


def _read_text(path: Path) -> str:
    """The file as text: at most MAX_CONFIG_BYTES, strict UTF-8, else a ConfigError."""
    with path.open("rb") as handle:
        raw = handle.read(MAX_CONFIG_BYTES + 1)
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"{path}: the config file is over {MAX_CONFIG_BYTES:,} bytes; allowed up to "
            f"{MAX_CONFIG_BYTES:,}. Keep large tables in their own files (e.g. "
            "checks.key_examples.examples: examples.csv)"
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError(
            f"{path}:{line}:{column}: not UTF-8 text: byte 0x{raw[exc.start]:02x} at byte "
            f"offset {exc.start}; save the file as UTF-8"
        ) from exc


def _key_lines(path: Path, node: yaml.Node | None, prefix: tuple = ()) -> dict[tuple, int]:
    """Map each key path in the YAML document to its 1-based line; refuse duplicate keys.

    Safe to walk: aliases were refused while composing, so the node graph is a tree.
    """
    found: dict[tuple, int] = {}
    if isinstance(node, yaml.MappingNode):
        seen: dict[tuple, int] = {}
        for key, value in node.value:
            line = key.start_mark.line + 1
            if not isinstance(key, yaml.ScalarNode) or key.value == "<<":
                raise ConfigError(
                    f"{path}:{line}: keys must be plain names (no YAML merge keys `<<` or "
                    "complex keys); write the settings out"
                )
            key_path = (*prefix, key.value)
            if (key.tag, key.value) in seen:
                dotted = ".".join(str(part) for part in key_path)
                raise ConfigError(
                    f"{path}:{line}: duplicate key `{dotted}` (first at line "
                    f"{seen[(key.tag, key.value)]}); YAML would silently keep the last. "
                    "Keep one of them"
                )
            seen[(key.tag, key.value)] = line
            found[key_path] = line
            found.update(_key_lines(path, value, key_path))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            item_path = (*prefix, index)
            found[item_path] = item.start_mark.line + 1
            found.update(_key_lines(path, item, item_path))
    return found
