"""Run independent seeds in forked worker processes on a CPU machine with spare cores.

Each worker uses one torch thread: forking a process whose OpenMP pool has run with several
threads and then using several threads in the child hangs (GNU OpenMP is not fork-safe), and
one thread per process is also what makes small models scale across cores.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from mltest.errors import MltestError, raised

_TASK: Callable[[Any], Any] | None = None  # set just before forking; inherited by the workers
_IN_WORKER = False  # true in a forked worker process


def in_forked_worker() -> bool:
    """Whether this process is one of `map_forked`'s workers (which must keep one thread)."""
    return _IN_WORKER


def fork_unavailable(device_type: str) -> str | None:
    """Why forked workers cannot be used here, or None when they can."""
    import torch

    if not sys.platform.startswith("linux"):
        return "forked workers are only used on Linux"
    if device_type != "cpu" or torch.cuda.is_initialized():
        return "forked workers are only used on the CPU (CUDA does not survive a fork)"
    return None


def resolve_workers(setting: int | str, tasks: int) -> int:
    """`auto` -> one worker per task up to the number of cores; a number is taken as is."""
    if setting == "auto":
        return max(1, min(tasks, os.cpu_count() or 1))
    return max(1, min(int(setting), tasks))


def map_forked(task: Callable[[Any], Any], items: Sequence[Any], workers: int) -> list[Any]:
    """`[task(item) for item in items]`, computed by `workers` forked processes, in order.

    Raises:
        MltestError: when a task raised; the message keeps the item, exception and user frame.
    """
    global _TASK
    _TASK = task
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            outcomes = pool.map(_run_in_worker, items, chunksize=1)
    finally:
        _TASK = None
    results = []
    for item, (ok, value) in zip(items, outcomes, strict=True):
        if not ok:
            raise MltestError(f"{value} (in the worker process for {item!r})")
        results.append(value)
    return results


def _run_in_worker(item: Any) -> tuple[bool, Any]:
    import torch

    global _IN_WORKER
    _IN_WORKER = True
    torch.set_num_threads(1)
    try:
        return True, _TASK(item)
    except MltestError as exc:
        return False, str(exc)
    except Exception as exc:  # bring back what the runner would show, naming who raised
        return False, raised(exc)
