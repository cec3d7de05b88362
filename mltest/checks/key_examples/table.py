"""Read and validate a table of key examples (CSV, JSONL, Parquet, or a Python function).

Every row is checked before anything is predicted; an error names the file, the row (line for
CSV/JSONL, 0-based index otherwise), the example id and the column, and says what is allowed.

Columns (only `id`, `kind` and an input are required):

| column      | meaning                                                                    |
|-------------|----------------------------------------------------------------------------|
| `id`        | unique name of the example                                                 |
| `kind`      | `mft` (minimum functionality), `inv` (invariance) or `dir` (directional)   |
| `input`     | what the collate function receives (or several `input.<name>` columns)    |
| `expected`  | mft: the expected label (name or index), or a value with `tolerance`      |
| `group`     | inv/dir: examples sharing a group are compared with its first row          |
| `direction` | dir: `up` or `down` for every row but the group's first (the reference)    |
| `target`    | which class's score to compare (inv with tolerance, dir, mft value)        |
| `tolerance` | mft: value tolerance; inv: allowed score difference; dir: minimum move     |
| `top_k`     | mft: pass when the expected label is among the k highest scores            |
| `tags`      | `;`-separated tags (capabilities, slices); a list in JSONL / functions     |
| `measure`   | judge the example's output array instead of a label (see `measures`)      |
| `region`, `at_least`, `at_most` | where and how far a `measure` must hold            |
"""

from __future__ import annotations

import difflib
import math
from pathlib import Path
from typing import Any, NamedTuple

from mltest.checks.key_examples import measures
from mltest.errors import ConfigError, ProjectError

KINDS = ("mft", "inv", "dir")
DIRECTIONS = ("up", "down")
# CheckList's own names for the kinds, accepted as written in its paper and docs.
_KIND_NAMES = {
    "minimum_functionality": "mft",
    "invariance": "inv",
    "directional": "dir",
    "directional_expectation": "dir",
}
COLUMNS = ("id", "kind", "input", "expected", "group", "direction", "target", "tolerance",
           "top_k", "tags", "measure", "region", "at_least", "at_most")
# The cells of the common row (an mft example with an expected label), which needs none of
# the other columns' checks.
_LABEL_ROW = frozenset({"id", "kind", "expected", "tags"})
TABLE_SUFFIXES = (".csv", ".jsonl", ".json", ".parquet", ".pq")


class Example(NamedTuple):
    """One validated key example (a named tuple: immutable, and cheap for 10,000s of rows).

    Attributes:
        id: unique name.
        kind: `mft`, `inv` or `dir`.
        input: what the collate function receives.
        expected: mft only: a label (str) or a number (with `tolerance`).
        group: inv/dir: the group name.
        direction: dir only: `up`/`down`, None for the group's reference row.
        target: class name or index whose score is compared, or None.
        tolerance: see the module docstring; None when not given.
        top_k: mft only; None when not given.
        tags: the example's tags, in table order.
        where: `file row N` for messages.
        measured: for array outputs (masks, reconstructions, samples): the `measure` to judge
            them by (`measures.Measured`), else None.
    """

    id: str
    kind: str
    input: Any
    expected: Any = None
    group: str | None = None
    direction: str | None = None
    target: str | None = None
    tolerance: float | None = None
    top_k: int | None = None
    tags: tuple[str, ...] = ()
    where: str = ""
    measured: Any = None


def is_table_path(spec: str) -> bool:
    """True when `examples:` names a file rather than a `module:function` import path."""
    return spec.lower().endswith(TABLE_SUFFIXES)


def load_examples(spec: str, *, root: Path, project: Any, key: str) -> list[Example]:
    """Read the examples a config names and validate every row.

    Args:
        spec: a table path relative to `root`, or `module:function` returning a list of
            dicts or a DataFrame.
        root: the config file's directory.
        project: the `Project`, used to import a function source.
        key: the config key, for messages (e.g. `checks.key_examples.examples`).

    Raises:
        ConfigError: the file is missing or unreadable, or a row is invalid.
        ProjectError: the function could not be imported or raised.
    """
    if is_table_path(spec):
        path = root / spec
        rows, first_line = _read_table(path, spec, key), _first_line(path)
        source = spec
    elif ":" not in spec:
        raise ConfigError(
            f"`{key}: {spec}`: give a table file ending in {', '.join(TABLE_SUFFIXES)} or a "
            "function as `module:function`"
        )
    else:
        fn = project.resolve(spec, key=key)
        try:
            produced = fn()
        except Exception as exc:
            raise ProjectError(
                f"`{key}: {spec}` raised {type(exc).__name__}: {exc}; it must return a list "
                "of dicts or a DataFrame"
            ) from exc
        rows, first_line, source = _rows_of(produced, f"`{key}: {spec}`"), None, spec
    if not rows:
        raise ConfigError(f"{source}: no examples; add rows or drop `{key}`")
    return _validate(rows, source, first_line)


