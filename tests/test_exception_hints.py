"""Known model exceptions get a hint that names the cause, not torch's advice: a real GAN in
manual optimization whose generated points reach the discriminator's loss without `.detach()`
raises "Trying to backward through the graph a second time" at the generator's backward; the
check's error says to detach, not to retain the graph, and gives the lines. In automatic
optimization the same error comes from an output kept across steps with its graph."""

from __future__ import annotations

from mltest.exception_hints import hint_for
from mltest.report import Status
from mltest.supervisor import run_suite
from tests.checks.sanity.test_gan import DATA, OWN
from tests.checks.sanity.test_sanity import DATA as CLASSES
from tests.suites import write_suite

NO_DETACH = OWN.replace("self.discriminator(fake.detach())", "self.discriminator(fake)")

KEPT = """
import pytorch_lightning as pl
import torch
from torch import nn
from torch.nn import functional as F


class Model(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Linear(6, 3)
        self.memory = None

    def training_step(self, batch, batch_idx):
        x, y = batch
        out = self.net(x)
        if self.memory is not None and len(self.memory) == len(out):
            out = out + self.memory
        self.memory = out  # kept with its graph: step 2's backward runs through step 1's
        return F.cross_entropy(out, y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)
"""


def _lines(text: str, *needles: str) -> list[int]:
    lines = text.splitlines()
    return [next(i + 1 for i, line in enumerate(lines) if needle in line) for needle in needles]


def test_a_missing_detach_gets_the_detach_hint_with_its_lines(tmp_path):
    assert NO_DETACH != OWN
    config = write_suite(
        tmp_path / "gan", model_src=NO_DETACH, data_src=DATA, model="model:GAN",
        checks={"sanity": {}},
    )  # fmt: skip
    report = run_suite(config, tmp_path / "report", only=["sanity"])
    (result,) = [c for c in report.checks if c.name == "sanity"]
    assert result.status is Status.ERROR
    assert "Trying to backward through the graph a second time" in result.summary
    backward, loss = _lines((tmp_path / "gan" / "model.py").read_text(),
                            "self.manual_backward(g_loss)", "g_loss = bce(")  # fmt: skip
    assert f"the failing backward is at model.py:{backward}" in result.hint
    assert f"its loss is computed at model.py:{loss}" in result.hint
    assert "(`fake.detach()`), do NOT add retain_graph=True" in result.hint


def test_the_correct_gan_and_other_errors_get_no_detach_hint(tmp_path):
    config = write_suite(
        tmp_path / "gan", model_src=OWN, data_src=DATA, model="model:GAN", checks={"sanity": {}},
    )  # fmt: skip
    report = run_suite(config, tmp_path / "report", only=["sanity"])
    (result,) = [c for c in report.checks if c.name == "sanity"]
    assert result.status is not Status.ERROR, result.summary
    assert hint_for(RuntimeError("mat1 and mat2 shapes cannot be multiplied")) == ""


def test_an_output_kept_across_automatic_steps_gets_the_kept_tensor_hint(tmp_path):
    config = write_suite(tmp_path / "kept", model_src=KEPT, data_src=CLASSES, checks={"sanity": {}})
    report = run_suite(config, tmp_path / "report", only=["sanity"])
    (result,) = [c for c in report.checks if c.name == "sanity"]
    assert result.status is Status.ERROR, result.summary
    # Lightning called backward, no model frame is on the stack: still the model's error
    assert result.summary.startswith("sanity: the model code raised RuntimeError: Trying to ")
    assert "A tensor kept from an earlier step" in result.hint
    assert "do NOT add retain_graph=True" in result.hint
    fixed = KEPT.replace("self.memory = out  #", "self.memory = out.detach()  #")
    config = write_suite(tmp_path / "fixed", model_src=fixed, data_src=CLASSES,
                         checks={"sanity": {}})  # fmt: skip
    report = run_suite(config, tmp_path / "fixed-report", only=["sanity"])
    (result,) = [c for c in report.checks if c.name == "sanity"]
    assert result.status is not Status.ERROR, result.summary
