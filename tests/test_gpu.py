"""CUDA is home: the GPU lane. Every test here is marked `gpu` and skipped without CUDA (CI has
none); on a GPU runner, `python -m pytest -m gpu tests/test_gpu.py` runs them for real.

Each test works on a copy of a bundled example (whose committed baselines and goldens were
recorded on a CPU), with the trainer's `accelerator: auto` picking the GPU.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mltest.report import Status
from mltest.supervisor import run_suite
from tests.suites import EXAMPLES, copy_example, forget_project_modules

pytestmark = pytest.mark.gpu

REPO = Path(__file__).resolve().parent.parent
NAMES = ("tabular", "image_classifier", "text_classifier")


def cuda_key() -> str:
    minor = ".".join(torch.__version__.split("+")[0].split(".")[:2])
    return f"cuda-torch{minor}-32-true"


def cpu_key(name: str) -> str:
    """The CPU environment the example's committed baselines were recorded in (the GPU
    runner's torch may be another minor version)."""
    (key,) = {k for entries in committed(name).values() for k in entries if k.startswith("cpu-")}
    return key


def suite(config: Path, tmp_path: Path, *, update=False, only=None):
    forget_project_modules(config.parent)
    report = run_suite(
        config, tmp_path / f"report-{time.monotonic_ns()}", update_baselines=update, only=only
    )
    assert not report.errors, report.errors
    return report, {c.name: c for c in report.checks}


def committed(name: str) -> dict:
    return json.loads((EXAMPLES / name / ".mltest" / "baselines.json").read_text())["checks"]


@pytest.mark.parametrize("name", NAMES)
def test_every_example_passes_on_cuda_after_recording_and_keeps_the_cpu_entries(tmp_path, name):
    config = copy_example(name, tmp_path)
    golden_dir = config.parent / ".mltest" / "golden" / "regression"
    cpu_golden = golden_dir / f"{cpu_key(name)}.safetensors"
    cpu_bytes = cpu_golden.read_bytes()
    _, recorded = suite(config, tmp_path, update=True)
    assert all(r.status is Status.PASS for r in recorded.values()), {
        n: r.summary for n, r in recorded.items()
    }
    report, results = suite(config, tmp_path)
    assert report.verdict.exit_code == 0, {n: (r.status, r.summary) for n, r in results.items()}
    assert report.metadata.get("cuda") and report.metadata.get("cudnn")
    index = json.loads((config.parent / ".mltest" / "baselines.json").read_text())["checks"]
    for check, entries in committed(name).items():
        assert cuda_key() in index[check], check  # the CUDA entry was added...
        assert index[check][cpu_key(name)] == entries[cpu_key(name)], check  # ...the CPU one kept
    assert cpu_golden.read_bytes() == cpu_bytes


@pytest.mark.parametrize("name", NAMES)
def test_reruns_on_the_same_gpu_are_identical(tmp_path, name):
    config = copy_example(name, tmp_path)
    suite(config, tmp_path, update=True)
    _, first = suite(config, tmp_path)
    _, second = suite(config, tmp_path)
    assert first["memorization"].metrics["epochs"] == second["memorization"].metrics["epochs"]
    for results in (first, second):
        regression = results["regression"]
        assert regression.status is Status.PASS, regression.summary
        assert regression.metrics["moved"] == 0
        assert regression.metrics["outputs"]["output"]["max_abs"] == 0.0


def test_a_cnn_with_adaptive_pooling_runs_with_a_notice_and_strict_mode_names_the_key(tmp_path):
    # The image example is a torchvision-style CNN ending in nn.AdaptiveAvgPool2d, whose CUDA
    # backward has no deterministic kernel.
    config = copy_example("image_classifier", tmp_path)
    _, results = suite(config, tmp_path, update=True)
    for check in ("memorization", "sanity"):
        assert results[check].status is Status.PASS, results[check].summary
        assert any(
            "adaptive_avg_pool2d_backward_cuda" in n for n in results[check].notices
        ), results[check].notices
    config.write_text(config.read_text().replace("devices: 1", "devices: 1\n  deterministic: true"))
    _, strict = suite(config, tmp_path, only=["sanity"])
    assert strict["sanity"].status is Status.ERROR
    assert "`trainer.deterministic: warn`" in strict["sanity"].summary


@pytest.mark.parametrize("name", NAMES)
def test_a_cpu_recorded_golden_on_cuda_is_a_notice_not_a_failure(tmp_path, name):
    config = copy_example(name, tmp_path)
    _, results = suite(config, tmp_path, only=["regression"])
    result = results["regression"]
    assert result.status is Status.PASS, result.summary
    assert result.metrics["golden_key"] == cpu_key(name)
    assert any(f"no golden outputs are recorded for {cuda_key()}" in n for n in result.notices)
    assert any("mltest baseline update" in n for n in result.notices)


def test_a_label_map_change_still_fails_against_the_cpu_golden_on_cuda(tmp_path):
    config = copy_example("tabular", tmp_path)
    model = config.parent / "model.py"
    permuted = "softmax(self(x), dim=1)[:, [1, 2, 0]]"  # an off-by-one label map
    model.write_text(model.read_text().replace("softmax(self(x), dim=1)", permuted))
    _, results = suite(config, tmp_path, only=["regression"])
    assert results["regression"].status is Status.FAIL
    assert "predicted label(s)" in results["regression"].summary


def test_the_quick_benchmark_runs_on_cuda(tmp_path):
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(out.read_text())
