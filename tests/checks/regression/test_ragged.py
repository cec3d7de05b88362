"""Ragged (dynamically padded) inputs and outputs compare example by example, whatever the
batching: a token tagger's per-position scores, padded per batch, from a real tiny model."""

from __future__ import annotations

import numpy as np
import torch

from mltest.checks.regression.compare import compare_outputs
from mltest.checks.regression.golden import EXTENT, flatten_batches


def _tagger(classes=3):
    torch.manual_seed(0)
    embed = torch.nn.Embedding(20, 8, padding_idx=0)
    head = torch.nn.Linear(8, classes)
    return lambda ids: head(torch.tanh(embed(ids)))  # per-position class scores


def _sentences():
    rng = np.random.default_rng(3)
    return [rng.integers(1, 20, size=rng.integers(2, 12)).tolist() for _ in range(10)]


def _predict(model, sentences, batch_size, label_shift=0):
    outputs = []
    for start in range(0, len(sentences), batch_size):
        chunk = sentences[start : start + batch_size]
        longest = max(map(len, chunk))
        ids = torch.tensor([s + [0] * (longest - len(s)) for s in chunk])
        with torch.no_grad():
            scores = model(ids)
        outputs.append({"tags": scores.roll(label_shift, dims=-1)})
    return flatten_batches(outputs, "outputs")


def test_token_scores_padded_per_batch_match_across_batch_sizes():
    model, sentences = _tagger(), _sentences()
    golden = _predict(model, sentences, batch_size=4)
    for size in (1, 3, 10):
        got = _predict(model, sentences, batch_size=size)
        comparison = compare_outputs(golden, got, task="classification")
        assert comparison.ok, (size, comparison.problems, comparison.moved)
        assert [d.name for d in comparison.outputs] == ["tags"]  # extents are not outputs
    assert EXTENT.join(["tags", ""]) in golden


def test_a_shifted_label_map_flips_labels_per_position_and_names_example_and_position():
    model, sentences = _tagger(), _sentences()
    golden = _predict(model, sentences, batch_size=4)
    got = _predict(model, sentences, batch_size=3, label_shift=1)
    comparison = compare_outputs(golden, got, task="classification")
    (diff,) = comparison.outputs
    positions = sum(len(s) for s in sentences)  # in-batch padding shared by both is compared
    assert not diff.ok and diff.examples == len(sentences)
    assert positions <= diff.flipped <= diff.total // 3
    example, position, _ = diff.worst[0].index
    assert 0 <= example < len(sentences) and 0 <= position < 12


def test_a_changed_number_of_tag_classes_is_a_layout_problem():
    sentences = _sentences()
    golden = _predict(_tagger(), sentences, batch_size=4)
    got = _predict(_tagger(classes=2), sentences, batch_size=3)
    comparison = compare_outputs(golden, got)
    assert comparison.problems == ["`tags`: per-example size was (3,), now (2,) (axes [1])"]
