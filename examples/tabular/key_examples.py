"""Key examples for the tabular model, generated in code: clear cases per class (mft), small
noise that must not change the label (inv), and a move towards another class (dir)."""

import torch
from data import CLASSES, FEATURES, MEAN, STD, make_table


def collate(rows: list) -> torch.Tensor:
    """Raw feature rows -> the normalised batch the model was trained on."""
    return (torch.as_tensor(rows, dtype=torch.float32) - MEAN) / STD


def make() -> list[dict]:
    features, labels = make_table(3000)
    centres = torch.stack([features[labels == c].mean(dim=0) for c in range(CLASSES)])
    gen = torch.Generator().manual_seed(99)
    rows = []
    for c in range(CLASSES):
        centre = centres[c]
        rows.append({"id": f"centre-{c}", "kind": "mft", "input": centre.tolist(),
                     "expected": c, "tags": "clear"})
        rows.append({"id": f"noise-{c}-ref", "kind": "inv", "input": centre.tolist(),
                     "group": f"noise-{c}", "tags": "robustness"})
        for k in range(3):
            noisy = centre + 0.2 * torch.randn(FEATURES, generator=gen)
            rows.append({"id": f"noise-{c}-{k}", "kind": "inv", "input": noisy.tolist(),
                         "group": f"noise-{c}", "tags": "robustness"})
        other = (c + 1) % CLASSES
        rows.append({"id": f"towards-{c}-{other}-ref", "kind": "dir", "input": centre.tolist(),
                     "group": f"towards-{c}-{other}", "target": other, "tags": "monotonic"})
        halfway = centre + 0.5 * (centres[other] - centre)
        rows.append({"id": f"towards-{c}-{other}", "kind": "dir", "input": halfway.tolist(),
                     "group": f"towards-{c}-{other}", "direction": "up", "target": other,
                     "tags": "monotonic"})
    return rows
