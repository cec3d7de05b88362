"""How each key-example row's cells are read: tags (one, several, repeated, blank), CheckList's
kind names, and a column only some rows of a function's list of dicts have."""

from __future__ import annotations

import pytest

from mltest.checks.key_examples.table import _validate


def _one(**cells):
    row = {"id": "a", "kind": "mft", "input": 1, "expected": 1, **cells}
    return _validate([row], "t", None)[0]


@pytest.mark.parametrize(
    ("tags", "read"),
    [
        (" easy ", ("easy",)),
        ("   ", ()),
        ("", ()),
        (None, ()),
        ("a; b;a; ", ("a", "b")),
        (["x", " y", "x", ""], ("x", "y")),
    ],
)
def test_tags_are_stripped_split_and_kept_once_in_table_order(tags, read):
    assert _one(tags=tags).tags == read


@pytest.mark.parametrize("written", ["Minimum Functionality", "minimum-functionality", " MFT "])
def test_checklist_kind_names_read_as_the_short_kind(written):
    assert _one(kind=written).kind == "mft"


def test_a_column_some_rows_lack_is_read_where_present():
    rows = [
        {"id": "a", "kind": "mft", "input": 1, "expected": "0.5", "tolerance": "0.1"},
        {"id": "b", "kind": "mft", "input": 2, "expected": 1.0},
    ]
    first, second = _validate(rows, "t", None)
    assert (first.tolerance, first.expected) == (0.1, 0.5)  # a value, compared numerically
    assert (second.tolerance, second.expected) == (None, "1")  # label 1.0 is label 1


@pytest.mark.parametrize("expected", [" cat ", 2.0, 3, "1"])
def test_a_label_row_reads_the_same_on_the_short_path_as_with_other_columns(expected):
    # A row of only id, kind, input, expected and tags skips the other columns' checks; one
    # more filled column (here `target`) takes the full path, which must read it the same.
    short = _one(expected=expected, tags="a;b")
    full = _one(expected=expected, tags="a;b", target="cat")
    assert full.target == "cat" and short.target is None
    assert short == full._replace(target=None)
