"""The bundled classifier's gate (`examples/tabular/mltest-evaluation.yaml`: the val loader and
a held-out table, sliced by a function and a column) through the real command line: its
committed record passes a rerun; a label bug confined to one slice fails there, is never
recorded, and cannot be pinned; the report's chart and hardest examples reach the comment and
`mltest hard-examples`; `--pin` re-pins on purpose."""

from __future__ import annotations

import json

import pytest

from mltest.checks.key_examples.table import load_examples
from mltest.render.markdown import render_markdown
from mltest.report import Report
from tests.suites import copy_example
from tests.test_cli import mltest

pytestmark = pytest.mark.slow

LABEL_BUG = (  # training rows with a large first feature get the next class's label
    "        split = int(self.rows * 0.8)\n",
    "        split = int(self.rows * 0.8)\n"
    "        wrong = features[:split, 0] > 1\n"
    "        labels[:split][wrong] = (labels[:split][wrong] + 1) % CLASSES\n",
)


def run(config, report_dir, *extra):
    out = mltest(*extra, "--config", str(config), "--report-dir", str(report_dir),
                 cwd=config.parent)  # fmt: skip
    return out, Report.read_json(report_dir / "report.json")


def test_the_classifier_gate_end_to_end(tmp_path):
    config = copy_example("tabular", tmp_path).parent / "mltest-evaluation.yaml"
    pinned = config.parent / ".mltest-evaluation" / "evaluation" / "pinned"
    before = {p.name: p.read_bytes() for p in pinned.iterdir()}

    out, report = run(config, tmp_path / "rerun", "run")
    assert out.returncode == 0, out.stdout + out.stderr
    (gate,) = [c for c in report.checks if c.name == "evaluation"]
    assert all(c["previous"]["delta"] == 0.0 for c in gate.metrics["cells"])
    body = render_markdown(report)
    assert "accuracy per slice of val: this run, previous and pinned" in body
    assert "| | data set / slice | n | metric |" in body

    proposed = tmp_path / "hard.jsonl"
    out = mltest("hard-examples", "--report", str(tmp_path / "rerun"), "--out", str(proposed),
                 "--dataset", "holdout")  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "proposed key example(s)" in out.stdout
    rows = [json.loads(line) for line in proposed.read_text().splitlines()]
    assert rows and all(r["kind"] == "mft" and "hard" in r["tags"] for r in rows)
    assert all(isinstance(r["input"], dict) and "x0" in r["input"] for r in rows)
    examples = load_examples(proposed.name, root=proposed.parent, project=None, key="k")
    assert [e.id for e in examples] == [r["id"] for r in rows]  # key_examples reads them

    data = config.parent / "data.py"
    data.write_text(data.read_text().replace(*LABEL_BUG))
    out, report = run(config, tmp_path / "bug", "run")
    assert out.returncode == 1
    (gate,) = [c for c in report.checks if c.name == "evaluation"]
    assert gate.summary.startswith("accuracy on val / x0>2") or gate.summary.startswith(
        "accuracy on holdout / x0>2"
    ), gate.summary
    failing = {(c["dataset"], c["slice"]) for c in gate.metrics["cells"]
               if c["outcome"] == "fail"}  # fmt: skip
    assert ("holdout", "x0>2") in failing and ("holdout", "x0<-2") not in failing
    assert "baseline update" not in gate.hint

    out, report = run(config, tmp_path / "pin", "baseline", "update", "--check", "evaluation",
                      "--pin")  # fmt: skip
    assert out.returncode == 1 and "not pinned" in out.stdout  # below its floors: not recorded
    assert {p.name: p.read_bytes() for p in pinned.iterdir()} == before

    data.write_text(data.read_text().replace(LABEL_BUG[1], LABEL_BUG[0]))
    model = config.parent / "model.py"
    model.write_text(model.read_text().replace("hidden: int = 32", "hidden: int = 48"))
    out, report = run(config, tmp_path / "repin", "baseline", "update", "--check",
                      "evaluation", "--pin")  # fmt: skip
    assert out.returncode == 0 and "reference is pinned to this result" in out.stdout
    assert {p.name: p.read_bytes() for p in pinned.iterdir()} != before
