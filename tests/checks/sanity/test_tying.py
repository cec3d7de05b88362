"""Weight tying recorded in the sanity baseline: a small real LM whose head is tied to its token
embedding. A pull request that removes the tying fails, naming both parameters and the line to
restore; a model that never tied, and a tied model whose head is renamed, pass; tying added is
a notice; a baseline recorded before tying was recorded is not compared."""

from __future__ import annotations

import shutil

import pytest

from mltest.checks.sanity.obs import ParamObs, StepObs, TyingObs
from mltest.checks.sanity.probes import tying
from mltest.report import Status
from mltest.supervisor import run_suite
from tests.checks.sanity.models import LM_DATA, TINY_LM
from tests.checks.wording import assert_protects_baseline
from tests.suites import write_suite

HEAD = "        self.head = nn.Linear(dim, vocab)\n"
TIE = "        self.head.weight = self.tok.weight  # weight tying\n"
# nanoGPT's small embedding init: tied to the head, the logits at init stay near 0
SMALL = "        nn.init.normal_(self.tok.weight, std=0.02)\n"
UNTIED = TINY_LM.replace(HEAD, HEAD + SMALL)
TIED = UNTIED.replace(SMALL, SMALL + TIE)
UNTIE = [(TIE, "")]
RENAME_HEAD = [("self.head", "self.out")]


def _record(root, model):
    config = write_suite(
        root / "base", model_src=model, data_src=LM_DATA, model="model:TinyLM",
        data="data:TokenData", checks={"sanity": {}},
    )  # fmt: skip
    report = run_suite(config, root / "rec", update_baselines=True, only=["sanity"])
    (result,) = [c for c in report.checks if c.name == "sanity"]
    assert result.status is Status.PASS, result.summary
    return config.parent


@pytest.fixture(scope="module")
def tied(tmp_path_factory):
    return _record(tmp_path_factory.mktemp("tied"), TIED)


@pytest.fixture(scope="module")
def untied(tmp_path_factory):
    return _record(tmp_path_factory.mktemp("untied"), UNTIED)


def _run(recorded, tmp_path, edits=()):
    project = tmp_path / "edited"
    shutil.copytree(recorded, project, ignore=shutil.ignore_patterns("__pycache__"))
    text = (project / "model.py").read_text()
    for old, new in edits:
        assert old in text, f"edit target {old!r} not in model.py"
        text = text.replace(old, new)
    (project / "model.py").write_text(text)
    report = run_suite(project / "mltest.yaml", tmp_path / "report", only=["sanity"])
    assert not report.errors, report.errors
    return next(c for c in report.checks if c.name == "sanity"), text


def test_removing_the_tying_fails_naming_both_parameters_and_the_init(tied, tmp_path):
    result, text = _run(tied, tmp_path, UNTIE)
    assert result.status is Status.FAIL
    assert (
        "`tok.weight` and `head.weight` were one tensor in the baseline; now two (weight tying "
        "removed?)" in result.summary
    )
    init_line = text.splitlines().index("class TinyLM(pl.LightningModule):") + 2
    assert f"TinyLM.__init__ at model.py:{init_line}" in result.hint
    assert "`self.head.weight = self.tok.weight`" in result.hint
    assert_protects_baseline(result.hint)
    (case,) = [c for c in result.cases if c.name == "shared parameters"]
    assert case.status is Status.FAIL  # listed although the model shares nothing now


def test_the_tied_model_passes_and_a_renamed_tied_head_passes(tied, tmp_path):
    same, _ = _run(tied, tmp_path / "same")
    assert same.status is Status.PASS, same.summary
    assert not [n for n in same.notices if "one tensor" in n]
    assert [c.status for c in same.cases if c.name == "shared parameters"] == [Status.PASS]
    renamed, _ = _run(tied, tmp_path / "renamed", RENAME_HEAD)
    assert renamed.status is Status.PASS, renamed.summary
    assert not [n for n in renamed.notices if "one tensor" in n]


def test_a_model_that_never_tied_passes_and_tying_it_is_a_notice(untied, tmp_path):
    same, _ = _run(untied, tmp_path / "same")
    assert same.status is Status.PASS, same.summary
    assert not [n for n in same.notices if "one tensor" in n]
    assert "shared parameters" not in [c.name for c in same.cases]  # nothing to list
    added, _ = _run(untied, tmp_path / "added", [(SMALL, SMALL + TIE)])
    assert added.status is Status.PASS, added.summary
    (notice,) = [n for n in added.notices if "one tensor" in n]
    assert "`tok.weight` and `head.weight` are one tensor now and were not" in notice


def _obs(shared, names, inits=None):
    obs = StepObs(seed=0, tying=TyingObs(shared, inits or {}))
    obs.params = [ParamObs(n, (2,), True, True, "ok", 1.0, 0.1) for n in names]
    return obs


def test_compare_without_running():
    pair = ["transformer.wte.weight", "transformer.lm_head.weight"]
    entry = {"parameters": [], "shared": [pair]}
    # an old baseline, recorded before tying was: not compared
    assert tying.judge(_obs([], pair), {"parameters": []}, "cmd") == ([], [])
    (finding,), _ = tying.judge(_obs([], pair, {"transformer": "T.__init__ at m.py:3"}), entry, "c")
    assert "now two" in finding.message and finding.cause == "weight tying removed"
    assert "(T.__init__ at m.py:3)" in finding.hint
    assert "`self.lm_head.weight = self.wte.weight`" in finding.hint
    # the head renamed away and no longer tied
    renamed = ["transformer.wte.weight", "transformer.out.weight"]
    (finding,), _ = tying.judge(_obs([], renamed), entry, "c")
    assert "`transformer.wte.weight` shares it with no other parameter" in finding.message
    assert "`transformer.lm_head.weight` no longer exists" in finding.message
    # the head renamed and still tied
    assert tying.judge(_obs([renamed], renamed[:1]), entry, "c") == ([], [])
