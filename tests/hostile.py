"""Model code that misbehaves on purpose, for the supervisor's fault tests.

`hostile_suite` copies the tabular example and appends code to its model.py that replaces the
sanity check's `run` inside the worker (model code runs in the worker process, so it can): the
body then does whatever a test needs from inside the worker, with the tools real model code
has (signals, fork, files, the worker's own pipe found through the garbage collector).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from tests.suites import copy_example

PRELUDE = """

# --- appended by tests.hostile: the sanity check's run, replaced inside the worker ----------
import gc as _gc
import os as _os
import signal as _signal
import subprocess as _subprocess
import sys as _sys
import time as _time
from pathlib import Path as _Path

import mltest.checks.sanity as _sanity
from mltest.report import CheckResult as _Result
from mltest.report import Status as _Status

_HERE = _Path(__file__).parent


def _sender():
    # The worker's end of the pipe, as model code can find it. The worker froze what existed
    # before the project imported (gc.freeze, for speed); that hides it only until unfrozen.
    _gc.unfreeze()
    return next(o for o in _gc.get_objects() if type(o).__name__ == "Sender" and o.fd)


def _passed(summary="hostile code ran"):
    return _Result("sanity", "sanity", _Status.PASS, summary)


def _hostile_run(ctx, settings):
{body}


_sanity.run = _hostile_run
"""


def hostile_suite(tmp_path: Path, body: str, budget_s: int | None = None) -> Path:
    """The tabular example whose sanity check runs `body` (Python, as a function body) in the
    worker; returns the config path. `budget_s` sets sanity's time budget."""
    config = copy_example("tabular", tmp_path)
    model = config.parent / "model.py"
    code = PRELUDE.format(body=textwrap.indent(textwrap.dedent(body).strip(), "    "))
    model.write_text(model.read_text() + code)
    if budget_s is not None:
        text = config.read_text()
        text = text.replace("  sanity:\n", f"  sanity:\n    time_budget_s: {budget_s}\n")
        config.write_text(text)
    return config
