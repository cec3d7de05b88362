"""Section: what running user code in a supervised worker process costs.

`mltest run` (supervisor + worker) against the same checks run in one process, as mltest
did before the worker existed (the worker's own check loop, called in-process); and how long
a worker takes from spawn to its first message and to its first check.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import REPO, best

_IN_PROCESS = (
    "import os, tempfile\n"
    "from mltest.channel import Job, Sender\n"
    "from mltest.config import CHECK_MODULES, load_config\n"
    "from mltest.seeding import prepare_process\n"
    "from mltest.worker import run_checks\n"
    "prepare_process()\n"
    "loaded = load_config({config!r})\n"
    "names = [n for n in CHECK_MODULES if n in loaded.checks]\n"
    "tmp = tempfile.mkdtemp()\n"
    "job = Job({config!r}, names, False, os.path.join(tmp, 'staging'), os.path.join(tmp, 's'))\n"
    "os.mkdir(job.staging)\n"
    "run_checks(job, Sender(os.open(os.devnull, os.O_WRONLY)))\n"
)


def _wall(command: list[str]) -> float:
    started = time.perf_counter()
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"{command[:3]} exited {proc.returncode}: {proc.stderr[-2000:]}")
    return time.perf_counter() - started


def _suite_pair(config: Path, rounds: int) -> dict[str, Any]:
    """Supervised vs in-process wall time, alternating A/B/B/A, best of each."""
    report = tempfile.mkdtemp(prefix="mltest-bench-supervision-")
    supervised = [sys.executable, "-m", "mltest", "run", "--config", str(config),
                  "--report-dir", report]  # fmt: skip
    in_process = [sys.executable, "-c", _IN_PROCESS.format(config=str(config))]
    times: dict[str, list[float]] = {"supervised": [], "in_process": []}
    for round_ in range(rounds):
        order = ("supervised", "in_process") if round_ % 2 == 0 else ("in_process", "supervised")
        for name in order:
            times[name].append(_wall(supervised if name == "supervised" else in_process))
    a, b = best(times["supervised"]), best(times["in_process"])
    return {"supervised_s": a, "in_process_s": b, "ratio": a / b, "target": 1.10}


def _worker_start(config: Path) -> dict[str, float]:
    """Seconds from spawning a worker to its `facts` message and to its first `start`."""
    import os

    from mltest.channel import Job
    from mltest.process_tree import Containment
    from mltest.worker_handle import WorkerProcess, worker_environment

    scratch = Path(tempfile.mkdtemp(prefix="mltest-bench-worker-"))
    (scratch / "staging").mkdir()
    job = Job(str(config), ["memorization"], False, str(scratch / "staging"), str(scratch / "s"))
    started = time.perf_counter()
    marks: dict[str, float] = {}
    with Containment() as tree:
        worker = WorkerProcess(job, worker_environment(os.environ), tree)
        _until_first_start(worker, marks, started)
    return {"to_facts_s": marks.get("facts", float("nan")),
            "to_first_check_s": marks.get("start", float("nan"))}  # fmt: skip


def _until_first_start(worker, marks: dict[str, float], started: float) -> None:
    try:
        while "start" not in marks:
            messages, state = worker.messages(time.monotonic() + 120)
            for message in messages:
                marks.setdefault(message["type"], time.perf_counter() - started)
            if state != "open":
                break
    finally:
        worker.stop()


def supervision(quick: bool) -> dict[str, Any]:
    """The worker's start-up and the supervised suite against one process, per example."""
    from bench.suite import _quick_config, examples

    configs = [_quick_config()] if quick else examples()
    out: dict[str, Any] = {"worker_start": _worker_start(configs[0])}
    for config in configs:
        out[config.parent.name] = _suite_pair(config, rounds=1 if quick else 4)
    return out