def _first_line(path: Path) -> int | None:
    """Line number of the first data row, for text formats (header line for CSV)."""
    suffix = path.suffix.lower()
    return 2 if suffix == ".csv" else 1 if suffix in (".jsonl", ".json") else None


def _read_table(path: Path, shown: str, key: str) -> list[dict[str, Any]]:
    import pandas as pd

    if not path.is_file():
        raise ConfigError(
            f"`{key}: {shown}`: file not found at {path}; the path is relative to the "
            "config file"
        )
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            # Everything as text: pandas would turn a label column `1,2` into floats and
            # empty cells into NaN; numbers are parsed per column below.
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
        elif suffix in (".jsonl", ".json"):
            frame = pd.read_json(path, lines=True, dtype=False)
        else:
            frame = pd.read_parquet(path)
    except ImportError as exc:
        raise ConfigError(
            f"{shown}: reading Parquet needs pyarrow: pip install 'mltest-action[parquet]'"
        ) from exc
    except Exception as exc:
        raise ConfigError(f"{shown}: cannot be read as {suffix[1:]}: {exc}") from exc
    return _rows_of(frame, shown)


def _rows_of(value: Any, shown: str) -> list[dict[str, Any]]:
    import pandas as pd

    if isinstance(value, pd.DataFrame):
        return value.to_dict(orient="records")
    if isinstance(value, list) and all(isinstance(row, dict) for row in value):
        return value
    raise ProjectError(
        f"{shown} returned {type(value).__name__}; return a list of dicts or a DataFrame"
    )


def _missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def _validate(rows: list[dict[str, Any]], source: str, first_line: int | None) -> list[Example]:
    columns = list(dict.fromkeys(col for row in rows for col in row))
    unknown = [c for c in columns if c not in COLUMNS and not str(c).startswith("input.")]
    if unknown:
        hints = "".join(
            f" (`{c}`: did you mean `{m[0]}`?)"
            for c in unknown
            if (m := difflib.get_close_matches(str(c), COLUMNS, n=1))
        )
        raise ConfigError(
            f"{source}: unknown column(s) {', '.join(f'`{c}`' for c in unknown)}{hints}; "
            f"allowed: {', '.join(COLUMNS)} and `input.<name>`"
        )
    for required in ("id", "kind"):
        if required not in columns:
            raise ConfigError(
                f"{source}: column `{required}` is missing (found: {', '.join(map(str, columns))})"
            )
    input_columns = [c for c in columns if str(c).startswith("input.")]
    if "input" not in columns and not input_columns:
        raise ConfigError(f"{source}: no input column; add `input` (or `input.<name>` columns)")
    if "input" in columns and input_columns:
        raise ConfigError(f"{source}: give an `input` column or `input.<name>` columns, not both")

    # Only the table's own columns are read per row: absent ones are None for every row.
    present = [c for c in COLUMNS if c != "input" and c in columns]
    examples, seen = [], {}
    for index, row in enumerate(rows):
        where = f"{source} line {first_line + index}" if first_line else f"{source} row {index}"
        examples.append(_example(row, where, input_columns, present))
        ex = examples[-1]
        if ex.id in seen:
            raise ConfigError(f"{where}: id `{ex.id}` is used twice (first at {seen[ex.id]})")
        seen[ex.id] = where
    _validate_groups(examples)
    return examples


def _cells(row: dict[str, Any], present: list[str]) -> dict[str, Any]:
    """The row's non-empty cells of the table's columns (empty ones count as absent)."""
    cells = {}
    for column in present:
        value = row.get(column)
        if value is not None and not _missing(value):
            cells[column] = value
    return cells


