"""A changed starting learning rate is named with its optimizer, group, parameters and the line
that built the optimizer; the same rate written otherwise, or behind a scheduler, is not a
change; a baseline recorded before per-group rates still compares them.

On the real GAN example (two Adam optimizers, manual optimization), one seed: the generator's
rate raised 100-fold stops it memorizing, and the hint names optimizer 0's group 0.
"""

from __future__ import annotations

import json

from mltest.checks.memorization.lr_groups import fact, owner
from mltest.report import Status
from mltest.supervisor import run_suite
from tests.checks.wording import assert_protects_baseline
from tests.suites import edited_example, forget_project_modules

ONE_SEED = [("seeds: [0, 1, 2, 3, 4]", "seeds: [0]")]
BUILT = "torch.optim.Adam(self.generator.parameters(), lr=self.hparams.lr, betas=betas)"
NAMED = (
    "optimizer 0 (Adam) group 0 (generator.*) starts at lr 0.5, 100x the baseline's 0.005 "
    "— set at model.py:74 in configure_optimizers"
)


def _recorded(tmp_path):
    config = edited_example("gan", tmp_path, yaml_edits=ONE_SEED)
    recorded = run_suite(config, tmp_path / "r0", update_baselines=True, only=["memorization"])
    assert recorded.checks[0].status is Status.PASS, recorded.checks[0].summary
    return config


def _rerun(config, tmp_path, name, old, new):
    model = config.parent / "model.py"
    text = model.read_text()
    assert old in text
    model.write_text(text.replace(old, new))
    forget_project_modules(config.parent)
    return run_suite(config, tmp_path / name, only=["memorization"]).checks[0]


def test_a_raised_rate_on_one_of_two_optimizers_is_named_with_group_and_line(tmp_path):
    config = _recorded(tmp_path)
    raised = BUILT.replace("lr=self.hparams.lr,", "lr=self.hparams.lr * 100,")
    result = _rerun(config, tmp_path, "r1", BUILT, raised)
    assert result.status is Status.FAIL, result.summary
    assert NAMED in result.hint
    assert "optimizer 1" not in result.hint  # the discriminator's rate did not change
    assert [g["lr"] for g in result.metrics["lr_groups"]] == [0.5, 0.002]
    assert_protects_baseline(result.hint)

    # A baseline recorded before per-group rates (only the flat list): still compared.
    baseline_file = config.parent / ".mltest" / "baselines.json"
    data = json.loads(baseline_file.read_text())
    for entry in data["checks"]["memorization"].values():
        assert entry.pop("lr_groups")[0]["where"] == "model.py:74 in configure_optimizers"
    baseline_file.write_text(json.dumps(data))
    old = run_suite(config, tmp_path / "r2", only=["memorization"]).checks[0]
    assert old.status is Status.FAIL, old.summary
    assert NAMED in old.hint


def test_the_same_rate_written_otherwise_and_behind_a_scheduler_is_not_a_change(tmp_path):
    config = _recorded(tmp_path)
    # 0.005 written as a parsed string, the optimizers returned as Lightning's dicts, and a
    # scheduler that moves the generator's rate per step from the same starting rate.
    returned = BUILT.replace("lr=self.hparams.lr,", "lr=float(f'{self.hparams.lr:.1e}'),")
    same = (
        f"g = {returned}\n"
        "        d = torch.optim.Adam(self.discriminator.parameters(), lr=self.hparams.d_lr, "
        "betas=betas)\n"
        "        decay = torch.optim.lr_scheduler.LambdaLR(g, lambda step: 0.99**step)\n"
        '        return [{"optimizer": g, "lr_scheduler": decay}, {"optimizer": d}]\n'
        "        return (\n"
        f"            {BUILT},"
    )
    result = _rerun(config, tmp_path, "r1", f"return (\n            {BUILT},", same)
    assert result.status is Status.PASS, result.summary + result.hint
    groups = result.metrics["lr_groups"]
    assert [(g["lr"], g["params"], g["where"]) for g in groups] == [
        (0.005, "generator.*", "model.py:73 in configure_optimizers"),
        (0.002, "discriminator.*", "model.py:74 in configure_optimizers"),
    ]
    baseline = json.loads((config.parent / ".mltest" / "baselines.json").read_text())
    (entry,) = baseline["checks"]["memorization"].values()
    assert "not the cause" in fact(groups, entry)


def test_reordered_groups_and_a_scheduler_keep_the_starting_rate():
    def group(optimizer, number, params, lr):
        return {"optimizer": optimizer, "class": "SGD", "group": number, "params": params,
                "lr": lr, "where": "model.py:9 in configure_optimizers"}  # fmt: skip

    base = {"lr_groups": [group(0, 0, "enc.*", 0.1), group(0, 1, "head.*", 0.01)]}
    reordered = [group(0, 0, "head.*", 0.01), group(0, 1, "enc.*", 0.1)]
    assert "not the cause" in fact(reordered, base)
    raised = [group(0, 0, "head.*", 1.0), group(0, 1, "enc.*", 0.1)]
    assert fact(raised, base) == (
        "optimizer 0 (SGD) group 0 (head.*) starts at lr 1, 100x the baseline's 0.01 — set at "
        "model.py:9 in configure_optimizers"
    )
    # An old baseline (flat list) pairs by position; no record at all asks for the base branch.
    assert "starts at lr 1, 10x the baseline's 0.1" in fact(raised, {"learning_rates": [0.1]})
    assert "predates recording it" in fact(raised, {})
    added = [*reordered, group(1, 0, "disc.*", 0.2)]
    assert "optimizer 1 (SGD) group 0 (disc.*) is new" in fact(added, base)


def test_a_groups_parameters_are_named_by_their_owner():
    assert owner(["generator.0.weight", "generator.2.bias"], 8) == "generator.*"
    assert owner(["a.weight", "b.weight"], 2) == "all parameters"
    assert owner(["enc.w", "dec.w", "mid.w"], 9) == "enc.*, dec.* and 1 more"
    assert owner(["head.weight"], 4) == "head.weight"
