"""Section 4: start-up. `mltest --help/--version` without torch; `mltest run` to first check."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

from bench.common import REPO, best, write_config

_NO_TORCH = (
    "import sys\n"
    "from mltest.cli import main\n"
    "try:\n    main([{arg!r}])\nexcept SystemExit:\n    pass\n"
    "print('TORCH_IMPORTED=' + str('torch' in sys.modules), file=sys.stderr)\n"
)

# `mltest run` prints one line per check as its result reaches the supervisor; the first
# result line marks the first check done (tiny: one epoch), counted from the child's start.
_RESULT_PREFIXES = ("PASS", "FAIL", "ERROR")


def _mltest(arg: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "mltest", arg], cwd=REPO, capture_output=True, check=True
    )
    return time.perf_counter() - started


def startup(quick: bool) -> dict[str, Any]:
    """Wall time of `mltest --help`/`--version` (subprocess) and whether torch got imported."""
    repeats = 2 if quick else 7
    times: dict[str, list[float]] = {"--help": [], "--version": []}
    for round_ in range(repeats):
        for arg in ("--help", "--version") if round_ % 2 == 0 else ("--version", "--help"):
            times[arg].append(_mltest(arg))
    out: dict[str, Any] = {"target_s": 0.3}
    for arg, values in times.items():
        probe = subprocess.run(
            [sys.executable, "-c", _NO_TORCH.format(arg=arg)],
            cwd=REPO, capture_output=True, text=True, check=True,
        )
        importtime = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "mltest", arg],
            cwd=REPO, capture_output=True, text=True,
        )
        torch_lines = [
            line for line in importtime.stderr.splitlines() if line.rstrip().endswith("| torch")
        ]
        out[arg] = {
            "seconds": best(values),
            "torch_imported": "TORCH_IMPORTED=True" in probe.stderr or bool(torch_lines),
        }
    out["python_bare_s"] = best(
        [_time_cmd([sys.executable, "-c", "pass"]) for _ in range(repeats)]
    )
    out["run_to_first_check"] = _first_check(quick)
    out["imports"] = _imports(1 if quick else 3)
    return out


def _time_cmd(cmd: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, capture_output=True, check=True)
    return time.perf_counter() - started


def _first_check(quick: bool) -> dict[str, Any]:
    """Seconds from starting `mltest run` to the first (one-epoch) check's result, and the
    whole run: imports, config, the worker's start-up and the user's project import."""
    import tempfile

    config = write_config(
        {"memorization": {"max_epochs": 1, "target": {"loss_below": 0.0}}},
        model={"class": "bench.models:TinyNet"},
        data={"class": "bench.models:BenchData"},
        seeds=[0],
    )
    report = tempfile.mkdtemp(prefix="mltest-bench-report-")
    firsts, totals = [], []
    command = [sys.executable, "-m", "mltest", "run", "--config", str(config),
               "--report-dir", report]  # fmt: skip
    for _ in range(1 if quick else 3):
        started = time.perf_counter()
        proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True)
        first = None
        assert proc.stdout is not None
        for line in proc.stdout:
            if first is None and line.startswith(_RESULT_PREFIXES):
                first = time.perf_counter() - started
        proc.wait()
        totals.append(time.perf_counter() - started)
        if first is None:
            raise RuntimeError(f"`mltest run` reported no check (exit {proc.returncode})")
        firsts.append(first)
    report_json = json.loads((REPO.__class__(report) / "report.json").read_text())
    return {
        "seconds": best(firsts),
        "whole_run_s": best(totals),
        "checks": [c["name"] for c in report_json["checks"] if c["status"] != "skipped"],
    }


def _imports(repeats: int) -> dict[str, Any]:
    """Fresh interpreters importing torch, then torch and Lightning (what every worker pays
    once, before the project's own imports), and which packages that time goes to (one
    `-X importtime` trace, self times summed per top-level package: relative sizes; with
    transformers and scipy installed, Lightning's torchmetrics imports both)."""
    out: dict[str, Any] = {
        "torch_s": best([_time_cmd([sys.executable, "-c", "import torch"])
                         for _ in range(repeats)]),
        "torch_lightning_s": best([_time_cmd([sys.executable, "-c",
                                              "import torch, pytorch_lightning"])
                                   for _ in range(repeats)]),
    }  # fmt: skip
    trace = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import torch, pytorch_lightning"],
        cwd=REPO, capture_output=True, text=True,
    ).stderr  # fmt: skip
    per_package: dict[str, float] = {}
    for line in trace.splitlines():
        parts = [p.strip() for p in line.removeprefix("import time:").split("|")]
        if len(parts) == 3 and parts[0].isdigit():
            package = parts[2].split(".")[0]
            per_package[package] = per_package.get(package, 0.0) + int(parts[0]) / 1e6
    top = sorted(per_package.items(), key=lambda item: -item[1])[:8]
    out["importtime_share"] = {
        name: round(seconds / sum(per_package.values()), 3) for name, seconds in top
    }
    return out
