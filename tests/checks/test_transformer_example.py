"""The transformers example (tiny BERT, offline tokenizer, dynamic padding, warmup from lr 0):
its recorded baselines pass, a harmless change of batching passes, and real bugs fail."""

from __future__ import annotations

import os

import pytest

pytest.importorskip("transformers")

from mltest.report import Status  # noqa: E402
from mltest.supervisor import run_suite  # noqa: E402
from tests.suites import copy_example  # noqa: E402

pytestmark = pytest.mark.slow
# Nothing here may reach the hub: the worker gets the switch by name, as a team would pass it
# (`--env HF_HUB_OFFLINE`); only this run's environment has it, not the other tests' runs.
OFFLINE = {**os.environ, "HF_HUB_OFFLINE": "1"}


def _run(config, tmp_path, *checks):
    report = run_suite(config, tmp_path / "report", only=list(checks), environ=OFFLINE,
                       pass_env=["HF_HUB_OFFLINE"])  # fmt: skip
    assert not report.errors, report.errors
    return {c.name: c for c in report.checks if c.status is not Status.SKIPPED}


def _edit(path, old, new):
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new))


def test_warmup_from_lr_0_is_judged_at_its_first_moving_step(tmp_path):
    config = copy_example("transformer_classifier", tmp_path)
    sanity = _run(config, tmp_path, "sanity")["sanity"]
    assert sanity.status is Status.PASS, sanity.summary
    assert "step 2 of" in sanity.summary
    assert any("judged step 2" in n and "warm-up from 0" in n for n in sanity.notices)


def test_another_batch_size_with_dynamic_padding_still_matches(tmp_path):
    config = copy_example("transformer_classifier", tmp_path)
    _edit(config, "    batch_size: 16", "    batch_size: 7")
    _edit(config, "    labels: [neg, pos]", "    labels: [neg, pos]\n    batch_size: 3")
    results = _run(config, tmp_path, "regression", "key_examples")
    assert results["regression"].status is Status.PASS, results["regression"].summary
    assert results["key_examples"].status is Status.PASS, results["key_examples"].summary


def test_a_dropped_attention_mask_fails_regression(tmp_path):
    config = copy_example("transformer_classifier", tmp_path)
    _edit(config.parent / "model.py", 'attention_mask=batch["attention_mask"]', "")
    result = _run(config, tmp_path, "regression")["regression"]
    assert result.status is Status.FAIL
    assert "on unchanged inputs" in result.summary, result.summary


def test_an_optimizer_over_the_head_only_fails_sanity_naming_the_encoder(tmp_path):
    config = copy_example("transformer_classifier", tmp_path)
    _edit(config.parent / "model.py", "AdamW(self.parameters()",
          "AdamW(self.bert.classifier.parameters()")
    result = _run(config, tmp_path, "sanity")["sanity"]
    assert result.status is Status.FAIL
    assert "bert.bert.embeddings.word_embeddings.weight" in result.summary
    assert "in no optimizer" in result.summary
