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

# Runs `mltest run` in a child and prints the wall clock when the first check's run() is
# entered; the parent measures from just before it started the child.
_FIRST_CHECK = (
    "import time, sys\n"
    "import mltest.runner as runner\n"
    "original = runner._run_one\n"
    "def first(module, ctx, settings):\n"
    "    print('FIRST_CHECK_AT=%r' % time.time(), file=sys.stderr, flush=True)\n"
    "    runner._run_one = original\n"
    "    return original(module, ctx, settings)\n"
    "runner._run_one = first\n"
    "from mltest.cli import main\n"
    "sys.exit(main(['run', '--config', {config!r}, '--report-dir', {report!r}]))\n"
)


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
    return out


def _time_cmd(cmd: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, capture_output=True, check=True)
    return time.perf_counter() - started


def _first_check(quick: bool) -> dict[str, Any]:
    """Seconds from starting `mltest run` to the first check starting, and the whole run."""
    import tempfile

    config = write_config(
        {"memorization": {"max_epochs": 1, "target": {"loss_below": 0.0}}},
        model={"class": "bench.models:TinyNet"},
        data={"class": "bench.models:BenchData"},
        seeds=[0],
    )
    report = tempfile.mkdtemp(prefix="mltest-bench-report-")
    firsts, totals = [], []
    for _ in range(1 if quick else 3):
        started = time.time()
        proc = subprocess.run(
            [sys.executable, "-c", _FIRST_CHECK.format(config=str(config), report=report)],
            cwd=REPO, capture_output=True, text=True,
        )
        totals.append(time.time() - started)
        marks = [ln for ln in proc.stderr.splitlines() if ln.startswith("FIRST_CHECK_AT=")]
        if not marks:
            raise RuntimeError(f"no check started: {proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        firsts.append(float(marks[0].split("=", 1)[1]) - started)
    report_json = json.loads((REPO.__class__(report) / "report.json").read_text())
    return {
        "seconds": best(firsts),
        "whole_run_s": best(totals),
        "checks": [c["name"] for c in report_json["checks"] if c["status"] != "skipped"],
    }
