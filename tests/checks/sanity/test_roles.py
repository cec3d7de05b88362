"""What trains is compared with the baseline by role, not only by name.

A small real self-attention classifier whose q/k/v projection is fused; a pull request splits
it into three layers initialised from the fused one's rows (a refactor: every parameter still
trains), or splits it and freezes one of them. (A parameter frozen under its own name is
`test_sanity`'s.)
"""

from __future__ import annotations

import shutil

import pytest

from mltest.checks.sanity.baseline import compare_baseline
from mltest.checks.sanity.obs import ParamObs
from mltest.report import Status
from mltest.supervisor import run_suite
from tests.checks.sanity.test_sanity import DATA
from tests.checks.wording import assert_protects_baseline
from tests.suites import write_suite

ATTENTION = """
import pytorch_lightning as pl
import torch
from torch import nn
from torch.nn import functional as F


class Model(pl.LightningModule):
    def __init__(self, dim=8):
        super().__init__()
        self.embed = nn.Linear(6, dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.head = nn.Linear(dim, 3)

    def project(self, h):
        return self.qkv(h).chunk(3, dim=-1)

    def forward(self, x):
        # Four distinct tokens per example: identical tokens would make attention uniform
        # whatever q and k are, so they would get no gradient (exactly zero on some CPUs).
        h = self.embed(x.unsqueeze(1) * torch.arange(1.0, 5.0).view(1, 4, 1))
        q, k, v = self.project(h)
        attn = torch.softmax(q @ k.transpose(1, 2) / q.shape[-1] ** 0.5, dim=-1)
        return self.head((attn @ v).mean(1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self(x), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=0.01)
"""

SPLIT = [
    (
        "        self.qkv = nn.Linear(dim, 3 * dim)\n",
        "        fused = nn.Linear(dim, 3 * dim)\n"
        "        self.q, self.k, self.v = (nn.Linear(dim, dim) for _ in range(3))\n"
        "        with torch.no_grad():\n"
        "            for i, layer in enumerate((self.q, self.k, self.v)):\n"
        "                layer.weight.copy_(fused.weight[i * dim:(i + 1) * dim])\n"
        "                layer.bias.copy_(fused.bias[i * dim:(i + 1) * dim])\n",
    ),
    (
        "        return self.qkv(h).chunk(3, dim=-1)",
        "        return self.q(h), self.k(h), self.v(h)",
    ),
]
FREEZE_V = ("        self.head = nn.Linear(dim, 3)\n", "        self.head = nn.Linear(dim, 3)\n"
            "        self.v.requires_grad_(False)\n")  # fmt: skip


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """The fused model's project with its sanity baseline recorded (once for the module)."""
    root = tmp_path_factory.mktemp("attention")
    config = write_suite(root / "base", model_src=ATTENTION, data_src=DATA, checks={"sanity": {}})
    report = run_suite(config, root / "rec", update_baselines=True, only=["sanity"])
    (result,) = [c for c in report.checks if c.name == "sanity"]
    assert result.status is Status.PASS, result.summary
    return config.parent


def edited(recorded, tmp_path, edits):
    """A copy of the recorded project with (old, new) edits to model.py, run."""
    project = tmp_path / "edited"
    shutil.copytree(recorded, project, ignore=shutil.ignore_patterns("__pycache__"))
    text = (project / "model.py").read_text()
    for old, new in edits:
        assert old in text, f"edit target {old!r} not in model.py"
        text = text.replace(old, new)
    (project / "model.py").write_text(text)
    report = run_suite(project / "mltest.yaml", tmp_path / "report", only=["sanity"])
    return next(c for c in report.checks if c.name == "sanity")


def test_a_fused_projection_split_into_three_is_a_notice(recorded, tmp_path):
    result = edited(recorded, tmp_path, SPLIT)
    assert result.status is Status.PASS, result.summary
    (notice,) = [n for n in result.notices if "since the baseline" in n]
    assert "qkv.weight, qkv.bias (216 elements) no longer exist" in notice
    assert "q.weight, q.bias, k.weight, k.bias, v.weight, v.bias (216 elements) are new" in notice
    assert "nothing that trained stopped and nothing frozen trains" in notice


def test_a_split_with_one_part_frozen_fails_naming_it(recorded, tmp_path):
    result = edited(recorded, tmp_path, [*SPLIT, FREEZE_V])
    assert result.status is Status.FAIL
    assert (
        "v.weight, v.bias do not train, in place of the baseline's qkv.weight, qkv.bias, which "
        "trained (144 of 216 elements train now)" in result.summary
    )
    assert_protects_baseline(result.hint)


def _param(name, moved=True, shape=(2,)):
    return ParamObs(name, shape, True, True, "ok", 1.0, 0.1 if moved else 0.0)


def test_compare_by_role():
    entry = {"parameters": ["enc.weight 4 still", "head.weight 2 trains"]}
    frozen, _ = compare_baseline([_param("enc.weight"), _param("head.weight")], entry, "k", "c")
    assert "train now but did not in the baseline: enc.weight" in frozen[0].message
    now = [_param("encoder.a", shape=(2,)), _param("encoder.b", shape=(2,)), _param("head.weight")]
    (finding,), _ = compare_baseline(now, entry, "k", "cmd")
    assert "encoder.a, encoder.b train, in place of the baseline's enc.weight" in finding.message
    added = compare_baseline([*now[2:], _param("enc.weight", False), _param("x")], entry, "k", "c")
    assert added[0] == [] and "x (2 elements) are new" in added[1]
