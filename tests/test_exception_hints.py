"""Known model exceptions get a hint that names the cause, not torch's advice: a real GAN in
manual optimization whose generated points reach the discriminator's loss without `.detach()`
raises "Trying to backward through the graph a second time" at the generator's backward; the
check's error says to detach, not to retain the graph, and gives the lines."""

from __future__ import annotations

from mltest.exception_hints import hint_for
from mltest.report import Status
from mltest.supervisor import run_suite
from tests.checks.sanity.test_gan import DATA, OWN
from tests.suites import write_suite

NO_DETACH = OWN.replace("self.discriminator(fake.detach())", "self.discriminator(fake)")


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
