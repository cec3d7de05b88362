"""Workflow commands, GITHUB_OUTPUT and the job summary, read back as the runner reads them."""

from __future__ import annotations

import io
import re

import pytest

from mltest.github.actions import SUMMARY_LIMIT_BYTES, Actions


def read_outputs(path):
    """Parse GITHUB_OUTPUT the way the runner does (name<<DELIM ... DELIM)."""
    text, outputs = path.read_text(), {}
    for m in re.finditer(r"^(.+?)<<(\S+)\n(.*?)\n\2$", text, flags=re.S | re.M):
        outputs[m.group(1)] = m.group(3)
    return outputs


def test_outputs_survive_multiline_values_and_fake_delimiters(tmp_path):
    out = Actions({"GITHUB_OUTPUT": str(tmp_path / "out")})
    tricky = "line 1\nEOF\nghadelimiter_x\nline 4"
    out.set_outputs({"result": "fail", "comment-url": "", "notes": tricky})

    assert read_outputs(tmp_path / "out") == {"result": "fail", "comment-url": "", "notes": tricky}
    delimiters = re.findall(r"<<(\S+)", (tmp_path / "out").read_text())
    assert len(set(delimiters)) == 3


def test_annotations_escape_newlines_and_property_separators():
    stream = io.StringIO()
    Actions({}, stream).annotate("error", "50% moved\nsee details", title="mltest a: b, c")
    assert stream.getvalue() == "::error title=mltest a%3A b%2C c::50%25 moved%0Asee details\n"


def test_annotation_level_is_checked():
    with pytest.raises(ValueError, match="error, warning or notice"):
        Actions({}).annotate("fatal", "x")


def test_summary_is_appended_and_refused_over_one_mebibyte(tmp_path):
    out = Actions({"GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md")})
    assert out.write_summary("# one")
    assert not out.write_summary("é" * (SUMMARY_LIMIT_BYTES // 2 + 1))
    assert (tmp_path / "summary.md").read_text() == "# one\n"


def test_without_runner_files_nothing_is_written():
    out = Actions({})
    out.set_outputs({"result": "pass"})
    assert not out.write_summary("x")
