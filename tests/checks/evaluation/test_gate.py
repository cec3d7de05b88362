"""The evaluation gate on the bundled regression example (`examples/house_prices`), trained for
real, in this process: a rerun and a harmless change pass with differences of exactly zero; a
bug that hurts one district fails there; several pull requests that each stay within the
per-PR allowance are caught by the pinned reference, which only `--pin` moves.

The bug: a PR shifts district C's training prices by a constant (a unit or currency slip in
one data source), so the model learns wrong prices for C. Each ratchet step shifts them a
little more.
"""

from __future__ import annotations

import shutil

import pytest
import torch

from mltest.report import Status
from tests.checks.evaluation.gate import cell, gate
from tests.suites import edited_example

# Cheap: no restore test here (tests/checks/evaluation/test_restore.py has its own).
CHEAP = [("hard_examples: 5", "hard_examples: 5\n    restore: {enabled: false}")]
PRICE = '"y": house["price"]}'


def shift_district_c(config, by: float) -> None:
    """The bug: district C's training prices shifted by `by` (the validation split is not)."""
    data = config.parent / "data.py"
    text = data.read_text()
    start = text.index("        self.train = ")
    end = text.index("\n", start)
    bug = ("        self.train = Houses([{**h, \"price\": h[\"price\"] + "
           f"({by!r} if h[\"district\"] == \"C\" else 0.0)}} for h in houses[:split]])")
    data.write_text(text[:start] + bug + text[end:])


def pinned_files(config) -> dict:
    folder = config.parent / ".mltest" / "evaluation" / "pinned"
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """The example with its previous result and pinned reference recorded on this machine (the
    committed ones may come from another CPU's float sums)."""
    config = edited_example("house_prices", tmp_path_factory.mktemp("recorded"), (), CHEAP)
    assert gate(config, update=True, pin=True).status is Status.PASS
    return config.parent


@pytest.fixture
def project(recorded, tmp_path):
    shutil.copytree(recorded, tmp_path / "house_prices")
    return tmp_path / "house_prices" / "mltest.yaml"


def test_a_rerun_passes_with_differences_of_exactly_zero(project):
    result = gate(project)
    assert result.status is Status.PASS, result.summary
    for c in result.metrics["cells"]:
        for against in ("previous", "pinned"):
            comp = c[against]
            assert comp["paired"] and comp["delta"] == comp["low"] == comp["high"] == 0.0
    assert {c["slice"] for c in result.metrics["cells"]} == {
        "all", "district=A", "district=B", "district=C"
    }


def test_a_harmless_change_passes(project):
    model = project.parent / "model.py"
    model.write_text(model.read_text().replace("self.net", "self.layers"))  # a refactor
    result = gate(project)
    assert result.status is Status.PASS, result.summary
    assert all(c["previous"]["delta"] == 0.0 for c in result.metrics["cells"])


def test_a_bug_that_hurts_one_district_fails_on_that_district(project):
    shift_district_c(project, 0.4)
    result = gate(project)
    assert result.status is Status.FAIL
    assert result.summary.startswith("mae on val / district=C")
    c = cell(result, "val", "district=C", "mae")
    assert c["previous"]["outcome"] == "fail" and c["previous"]["high"] > 0  # MAE went up
    assert cell(result, "val", "district=A", "mae")["previous"]["outcome"] != "fail"
    assert result.metrics["cells"][0]["slice"] == "district=C"  # failures lead the table
    assert "baseline update" not in result.hint  # a quality drop is never offered as a baseline
    hard = result.metrics["hard_examples"]
    assert hard and all(set(ex) >= {"dataset", "index", "slices", "loss"} for ex in hard)


def test_the_pinned_reference_catches_a_slow_ratchet_that_each_pr_hides(tmp_path):
    config = edited_example("house_prices", tmp_path, (), CHEAP)
    gate(config, update=True, pin=True)
    pinned = pinned_files(config)
    outcomes = []
    for shift in (0.05, 0.1, 0.125, 0.15):
        shift_district_c(config, shift)  # the next pull request
        result = gate(config)
        c = cell(result, "val", "district=C", "mae")
        outcomes.append((c["previous"]["outcome"], c["pinned"]["outcome"]))
        if result.status is Status.PASS:  # merged: its result becomes the previous one
            recorded = gate(config, update=True)
            assert recorded.status is Status.PASS, recorded.summary
            assert pinned_files(config) == pinned  # an update never moves the reference
    # Against the previous result every step is within the allowance (10%); against the
    # pinned reference (15%) the fourth is not.
    assert [prev for prev, _ in outcomes] == ["pass"] * 4
    assert [pin for _, pin in outcomes] == ["pass", "pass", "pass", "fail"]
    assert result.status is Status.FAIL and "pinned reference" in result.summary

    repinned = gate(config, update=True, pin=True)  # a maintainer accepts it, on purpose
    assert repinned.status is Status.PASS and "pinned" in repinned.summary
    assert pinned_files(config) != pinned
    assert gate(config).status is Status.PASS


def test_a_checkpoint_the_workflow_provides_is_the_candidate(project):
    import pytorch_lightning as pl

    from tests.suites import forget_project_modules

    forget_project_modules(project.parent)
    import sys

    sys.path.insert(0, str(project.parent))
    try:
        from data import HouseDataModule
        from model import PriceMLP
    finally:
        sys.path.remove(str(project.parent))
    from mltest.seeding import isolated_global_state

    with isolated_global_state():  # a training job of the workflow, before the gate runs
        torch.manual_seed(3)
        model, data = PriceMLP(), HouseDataModule()
        trainer = pl.Trainer(max_epochs=15, logger=False, enable_checkpointing=False,
                             enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
        trainer.fit(model, datamodule=data)
        trainer.save_checkpoint(project.parent / "nightly.ckpt")
    text = project.read_text().replace("candidate: {source: train, epochs: 15, seed: 0}",
                                       "candidate: {source: checkpoint, checkpoint: nightly.ckpt}")
    project.write_text(text)
    result = gate(project, update=True, pin=True)  # another model: pinned on purpose
    assert result.status is Status.PASS, result.summary
    assert result.metrics["candidate"] == "checkpoint nightly.ckpt"
    rerun = gate(project)
    assert rerun.status is Status.PASS and rerun.metrics["cells"][0]["previous"]["delta"] == 0
