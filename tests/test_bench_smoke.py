"""The benchmark's quick mode runs end to end and writes every section (no timing asserted)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SECTIONS = {
    "startup",
    "memorization_overhead",
    "seeds",
    "memorization_speed",
    "prediction_checks",
    "golden_compare",
    "whole_suite",
    "supervision",
    "against_torchtest",
    "evaluation_gate",
}


def _ratios(node, path=""):
    """Every value whose key names a ratio or a speed-up, with where it sits."""
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{path}.{key}"
            if ("ratio" in key or "speedup" in key) and not isinstance(value, dict):
                yield here, value
            yield from _ratios(value, here)


@pytest.mark.slow
def test_quick_benchmark_writes_every_section(tmp_path):
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["quick"] is True
    assert set(results["sections"]) == SECTIONS
    assert "benchmark" in proc.stdout and "measured" in proc.stdout  # the table was printed

    ratios = dict(_ratios(results["sections"]))
    assert ratios, "no ratios in the results"
    for where, value in ratios.items():
        assert isinstance(value, (int, float)) and math.isfinite(value) and value > 0, where

    startup = results["sections"]["startup"]
    assert startup["--help"]["torch_imported"] is False
    assert startup["--version"]["torch_imported"] is False
    assert results["sections"]["whole_suite"], "no suite was run"
    for row in results["sections"]["whole_suite"].values():
        if isinstance(row, dict):
            assert row["exit_code"] in (0, 1), row["output_tail"]
    torchtest = results["sections"]["against_torchtest"]
    if "skipped" not in torchtest:
        # the healthy model passes both tools; sanity catches every broken variant
        assert torchtest["variants"]["healthy"]["mltest_caught"] is False
        assert torchtest["variants"]["healthy"]["torchtest_caught"] is False
        assert torchtest["caught"]["mltest"] == torchtest["caught"]["of"]
