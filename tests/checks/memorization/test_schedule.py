"""Memorization counts do not depend on the epoch budget: a model whose OneCycle schedule is
built from `trainer.estimated_stepping_batches` sees the baseline's schedule length whatever
`max_epochs` says; without a recorded schedule the count would move with the budget."""

from __future__ import annotations

import mltest.checks.memorization as memorization
from bench.common import context
from mltest.report import Status
from tests.suites import copy_example, forget_project_modules

ONE_CYCLE = """        optimizer = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        cycle = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=0.02, total_steps=int(self.trainer.estimated_stepping_batches)
        )
        return [optimizer], [{"scheduler": cycle, "interval": "step"}]
"""


def _run(config, budget, update=False):
    text = config.read_text()
    start = text.index("max_epochs: ") + len("max_epochs: ")
    end = text.index("\n", start)
    config.write_text(text[:start] + str(budget) + text[end:])
    ctx, settings = context(config, "memorization")
    ctx.update_baselines = update
    return memorization.run(ctx, settings)


def test_the_count_does_not_change_with_the_budget(tmp_path):
    config = copy_example("tabular", tmp_path)
    model = config.parent / "model.py"
    model.write_text(
        model.read_text().replace(
            "        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)\n", ONE_CYCLE
        )
    )
    config.write_text(config.read_text().replace("seeds: [0, 1, 2]", "seeds: [0, 1]"))
    forget_project_modules(config.parent)
    (config.parent / ".mltest" / "baselines.json").unlink()

    # What the issue saw: the schedule follows the budget, and so does the count.
    free = {b: _run(config, b).metrics["epochs"] for b in (100, 400)}
    assert free[100] != free[400]

    recorded = _run(config, 200, update=True)
    assert recorded.status is Status.PASS, recorded.summary
    counts = {}
    for budget in (100, 200, 400):
        result = _run(config, budget)
        assert result.status is Status.PASS, result.summary
        assert result.metrics["schedule_epochs"] == 200
        counts[budget] = result.metrics["epochs"]
        if budget == 400:
            (notice,) = [n for n in result.notices if "schedule" in n]
            assert "recorded with a 200-epoch schedule" in notice
            assert "mltest baseline update --config" in notice
    assert counts[100] == counts[200] == counts[400]