def _text(value: Any) -> str | None:
    """A cell as stripped text (None stays None)."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # a label column read as floats: 1.0 means label 1
    return str(value).strip()


def _fail(at: str, column: str, message: str) -> ConfigError:
    return ConfigError(f"{at}, column `{column}`: {message}")


def _example(
    row: dict[str, Any], where: str, input_columns: list[str], present: list[str]
) -> Example:
    # Runs once per row (10,000s of rows): module-level helpers, no closures per row, and
    # each non-empty cell looked at once.
    cells = _cells(row, present)
    cell = cells.get
    ident = _text(cell("id"))
    if ident is None:
        raise ConfigError(f"{where}, column `id`: every example needs an id")
    at = f"{where} (id `{ident}`)"

    kind = (_text(cell("kind")) or "").lower()
    if kind not in KINDS:  # CheckList's long names
        kind = _KIND_NAMES.get(kind.replace(" ", "_").replace("-", "_"), kind)
    if kind not in KINDS:
        raise _fail(at, "kind", f"got {row.get('kind')!r}; allowed: {', '.join(KINDS)}")
    if input_columns:
        value = {c.removeprefix("input."): row.get(c) for c in input_columns}
    else:
        value = row.get("input")
    if not isinstance(value, dict) and not hasattr(value, "shape") and _missing(value):
        raise _fail(at, "input", "is empty")
    if kind == "mft" and cells.keys() <= _LABEL_ROW:  # the common row: an expected label
        expected = cell("expected")
        if expected is None:
            raise _fail(at, "expected", "an mft example needs an expected label or value")
        return Example(ident, kind, value, _label_text(expected), None, None, None, None, None,
                       _tags(row.get("tags")), at)  # fmt: skip

    tolerance = _number(cell("tolerance"), at, "tolerance")
    top_k = _number(cell("top_k"), at, "top_k")
    if top_k is not None and (top_k < 1 or not float(top_k).is_integer()):
        raise _fail(at, "top_k", f"must be a whole number >= 1, got {row.get('top_k')!r}")
    direction = (_text(cell("direction")) or "").lower() or None
    if direction is not None and direction not in DIRECTIONS:
        raise _fail(at, "direction", f"got {row.get('direction')!r}; allowed: up, down")
    expected = cell("expected")
    if isinstance(expected, str):
        expected = expected.strip()
    group = _text(cell("group"))
    measured = measures.parse(
        kind, _text(cell("measure")), _text(cell("region")),
        _number(cell("at_least"), at, "at_least"),
        _number(cell("at_most"), at, "at_most"), expected, tolerance, at,
    )  # fmt: skip

    if kind == "mft":
        if expected is None and measured is None:
            raise _fail(at, "expected", "an mft example needs an expected label or value")
        if tolerance is not None and measured is None and _number(expected, at, "expected") is None:
            raise _fail(at, "expected", "with `tolerance` the expected value must be a number")
        if top_k is not None and (tolerance is not None or measured is not None):
            raise _fail(at, "top_k", "give `top_k` (a label) or `tolerance` (a value), not both")
        for column, value_ in (("group", group), ("direction", direction)):
            if value_ is not None:
                raise _fail(at, column, "is only used by inv and dir examples; leave it empty")
    else:
        if group is None:
            raise _fail(at, "group", f"a {kind} example needs a group to be compared within")
        if top_k is not None:
            raise _fail(at, "top_k", "is only used by mft examples")
    if kind == "inv" and direction is not None:
        raise _fail(at, "direction", "is only used by dir examples")

    tags = _tags(row.get("tags"))
    if tolerance is not None and tolerance < 0:
        raise _fail(at, "tolerance", f"must be >= 0, got {tolerance:g}")
    if not measured:  # a value (mft with a tolerance) or a label, compared as text
        expected = float(expected) if kind == "mft" and tolerance is not None else (
            _label_text(expected)
        )
    # positional, in the fields' order: a keyword call costs a 10,000-row table milliseconds
    return Example(
        ident, kind, value, expected, group, direction, _text(cell("target")), tolerance,
        int(top_k) if top_k is not None else None, tags, at, measured,
    )  # fmt: skip


def _tags(raw: Any) -> tuple[str, ...]:
    """`a;b` (or a list in JSONL / functions) -> ("a", "b"), blanks and repeats dropped."""
    if isinstance(raw, str) and ";" not in raw:  # the common case: one tag
        return (raw.strip(),) if raw.strip() else ()
    if isinstance(raw, str):
        return tuple(dict.fromkeys(t.strip() for t in raw.split(";") if t.strip()))
    if raw is None or _missing(raw):
        return ()
    return tuple(dict.fromkeys(str(t).strip() for t in raw if str(t).strip()))


def _number(value: Any, at: str, column: str) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _fail(at, column, f"expected a number, got {value!r}") from None
    if math.isnan(number):
        return None
    return number


def _label_text(value: Any) -> str | None:
    """Labels compare as text: 1, 1.0 and "1" are the same label."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _validate_groups(examples: list[Example]) -> None:
    """inv/dir groups: one kind each, two members or more, dir reference first."""
    groups: dict[str, list[Example]] = {}
    for ex in examples:
        if ex.kind != "mft":
            groups.setdefault(ex.group, []).append(ex)
    for name, members in groups.items():
        kinds = sorted({m.kind for m in members})
        if len(kinds) > 1:
            raise ConfigError(
                f"{members[0].where}, column `group`: group `{name}` mixes kinds "
                f"{' and '.join(kinds)}; use one kind per group"
            )
        if len(members) < 2:
            raise ConfigError(
                f"{members[0].where}, column `group`: group `{name}` has one example; an "
                f"{kinds[0]} group needs a reference and at least one example to compare"
            )
        measures.check_group(members)
        if kinds[0] == "dir":
            reference, *others = members
            if reference.direction is not None:
                raise ConfigError(
                    f"{reference.where}, column `direction`: the first row of dir group "
                    f"`{name}` is its reference and must have no direction"
                )
            for other in others:
                if other.direction is None:
                    raise ConfigError(
                        f"{other.where}, column `direction`: give `up` or `down` (how the "
                        f"score moves relative to `{reference.id}`)"
                    )
