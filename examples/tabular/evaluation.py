"""The evaluation gate's helpers for the tabular example: a held-out table made by code (with
a `region` column to slice by), its collate function, and a slicing function by the band of
the first feature."""

import torch
from data import FEATURES, MEAN, STD, make_table


def holdout() -> list[dict]:
    """600 more rows from the same class centres as the training data, each with a region:
    `north` when the first feature is positive, else `south`."""
    features, labels = make_table(512 + 600)
    rows = []
    pairs = zip(features[512:].tolist(), labels[512:].tolist(), strict=True)
    for i, (x, y) in enumerate(pairs):
        row = {"id": f"h{i}", **{f"x{j}": x[j] for j in range(FEATURES)}, "target": y}
        row["region"] = "north" if x[0] > 0 else "south"
        rows.append(row)
    return rows


def collate(rows: list[dict]) -> torch.Tensor:
    """Table rows -> the normalised feature batch the model was trained on."""
    raw = torch.tensor([[row[f"x{j}"] for j in range(FEATURES)] for row in rows])
    return (raw - MEAN) / STD


def x0_band(example) -> str:
    """A slice per band of the first raw feature: a dataset item is (normalised features,
    label); a table row has the raw `x0`."""
    x0 = example["x0"] if isinstance(example, dict) else float(example[0][0]) * STD + MEAN
    return "x0<-2" if x0 < -2 else "x0>2" if x0 > 2 else "x0 in [-2,2]"
