"""Shared benchmark plumbing: suites written to a temp dir, check contexts, alternating timing."""

from __future__ import annotations

import contextlib
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent


def write_config(
    checks: dict[str, Any], *, model: dict[str, Any], data: dict[str, Any], **top: Any
) -> Path:
    """A mltest.yaml in a fresh temp dir naming classes in `bench.models` (repo root on path).

    `model` and `data` are the config's sections (`{"class": ..., "init_args": ...}`).
    """
    directory = Path(tempfile.mkdtemp(prefix="mltest-bench-"))
    config = {
        "model": model,
        "data": data,
        "trainer": {"accelerator": "auto", "devices": 1},
        **top,
        "checks": checks,
    }
    path = directory / "mltest.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def context(config_path: Path, check: str):
    """A CheckContext for `check` built from a config, as the worker builds it."""
    from mltest.baselines import BaselineStore
    from mltest.checks.base import CheckContext, Deadline
    from mltest.config import load_config
    from mltest.project import Project

    loaded = load_config(config_path)
    settings = loaded.checks[check]
    ctx = CheckContext(
        name=check,
        loaded=loaded,
        project=Project(loaded),
        baselines=BaselineStore(loaded.baseline_dir),
        update_baselines=False,
        deadline=Deadline(check, settings.time_budget_s),
    )
    return ctx, settings


CLOCK: Callable[[], float] = time.perf_counter  # run.py may switch to time.process_time


def use_clock(cpu_time: bool, threads: int | None) -> None:
    """Wall clock (default) or process CPU time; optionally pin torch's intra-op threads.

    On a machine shared with other jobs, wall time swings with their load. With one thread,
    process CPU time is what the code itself cost, and hardly moves with the neighbours.
    """
    global CLOCK
    CLOCK = time.process_time if cpu_time else time.perf_counter
    if threads:
        import torch

        torch.set_num_threads(threads)


def alternate(fns: dict[str, Callable[[], Any]], repeats: int) -> dict[str, list[float]]:
    """Time each function `repeats` times, round-robin (A B A B ...) so drift hits all alike.

    The order within a round is reversed every other round, so neither side always runs
    right after the other's allocations.
    """
    times: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    for round_ in range(repeats):
        for name in names if round_ % 2 == 0 else names[::-1]:
            started = CLOCK()
            fns[name]()
            times[name].append(CLOCK() - started)
    return times


def best(values: list[float]) -> float:
    """The fastest run: other load on a shared machine only ever adds time."""
    return min(values)


def paired_ratio(numerator: list[float], denominator: list[float]) -> float:
    """Median of per-round ratios: each pair ran back to back, so it shares the machine's mood."""
    return statistics.median(a / b for a, b in zip(numerator, denominator, strict=True))


def machine() -> dict[str, Any]:
    """What the figures were taken on."""
    import os
    import platform

    import pytorch_lightning
    import torch

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": pytorch_lightning.__version__,
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    with contextlib.suppress(OSError):
        info["load_average_at_start"] = os.getloadavg()[0]
    return info


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown"


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()
