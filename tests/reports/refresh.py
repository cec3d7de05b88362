"""Rewrite the advice in `tabular-failing.json` with today's wording, from today's code.

The report is a stored run of the tabular example on a branch that lowered the learning rate:
its numbers (epochs, moved values, flipped labels, the failing key example) feed the render,
chart and order tests and stay as they are. Its sentences are regenerated: each failing
check's summary and hint come from the same decision functions a run calls, given the
report's own figures. The regression golden of that run predates module fingerprints, so
its moved outputs are not localised, and the notice says so.

    python -m tests.reports.refresh
    MLTEST_REGENERATE=1 python -m pytest -n 0 tests/test_render.py   # the golden comment
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mltest.checks.key_examples.settings import Settings as KeySettings
from mltest.checks.key_examples.verdict import TagStat
from mltest.checks.key_examples.verdict import decide as key_decide
from mltest.checks.memorization import Settings
from mltest.checks.memorization.decide import decide as memorization_decide
from mltest.checks.memorization.seed_run import SeedRun
from mltest.checks.regression import report as regression_report
from mltest.checks.regression.compare import compare_outputs
from mltest.checks.regression.fingerprints import file_for
from mltest.checks.regression.golden import record_files

REPORT = Path(__file__).with_name("tabular-failing.json")
UPDATE = "mltest baseline update --config examples/tabular/mltest.yaml"


def memorization(check: dict) -> tuple[str, str, list[str]]:
    m = check["metrics"]
    runs = [
        SeedRun(seed=s, epochs=e, initial_loss=1.1)
        for s, e in zip(m["seeds"], m["epochs"], strict=True)
    ]
    settings = Settings.model_validate(
        {"target": {"loss_below": m["target_value"]}, "batches": m["batches"],
         "max_epochs": m["max_epochs"], "tolerance": m["tolerance"]}
    )  # fmt: skip
    baseline = {"median": m["baseline_epochs"], "target": m["target"]}
    status, summary, hint, notices, _ = memorization_decide(
        runs, baseline, settings, m["environment"], [], UPDATE
    )
    assert status.value == check["status"], summary
    return summary, hint, notices


def regression(check: dict) -> tuple[str, str, list[str]]:
    """Outputs with the report's counts: every value moved, `flipped` top labels changed."""
    m = check["metrics"]
    examples, values, flipped = m["examples"], m["values"], m["flipped"]
    classes = values // examples
    golden = np.full((examples, classes), 0.1, dtype=np.float32)
    golden[:, 0] = 0.8
    got = golden * 0.8 + 0.05
    got[:flipped, 0], got[:flipped, 1] = 0.2, 0.7
    comparison = compare_outputs({"output": golden}, {"output": got})
    assert (comparison.moved, comparison.flipped) == (m["moved"], flipped)
    status, summary, hint, notices = regression_report.decide(
        comparison, inputs_changed=False, env_now=m["environment"],
        env_golden=m["golden_environment"], update_command=f"{UPDATE} --check regression",
        golden_key=m["golden_key"],
    )  # fmt: skip
    assert status.value == check["status"], summary
    fingerprints = file_for(record_files("regression", m["golden_key"])[1])
    notices.append(
        "the moved outputs are not traced to a module: this golden record has no module "
        f"fingerprints ({fingerprints}; golden outputs recorded before mltest kept them)"
    )
    return summary, hint, notices


def key_examples(check: dict) -> tuple[str, str, list[str]]:
    tags = check["metrics"]["tags"]
    stats = [TagStat(t, s["cases"], s["failures"], s["allowed"]) for t, s in tags.items()]
    _, _, hint, _ = key_decide(
        [], stats, {"passing": []}, "cpu", "cpu",
        KeySettings.model_construct(require_baseline=False), UPDATE,
    )  # fmt: skip
    return check["summary"], hint, check.get("notices", [])


REFRESH = {"memorization": memorization, "regression": regression, "key_examples": key_examples}


def refreshed(report: dict) -> dict:
    """The report with each failing check's sentences as today's code words them."""
    report = json.loads(json.dumps(report))
    for check in report["checks"]:
        if check["name"] in REFRESH and check["status"] == "fail":
            check["summary"], check["hint"], check["notices"] = REFRESH[check["name"]](check)
    return report


def main() -> None:
    report = refreshed(json.loads(REPORT.read_text(encoding="utf-8")))
    REPORT.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
