"""`mltest init`: from a partial mltest.yaml (model, data, trainer) or command-line options to a
complete, commented config; then `mltest baseline update` passes on the first try.

Real small projects, explored in a real worker process; the bundled examples (segmentation,
autoencoder, the GAN without its validation_step) go end to end in the slow tests.
"""

from __future__ import annotations

import shutil
import textwrap

import pytest
import yaml

from mltest.cli import main
from mltest.report import Status
from mltest.supervisor import run_suite
from tests.suites import copy_example

MODEL = """
    import pytorch_lightning as pl
    import torch
    from torch import nn


    class Net(pl.LightningModule):
        def __init__(self, hidden: int = 16, lr: float = 0.05):
            super().__init__()
            self.save_hyperparameters()
            self.net = nn.Sequential(nn.Linear(2, hidden), nn.ReLU(), nn.Linear(hidden, 3))

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, batch_idx):
            x, y = batch
            return nn.functional.cross_entropy(self(x), y)

        def predict_step(self, batch, batch_idx, dataloader_idx=0):
            return self(batch[0])

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
"""
DATA = """
    import pytorch_lightning as pl
    import torch
    from torch.utils.data import DataLoader, TensorDataset


    class Blobs(pl.LightningDataModule):
        def setup(self, stage=None):
            g = torch.Generator().manual_seed(0)
            y = torch.arange(48) % 3
            x = torch.randn(48, 2, generator=g) * 0.3 + torch.stack([y, -y], 1).float()
            self.train, self.val = TensorDataset(x[:32], y[:32]), TensorDataset(x[32:], y[32:])

        def train_dataloader(self):
            return DataLoader(self.train, batch_size=16, shuffle=True)

        def val_dataloader(self):
            return DataLoader(self.val, batch_size=16)
"""
PARTIAL = """\
# Our team's classifier. Keep this comment: init must not rewrite our lines.
suite: blobs
model:
  class: model:Net   # the LightningModule
  init_args: {hidden: 16}
data:
  class: data:Blobs
trainer: {accelerator: cpu, devices: 1}
"""


def _project(tmp_path, model=MODEL, partial=PARTIAL):
    (tmp_path / "model.py").write_text(textwrap.dedent(model))
    (tmp_path / "data.py").write_text(textwrap.dedent(DATA))
    config = tmp_path / "mltest.yaml"
    if partial is not None:
        config.write_text(partial)
    return config


def test_init_completes_a_partial_config_and_the_first_baseline_update_passes(tmp_path, capsys):
    config = _project(tmp_path)
    assert main(["init", "--config", str(config), "--max-epochs", "60"]) == 0
    out = capsys.readouterr().out
    assert "task: classification (3 classes; class axis -1; from cross_entropy on [16, 3])" in out
    text = config.read_text()
    assert text.startswith(PARTIAL)  # the user's lines and comments, byte for byte
    written = yaml.safe_load(text)
    assert written["task"] == {"kind": "classification", "class_axis": -1, "classes": 3}
    memorization = written["checks"]["memorization"]
    assert memorization["max_epochs"] == 60 and "loss_below" in memorization["target"]
    assert set(written["checks"]) == {"memorization", "sanity", "regression"}
    assert "# Target: loss <" in text and "every seed reaches it, by epochs" in text

    report = run_suite(config, tmp_path / "report", update_baselines=True)
    assert report.verdict.exit_code == 0, [c.summary for c in report.checks]
    again = run_suite(config, tmp_path / "report")
    assert again.verdict.exit_code == 0, [c.summary for c in again.checks]


