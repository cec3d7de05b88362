"""Key examples for the autoencoder, drawn in code: each stroke pattern must come back within a
reconstruction error (the input is the expected output), a little noise must not change the
reconstruction, and a blank page must come back dark."""

import torch
from data import draw


def collate(images: list) -> tuple:
    """Images [1, 28, 28] -> the (images, labels) batch predict_step takes apart."""
    batch = torch.stack([torch.as_tensor(img, dtype=torch.float32) for img in images])
    return batch, torch.zeros(len(images), dtype=torch.long)


def make() -> list[dict]:
    gen = torch.Generator().manual_seed(5)
    rows = []
    for label in range(10):
        image = draw(label, gen)
        rows.append({"id": f"pattern-{label}", "kind": "mft", "input": image, "measure": "mse",
                     "at_most": 0.15, "tags": "reconstruction"})
    image = draw(0, gen)
    noisy = image + 0.05 * torch.randn(image.shape, generator=gen)
    rows += [
        {"id": "ring-ref", "kind": "inv", "input": image, "group": "noise", "measure": "mse",
         "tags": "robustness"},
        {"id": "ring-noise", "kind": "inv", "input": noisy, "group": "noise", "measure": "mse",
         "at_most": 0.005, "tags": "robustness"},
        {"id": "blank", "kind": "mft", "input": torch.zeros(1, 28, 28), "measure": "mean",
         "at_most": 0.1, "tags": "statistics"},
    ]
    return rows
