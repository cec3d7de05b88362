"""Reports a PR author reads at a glance: each fix renders the PR comment and asserts on it
(GitHub's own Markdown parser, cmarkgfm, for what renders as a table)."""

from __future__ import annotations

import cmarkgfm
import numpy as np
import torch

from mltest.checks.key_examples.report import summarize
from mltest.checks.regression import report as regression_report
from mltest.checks.regression.compare import compare_outputs
from mltest.checks.sanity.findings import _stuck_buffers
from mltest.checks.sanity.obs import BufferObs, StepObs
from mltest.render.markdown import render_markdown
from mltest.report import CheckResult, Report, Status


def _comment(*checks: CheckResult) -> str:
    return render_markdown(Report(suite="demo", checks=list(checks)))


def _html(markdown: str) -> str:
    return cmarkgfm.github_flavored_markdown_to_html(markdown)


def _label_map_shift():
    rng = np.random.default_rng(0)
    scores = rng.random((64, 10)).astype(np.float32)
    golden = {"scores": scores, "label": scores.argmax(1)}
    shifted = np.roll(scores, 1, axis=1)
    return golden, {"scores": shifted, "label": shifted.argmax(1)}


def test_a_shifted_label_map_leads_with_every_label_flipped():
    golden, got = _label_map_shift()
    comparison = compare_outputs(golden, got)
    status, summary, _, _ = regression_report.decide(
        comparison, inputs_changed=False, env_now={"key": "cpu"}, env_golden={},
        update_command="mltest baseline update",
    )
    comment = _comment(CheckResult("regression", "regression", status, summary))
    assert "64 predicted label(s) of 64 examples flipped (100%)" in comment
    # The overall share of values, diluted by unmoved ones, no longer stands alone.
    assert summary.index("100%") < summary.index("output values")


def test_an_exact_output_that_moved_entirely_is_named_first():
    golden = {"label": np.arange(8), "score": np.zeros((8, 1), np.float32)}
    got = {"label": np.arange(8) + 1, "score": np.zeros((8, 1), np.float32)}
    summary = regression_report.moved_sentence(compare_outputs(golden, got))
    assert summary.startswith("`label`: 8 of 8 labels (100%) changed")


def test_a_table_after_the_list_of_layout_problems_renders_as_a_table():
    golden, got = _label_map_shift()
    got["extra"] = np.zeros(64, np.float32)  # a layout problem, listed above the table
    comparison = compare_outputs(golden, got)
    details = regression_report.details_markdown("64 examples", comparison, "golden", "got")
    html = _html(_comment(CheckResult("regression", "regression", Status.FAIL, "x",
                                      details=details)))
    assert "<li><code>extra</code>: produced now but not in the golden file</li>" in html
    assert html.count("<table>") >= 2  # the per-output table and the worst values


def test_layers_stuck_in_eval_are_one_sentence_not_one_per_layer():
    obs = StepObs(seed=0, model_name="Net")
    for i in range(9):
        for buf in ("running_mean", "running_var"):
            obs.buffers.append(BufferObs(f"block{i}.bn.{buf}", f"block{i}.bn", False, "eval"))
    (finding,) = _stuck_buffers(obs)
    comment = _comment(CheckResult("sanity", "sanity", Status.FAIL, finding.message))
    # once in the line at the top, once in the table: never once per layer
    assert comment.count("ran in eval mode during the training step") == 2
    assert "9 layers (`block0.bn`, `block1.bn`" in comment
    assert "(running_mean, running_var unchanged)" in comment


def test_tensor_inputs_show_their_values_or_statistics():
    torch.manual_seed(0)
    image = torch.rand(3, 32, 32)
    text = summarize(image)
    assert text.startswith("3×32×32 float32, mean 0.498, std 0.287, range [")
    assert summarize(torch.tensor([1.5, 2.0])) == "[1.5, 2] (float32)"
    assert "<Tensor" not in _comment(CheckResult("key_examples", "key_examples", Status.FAIL,
                                                 f"failing: {text}"))