def test_init_is_listed_in_the_help(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    # the column width follows the longest command name (hard-examples)
    assert " ".join(capsys.readouterr().out.split()).count("init complete a partial mltest.yaml")


def test_init_from_command_line_options_writes_a_new_config(tmp_path):
    config = _project(tmp_path, partial=None)
    args = ["init", "--config", str(config), "--model", "model:Net", "--data", "data:Blobs",
            "--model-args", "{hidden: 16, lr: 0.05}", "--trainer", "{accelerator: cpu}",
            "--max-epochs", "60"]  # fmt: skip
    assert main(args) == 0
    written = yaml.safe_load(config.read_text())
    assert written["model"] == {"class": "model:Net", "init_args": {"hidden": 16, "lr": 0.05}}
    assert written["trainer"] == {"accelerator": "cpu"}
    assert "memorization" in written["checks"]
    assert main(args) == 2  # the file exists now: init completes it, never overwrites it


@pytest.mark.parametrize(
    "args, partial, message",
    [
        (["--model", "model:Net"], None, "give both --model and --data"),
        ([], PARTIAL + "checks:\n  sanity: {}\n", "already has `checks`"),
        ([], PARTIAL.replace("model:Net", "model:Nett"), "has no `Nett` (did you mean `Net`?)"),
        (["--model-args", "[1, 2]", "--model", "m:M", "--data", "d:D"], None,
         "--model-args: expected a mapping"),
    ],
)  # fmt: skip
def test_init_refuses_what_it_cannot_complete(tmp_path, capsys, args, partial, message):
    config = _project(tmp_path, partial=partial)
    before = config.read_text() if partial else None
    assert main(["init", "--config", str(config), "--max-epochs", "5", *args]) == 2
    assert message in capsys.readouterr().out
    assert (config.read_text() if partial else None) == before


def test_a_model_that_cannot_memorize_leaves_memorization_out_and_says_why(tmp_path, capsys):
    blind = MODEL.replace("return self.net(x)", "return self.net(torch.zeros_like(x))")
    config = _project(tmp_path, model=blind)
    assert main(["init", "--config", str(config), "--max-epochs", "20"]) == 1
    text = config.read_text()
    assert "# memorization: {}" in text and "Left out: no loss level was reached" in text
    assert "memorization: left out" in capsys.readouterr().out


def test_a_gan_without_validation_step_gets_the_samples_judgement(tmp_path):
    config = copy_example("gan", tmp_path)
    model = config.parent / "model.py"
    source = model.read_text()
    start, end = source.index("    def validation_step"), source.index("    def predict_step")
    model.write_text(source[:start] + source[end:])
    partial = config.read_text().split("seeds:")[0]
    config.write_text(partial)
    assert main(["init", "--config", str(config), "--max-epochs", "300"]) == 0
    written = yaml.safe_load(config.read_text())
    memorization = written["checks"]["memorization"]
    assert memorization["judge"] == "samples" and memorization["hold"] == 3
    assert memorization["target"]["metric"] == "sample_gap"
    assert written["task"]["kind"] == "generative"
    assert "regression" not in written["checks"]
    report = run_suite(config, tmp_path / "report", update_baselines=True)
    assert report.verdict.exit_code == 0, [c.summary for c in report.checks]
    assert report.checks[0].status is Status.PASS


@pytest.mark.slow
@pytest.mark.parametrize("example, epochs", [("segmentation", 120), ("autoencoder", 150)])
def test_the_examples_adopt_with_one_init_and_one_baseline_update(tmp_path, example, epochs):
    config = copy_example(example, tmp_path)
    shutil.rmtree(config.parent / ".mltest")
    text = config.read_text()
    partial = text[: text.index("\n# --- ")].rstrip("\n") + "\n"
    config.write_text(partial)
    assert main(["init", "--config", str(config), "--max-epochs", str(epochs)]) == 0
    assert config.read_text().startswith(partial)
    report = run_suite(config, tmp_path / "report", update_baselines=True)
    assert report.verdict.exit_code == 0, [c.summary for c in report.checks]
    assert {c.name for c in report.checks if c.status is Status.PASS} == {
        "memorization", "sanity", "regression"
    }


@pytest.mark.gpu
@pytest.mark.parametrize("example", ["gan", "segmentation"])
def test_init_on_cuda_records_a_baseline_that_passes_on_the_first_try(tmp_path, example):
    # On CUDA the counts come from cuDNN's kernels: init explores there, and the baseline it
    # makes possible is recorded under the cuda key on the first try (the GAN's fixed latents
    # are drawn on the CPU and moved to the model's device).
    config = copy_example(example, tmp_path)
    text = config.read_text()
    if example == "gan":
        model = config.parent / "model.py"
        source = model.read_text()
        start, end = source.index("    def validation_step"), source.index("    def predict_step")
        model.write_text(source[:start] + source[end:])
        partial = text.split("seeds:")[0]
    else:
        partial = text[: text.index("\n# --- ")].rstrip("\n") + "\n"
    config.write_text(partial.replace("accelerator: cpu", "accelerator: gpu"))
    shutil.rmtree(config.parent / ".mltest", ignore_errors=True)
    assert main(["init", "--config", str(config), "--max-epochs", "150"]) == 0
    report = run_suite(config, tmp_path / "report", update_baselines=True)
    assert report.verdict.exit_code == 0, [c.summary for c in report.checks]
    memorized = next(c for c in report.checks if c.name == "memorization")
    assert memorized.metrics["environment"].startswith("cuda-")
