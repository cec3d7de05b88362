"""The fixed inputs' hash, streamed batch by batch, is the hash of the joined inputs: goldens
recorded before the streaming keep matching, and any changed byte, dtype or shape shows."""

from __future__ import annotations

import pytest
import torch

from mltest.checks.regression.golden import batches_hash, content_hash, flatten_batches
from mltest.errors import ProjectError


def _joined(batches):
    return content_hash(flatten_batches(batches, "inputs"))


def _images(rows=10, batch=4):
    torch.manual_seed(0)
    x = torch.randn(rows, 3, 5, 5)
    return [x[i : i + batch] for i in range(0, rows, batch)]  # last batch shorter


LAYOUTS = {
    "tensors": _images(),
    "dict of tensors and ints": [
        {"pixels": b, "index": torch.arange(len(b)) + i} for i, b in enumerate(_images())
    ],
    "tuple with a non-contiguous part": [(b, b.transpose(2, 3)) for b in _images()],
    "half precision": [b.half() for b in _images()],
    "strings beside tensors (joined)": [
        {"text": [f"row {i}"] * len(b), "x": b} for i, b in enumerate(_images())
    ],
    "ragged token ids (joined and padded)": [
        torch.ones(2, 3, dtype=torch.long),
        torch.ones(2, 5, dtype=torch.long),
    ],
    "one batch": _images(4, 4),
}


@pytest.mark.parametrize("name", LAYOUTS)
def test_streamed_hash_equals_the_joined_inputs_hash(name):
    batches = LAYOUTS[name]
    assert batches_hash(batches, "inputs") == _joined(batches)


def test_streamed_hash_sees_one_changed_value_dtype_and_batching_not():
    batches = _images()
    before = batches_hash(batches, "inputs")
    moved = [b.clone() for b in batches]
    moved[-1][-1, 0, 0, 0] += 1e-6
    assert batches_hash(moved, "inputs") != before
    assert batches_hash([b.double() for b in batches], "inputs") != before
    # The same examples batched otherwise are the same inputs.
    assert batches_hash([torch.cat(batches)], "inputs") == before


def test_a_changed_layout_is_refused_as_when_joined():
    batches = [{"a": torch.ones(2)}, {"b": torch.ones(2)}]
    with pytest.raises(ProjectError, match="batch 1 has parts"):
        batches_hash(batches, "inputs")
