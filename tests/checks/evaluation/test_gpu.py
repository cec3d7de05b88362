"""The evaluation gate on CUDA (marked `gpu`: skipped where torch sees no GPU): the candidate
trains and predicts on the GPU, the record is filed under the CUDA environment beside the
committed CPU one, a rerun compares example by example with differences of zero, and the
restore / resume test holds on the device."""

from __future__ import annotations

import json

import pytest
import torch

from mltest.report import Status
from tests.checks.evaluation.gate import gate
from tests.suites import copy_example

pytestmark = pytest.mark.gpu


def test_the_regression_example_gates_on_cuda_beside_its_cpu_record(tmp_path):
    config = copy_example("house_prices", tmp_path)
    index = config.parent / ".mltest" / "baselines.json"
    cpu = json.loads(index.read_text())["checks"]["evaluation"]
    recorded = gate(config, update=True)
    assert recorded.status is Status.PASS, recorded.summary
    env = recorded.metrics["environment"]
    assert env.startswith("cuda-") and torch.cuda.is_available()
    entries = json.loads(index.read_text())["checks"]["evaluation"]
    assert set(cpu) < set(entries) and all(entries[k] == cpu[k] for k in cpu)
    rerun = gate(config)
    assert rerun.status is Status.PASS, rerun.summary
    assert all(c["previous"]["delta"] == 0.0 for c in rerun.metrics["cells"])
    assert {c.name: c.status for c in rerun.cases if ":" in c.name} == {
        "restore: predictions": Status.PASS, "resume: next step": Status.PASS,
    }
