"""The worker pauses the garbage collector while torch, Lightning and the project import, and
turns it back on before any check runs, with the imported objects out of its walks. A real
worker process runs the tabular example; its model writes down the collector's state when it
trains."""

from __future__ import annotations

import json

from mltest.supervisor import run_suite
from tests.suites import copy_example

RECORDER = """

import gc as _gc
import json as _json
from pathlib import Path as _Path

_step = TabularMLP.training_step


def _recording_step(self, *args, **kwargs):
    state = {"enabled": _gc.isenabled(), "frozen": _gc.get_freeze_count()}
    _Path(__file__).with_name("gc_state.json").write_text(_json.dumps(state))
    return _step(self, *args, **kwargs)


TabularMLP.training_step = _recording_step
"""


def test_checks_run_with_the_collector_on_and_the_imports_frozen(tmp_path):
    config = copy_example("tabular", tmp_path)
    model = config.parent / "model.py"
    model.write_text(model.read_text() + RECORDER)
    report = run_suite(config, tmp_path / "r", only=["sanity"])
    [sanity] = [c for c in report.checks if c.name == "sanity"]
    assert sanity.status.value == "pass", sanity.summary
    state = json.loads((config.parent / "gc_state.json").read_text())
    # left off, every reference cycle a check makes (Lightning's trainers hold many) would
    # stay in memory until the worker ends
    assert state["enabled"] is True
    # torch and Lightning alone are ~400,000 objects; without the freeze every full
    # collection walks them again (0.2 s each on a CI core)
    assert state["frozen"] > 100_000
