"""The sanity check's probes on a real GRU sequence classifier: each forum bug of issue 13 is
caught and named, and harmless changes stay quiet.

The check runs in-process (as the benchmark runs it) rather than through the supervisor: the
worker adds seconds of start-up per run and nothing the probes depend on. The baseline is
recorded once from the unedited model; each variant is an edit of model.py in a fresh copy.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mltest.baselines import BaselineStore
from mltest.checks import sanity
from mltest.checks.base import CheckContext, Deadline
from mltest.config import load_config
from mltest.project import Project
from mltest.report import Status
from tests.checks.sanity.models import PADDING, SEQ_DATA, SEQ_MODEL
from tests.suites import write_suite

SETTINGS = {"padding": PADDING, "batch_independence": True}


def run_check(config: Path, update: bool = False):
    """The sanity check on a config, in this process."""
    loaded = load_config(config)
    ctx = CheckContext(
        name="sanity",
        loaded=loaded,
        project=Project(loaded),
        baselines=BaselineStore(loaded.baseline_dir),
        update_baselines=update,
        deadline=Deadline("sanity", 600),
    )
    return sanity.run(ctx, loaded.checks["sanity"])


def project(directory: Path, model: str = SEQ_MODEL, settings=None, **top) -> Path:
    return write_suite(
        directory,
        model_src=model,
        data_src=SEQ_DATA,
        model="model:SeqModel",
        data="data:SeqData",
        checks={"sanity": SETTINGS if settings is None else settings},
        **top,
    )


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Path:
    """The unedited project with its baseline recorded."""
    config = project(tmp_path_factory.mktemp("base"))
    result = run_check(config, update=True)
    assert result.status is Status.PASS, result.summary
    return config


def edited(recorded: Path, tmp_path: Path, edits) -> Path:
    """A copy of the recorded project with model.py edited as a pull request would."""
    target = tmp_path / "pr"
    shutil.copytree(recorded.parent, target, ignore=shutil.ignore_patterns("__pycache__"))
    text = (target / "model.py").read_text()
    for old, new in edits:
        assert old in text, f"edit target {old!r} not in model.py"
        text = text.replace(old, new)
    (target / "model.py").write_text(text)
    return target / "mltest.yaml"


def failed(result) -> set[str]:
    return {c.name for c in result.cases if c.status is Status.FAIL}


# --- quiet: the healthy model and harmless changes --------------------------------------------


def test_the_healthy_sequence_model_passes_every_probe(recorded):
    result = run_check(recorded)
    assert result.status is Status.PASS, result.summary
    assert "the first of 3 steps trained 14 of 14 parameters" in result.summary
    m = result.metrics
    assert m["classes"] == 4 and len(m["losses"]) == 3
    assert max(m["gradient_check_errors"]) < 1e-6  # float64: autograd and slope agree
    assert m["padding_moved"] < 1e-5
    # normal ReLU sparsity: a quarter of the head's units silent on this batch, no alarm
    assert 0.0 < m["units"]["head.1"]["share"] < 0.5
    assert not result.notices, result.notices


HARMLESS = {
    "gradient accumulation configured in the Trainer": ([], {"accumulate_grad_batches": 2}),
    "a per-step cosine schedule": (
        [
            (
                "StepLR(opt, step_size=10, gamma=0.5)",
                "CosineAnnealingLR(opt, T_max=100)",
            ),
            ('"interval": "epoch"', '"interval": "step"'),
        ],
        {},
    ),
    "a prior-bias init that starts below ln C": (
        [
            (
                "nn.Linear(dim, classes)\n        )",
                "nn.Linear(dim, classes)\n        )\n"
                "        with torch.no_grad():\n"
                "            self.head[3].weight.mul_(0.01)\n"
                "            self.head[3].bias.copy_(torch.tensor([0.9, -0.5, -0.5, -0.5]))",
            )
        ],
        {},
    ),
    "a wider hidden layer (different sparsity, same shape of things)": (
        [("nn.Linear(dim, dim), nn.ReLU()", "nn.Linear(dim, dim, bias=True), nn.ReLU()")],
        {},
    ),
}


@pytest.mark.parametrize("change", list(HARMLESS))
def test_harmless_changes_stay_quiet(recorded, tmp_path, change):
    edits, trainer = HARMLESS[change]
    config = edited(recorded, tmp_path, edits)
    if trainer:
        text = config.read_text().replace(
            "accelerator: cpu",
            "accelerator: cpu\n  " + "\n  ".join(f"{k}: {v}" for k, v in trainer.items()),
        )
        config.write_text(text)
    result = run_check(config)
    assert result.status is Status.PASS, result.summary


@pytest.mark.parametrize("cast", [".float()", ".to(torch.float32)", ".to(dtype=torch.float)"])
def test_a_step_that_casts_to_float32_still_gets_the_gradient_check(recorded, tmp_path, cast):
    """Steps written for mixed precision cast to float32; the check runs them in float64."""
    config = edited(recorded, tmp_path, [("h = self.embed(ids)", f"h = self.embed(ids){cast}")])
    result = run_check(config)
    assert result.status is Status.PASS, result.summary
    assert not result.notices, result.notices
    assert max(result.metrics["gradient_check_errors"]) < 1e-6


def test_a_float32_logit_cast_does_not_read_as_a_wrong_gradient(recorded, tmp_path):
    """A float32 loss would round the finite differences to noise (a false finding)."""
    edits = [("loss = F.cross_entropy(logits, y)", "loss = F.cross_entropy(logits.float(), y)")]
    result = run_check(edited(recorded, tmp_path, edits))
    assert result.status is Status.PASS, result.summary
    assert max(result.metrics["gradient_check_errors"]) < 1e-6


def test_a_wrong_gradient_is_caught_through_a_float32_cast(recorded, tmp_path):
    edits = [
        ("h = self.embed(ids)", "h = self.embed(ids).float()"),
        *BUGS["activation applied in place through .data"][0],
    ]
    result = run_check(edited(recorded, tmp_path, edits))
    assert "gradient matches finite differences" in failed(result), result.summary


def test_a_model_that_cannot_run_in_float64_skips_the_gradient_check_with_a_notice(
    recorded, tmp_path
):
    edits = [("h = self.embed(ids)", "h = self.embed(ids) @ torch.eye(16, dtype=torch.float32)")]
    config = edited(recorded, tmp_path, edits)
    result = run_check(config)
    assert result.status is Status.PASS, result.summary
    assert any(
        n.startswith("gradient check skipped: training_step in float64") for n in result.notices
    ), result.notices
    assert "gradient matches finite differences" not in {c.name for c in result.cases}


# --- red: each bug named, with what it points at ---------------------------------------------

BUGS = {
    "zero_grad never actually called": (
        [
            (
                "    def configure_optimizers(self):",
                "    def optimizer_zero_grad(self, epoch, batch_idx, optimizer):\n"
                "        optimizer.zero_grad  # forgot the parentheses\n\n"
                "    def configure_optimizers(self):",
            )
        ],
        "gradients are cleared between steps",
        ["gradients accumulate across steps", "embed.weight", "gradient norm over 3 steps"],
    ),
    "an optimizer that skips steps": (
        [
            (
                "    def configure_optimizers(self):",
                "    def optimizer_step(self, epoch, batch_idx, optimizer, optimizer_closure):\n"
                "        if batch_idx == 0:\n"
                "            optimizer.step(closure=optimizer_closure)\n"
                "        else:\n"
                "            optimizer_closure()\n\n"
                "    def configure_optimizers(self):",
            )
        ],
        "optimizer steps every step",
        ["the optimizer skipped step(s) 2, 3 of 3"],
    ),
    "a per-epoch scheduler stepped every batch": (
        [
            ("step_size=10, gamma=0.5", "step_size=1, gamma=0.3"),
            ('"interval": "epoch"', '"interval": "step"'),
        ],
        "scheduler steps once per step",
        ["learning rate of param group 0 fell from 0.01 to 0.0009"],
    ),
    "a scheduler stepped twice per step": (
        [
            ('"interval": "epoch"', '"interval": "step"'),
            ("        return loss\n", "        self.lr_schedulers().step()\n        return loss\n"),
        ],
        "scheduler steps once per step",
        ["scheduler StepLR stepped 2 times in one optimizer step"],
    ),
    "activation applied in place through .data": (
        [
            (
                "h = self.act(h).transpose(1, 2)",
                "h.data = torch.tanh(h.data)\n        h = h.transpose(1, 2)",
            )
        ],
        "gradient matches finite differences",
        ["the gradient is wrong", "conv.weight", "between `conv` (Conv1d) and `gru` (GRU)"],
    ),
    "MSE on softmax against one-hot targets": (
        [
            (
                "loss = F.cross_entropy(logits, y)",
                "loss = F.mse_loss(torch.softmax(logits, 1), F.one_hot(y, 4).float())",
            )
        ],
        "loss at init",
        ["the loss at init is 0.1", "below the baseline's 1.46", "ln 4 = 1.39"],
    ),
    "padding not masked in pooling": (
        [('scores = scores.masked_fill(~mask, float("-inf"))', "")],
        "padding invariance",
        ["adding 5 padding positions (value 0) moves the outputs by up to"],
    ),
    "Embedding padding_idx set to the wrong token": (
        [("padding_idx=0", "padding_idx=1")],
        "padding embedding row",
        ["the padding embedding row trains: `embed.weight[0]`", "its padding_idx is 1"],
    ),
    "a missing ReLU between two Linear layers": (
        [
            (
                "nn.Linear(dim, dim), nn.ReLU(), nn.Dropout(0.2)",
                "nn.Linear(dim, dim), nn.Dropout(0.2)",
            )
        ],
        "dead and saturated units",
        ["no longer run: head.1 (ReLU)", "one linear map"],
    ),
    "ReLU units killed by a negative bias init": (
        [
            (
                "nn.Linear(dim, classes)\n        )",
                "nn.Linear(dim, classes)\n        )\n"
                "        torch.nn.init.constant_(self.head[0].bias, -20.0)",
            )
        ],
        "dead and saturated units",
        ["`head.1` (ReLU): 100% of 16 units dead (baseline 25%)"],
    ),
    "tanh saturated by a too large conv init": (
        [("self.act = nn.Tanh()", "self.act = nn.Tanh()\n        self.conv.weight.data.mul_(200)")],
        "dead and saturated units",
        ["`act` (Tanh):", "values saturated (baseline 0%)"],
    ),
    "dropout left on at predict time": (
        [
            (
                "return self.head(self.norm(pooled))",
                "return self.head(F.dropout(self.norm(pooled), 0.3, training=True))",
            )
        ],
        "batch independence",
        ["non-deterministic prediction: two forward passes of the same batch in eval mode"],
    ),
}


@pytest.mark.parametrize("bug", list(BUGS))
def test_each_bug_is_caught_and_named(recorded, tmp_path, bug):
    edits, aspect, words = BUGS[bug]
    result = run_check(edited(recorded, tmp_path, edits))
    assert result.status is Status.FAIL, result.summary
    assert aspect in failed(result), (failed(result), result.summary)
    text = result.summary + "\n" + result.details
    for word in words:
        assert word in text, (word, text[:1500])
    assert result.hint
    assert result.metrics["causes"], "every probe finding names its likely cause"


def test_the_padding_row_explains_moving_outputs_once(recorded, tmp_path):
    result = run_check(
        edited(recorded, tmp_path, BUGS["Embedding padding_idx set to the wrong token"][0])
    )
    assert result.summary.startswith("the padding embedding row trains")
    assert result.metrics["causes"] == ["padding not ignored"]
