"""Section 5: the whole suite on each bundled example: wall time and peak memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

from bench.common import REPO

# The child runs the CLI, then reports CUDA peak memory (when CUDA was used) on stderr.
_CHILD = (
    "import sys\n"
    "from mltest.cli import main\n"
    "code = main(['run', '--config', {config!r}, '--report-dir', {report!r}])\n"
    "torch = sys.modules.get('torch')\n"
    "if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():\n"
    "    print('CUDA_PEAK_BYTES=%d' % torch.cuda.max_memory_allocated(), file=sys.stderr)\n"
    # VmHWM is this process's own peak; wait4's ru_maxrss would also count the parent's
    # footprint, which the child inherits across fork + exec.
    "for line in open('/proc/self/status'):\n"
    "    if line.startswith('VmHWM:'):\n"
    "        print('PEAK_RSS_KB=%d' % int(line.split()[1]), file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def _quick_config():
    from bench.common import write_config

    return write_config(
        {"memorization": {"max_epochs": 2, "target": {"loss_below": 0.0}}},
        model={"class": "bench.models:TinyNet"},
        data={"class": "bench.models:BenchData"},
        seeds=[0],
    )


def examples() -> list:
    return sorted((REPO / "examples").glob("*/mltest.yaml"))


def whole_suite(quick: bool) -> dict[str, Any]:
    """`mltest run` on every example, one child each.

    Quick mode runs a two-epoch bench project instead: it smoke-tests this code, not the
    examples' figures.
    """
    configs = [_quick_config()] if quick else examples()
    out: dict[str, Any] = {"target_s": 60.0}
    for config in configs:
        report = tempfile.mkdtemp(prefix="mltest-bench-suite-")
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD.format(config=str(config), report=report)],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        # wait4 gives this child's own peak RSS (getrusage would mix all children).
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        stdout, stderr = proc.stdout.read(), proc.stderr.read()
        proc.returncode = os.waitstatus_to_exitcode(status)
        cuda = [ln for ln in stderr.splitlines() if ln.startswith("CUDA_PEAK_BYTES=")]
        peak = [ln for ln in stderr.splitlines() if ln.startswith("PEAK_RSS_KB=")]
        peak_kb = int(peak[0].split("=")[1]) if peak else usage.ru_maxrss  # Linux: KiB
        report_json = json.loads((REPO.__class__(report) / "report.json").read_text())
        out[config.parent.name] = {
            "wall_s": wall,
            "peak_rss_mb": peak_kb / 1024,
            "cuda_peak_mb": int(cuda[0].split("=")[1]) / 2**20 if cuda else None,
            "exit_code": proc.returncode,
            "checks": {
                c["name"]: {"status": c["status"], "seconds": c.get("duration_s")}
                for c in report_json["checks"]
            },
            "output_tail": stdout[-600:] if proc.returncode else "",
        }
    return out
