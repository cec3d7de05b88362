"""A run's output holds no Lightning advice about what mltest does on purpose (fits without a
val loop on a model that defines validation_step)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.suites import copy_example

ROOT = Path(__file__).resolve().parent.parent


def test_no_val_dataloader_advice_in_a_runs_output(tmp_path):
    config = copy_example("gan", tmp_path)
    out = subprocess.run(
        [sys.executable, "-m", "mltest", "run", "--config", str(config),
         "--report-dir", str(tmp_path / "report")],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    output = out.stdout + out.stderr
    assert out.returncode == 0, output
    assert "PASS    memorization" in output and "PASS    sanity" in output
    assert "have no `val_dataloader`" not in output


def test_lightning_gives_that_advice_outside_quiet(tmp_path):
    import warnings

    from bench.common import context
    from mltest.engine import FixedBatches, make_trainer, quiet

    ctx, _ = context(copy_example("gan", tmp_path), "sanity")
    model, batches = ctx.project.fresh_start(0, 1)
    for silenced in (False, True):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with quiet() if silenced else warnings.catch_warnings():
                trainer = make_trainer(model, {"accelerator": "cpu"}, max_steps=1)
                trainer.fit(model, train_dataloaders=FixedBatches(batches))
        said = any("have no `val_dataloader`" in str(w.message) for w in caught)
        assert said is not silenced
