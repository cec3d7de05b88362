"""The causal leak probe (`checks.sanity.causal`) on a tiny nanoGPT-like language model: a
missing, inverted or off-by-one causal mask is named with the first position and the module
that leaks; the healthy model passes; a sequence model that has not chosen gets the probe
suggested."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mltest.checks.sanity.probes.causal import judge, probe
from mltest.checks.sanity.tensors import ForwardCall
from mltest.report import Status
from tests.checks.sanity.models import LM_DATA, TINY_LM
from tests.checks.sanity.test_probes import run_check
from tests.suites import write_suite

MASK = "torch.tril(torch.ones(context, context))"


def _lm(tmp_path, edits=(), causal=True, data=LM_DATA, **top):
    text = TINY_LM
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new)
    settings = {} if causal is None else {"causal": causal}
    config = write_suite(
        tmp_path, model_src=text, data_src=data, model="model:TinyLM",
        data="data:TokenData", checks={"sanity": settings}, **top,
    )  # fmt: skip
    return run_check(config, update=True)


def _case(result, name):
    return next(c for c in result.cases if c.name == name)


def test_the_healthy_causal_model_passes(tmp_path):
    result = _lm(tmp_path)
    assert result.status is Status.PASS, result.summary
    assert _case(result, "no output sees later positions").status is Status.PASS
    assert "Causal probe: the input changed after position 0, 1, 3, 6, 10 in turn" in (
        result.details
    )
    assert not any("checks.sanity.causal" in n for n in result.notices)


INSIDE_ATTN = (
    "the first module whose output there moved is `attn.proj` (Linear), but its input had "
    "already moved: the code of `attn` (CausalSelfAttention)'s own forward mixes positions "
    "before it, after `attn.qkv` (Linear)"
)


EVERYTHING = "position 0 sees as far as position 11: no causal mask, or an inverted one"


@pytest.mark.parametrize(
    "edits, reach",
    [
        ([('        att = att.masked_fill(~self.mask[:T, :T], float("-inf"))\n', "")], EVERYTHING),
        ([("att = att.masked_fill(", "att.masked_fill(")], EVERYTHING),  # not applied
        ([(MASK, "torch.triu(torch.ones(context, context))")], EVERYTHING),
        ([(MASK, "torch.tril(torch.ones(context, context), diagonal=1)")],
         "position 0 sees position 1 but not 11: a mask off by one"),
    ],
    ids=["mask-missing", "mask-not-applied", "mask-inverted", "mask-off-by-one"],
)  # fmt: skip
def test_a_causal_mask_bug_is_named_with_position_and_module(tmp_path, edits, reach):
    result = _lm(tmp_path, edits)
    assert result.status is Status.FAIL
    case = _case(result, "no output sees later positions")
    assert case.status is Status.FAIL
    assert "the model sees the future: in eval mode, changing the input only after position 0 " \
        "moved the output at position 0" in case.message, case.message
    assert INSIDE_ATTN in case.message and reach in case.message
    assert "future positions leak" in result.details


def test_targets_that_are_not_shifted_are_named(tmp_path):
    unshifted = LM_DATA.replace("seqs[:, 1:]", "seqs[:, :-1]")
    result = _lm(tmp_path, data=unshifted)
    assert result.status is Status.FAIL
    case = _case(result, "no output sees later positions")
    assert case.message.startswith(
        "the targets are not shifted: `cross_entropy` at model.py:"
    ), case.message
    assert "targets not shifted" in result.details


def test_a_sequence_model_gets_the_probe_suggested(tmp_path):
    result = _lm(tmp_path, causal=None)
    assert result.status is Status.PASS, result.summary
    assert any(
        "the model's task is sequence (from cross_entropy on [96, 16]): if each position" in n
        and "set checks.sanity.causal: true" in n
        for n in result.notices
    ), result.notices
    assert "no output sees later positions" not in {c.name for c in result.cases}


def test_a_module_that_mixes_positions_itself_is_named():
    # An encoder layer without a mask: its attention mixes positions inside the module.
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(8, 2, 16, 0.0, batch_first=True)
    model = nn.Sequential(nn.Embedding(10, 8), layer)
    obs = probe(model.eval(), ForwardCall.of(torch.randint(0, 10, (3, 6))))
    assert (obs.after, obs.position, obs.module, obs.inside) == (0, 0, "1.self_attn", True)
    message = judge(obs, "Sequential")[0].message
    assert "`1.self_attn` (MultiheadAttention), whose input had not moved: it mixes positions " \
        "itself" in message, message


@pytest.mark.gpu
@pytest.mark.parametrize("bug", [False, True], ids=["healthy", "mask-off-by-one"])
def test_the_probe_runs_on_cuda(tmp_path, bug):
    edits = [(MASK, "torch.tril(torch.ones(context, context), diagonal=1)")] if bug else []
    result = _lm(tmp_path, edits, trainer={"accelerator": "gpu", "devices": 1})
    assert result.metrics["environment"].startswith("cuda-")
    case = _case(result, "no output sees later positions")
    assert case.status is (Status.FAIL if bug else Status.PASS), case.message
