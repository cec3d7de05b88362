"""Key examples for the shapes CNN, drawn in code: one clear image per shape (mft), the same
image with a little noise or shifted by a pixel (inv), and a shape blended towards another
(dir: the other shape's score must rise)."""

import torch
from data import CLASSES, draw, normalize


def collate(images: list) -> torch.Tensor:
    """Raw [1, 16, 16] images -> the normalised batch the model was trained on."""
    return normalize(torch.stack([torch.as_tensor(img) for img in images]))


def make() -> list[dict]:
    gen = torch.Generator().manual_seed(5)
    rows = []
    clean = [draw(shape, gen).unsqueeze(0) for shape in range(len(CLASSES))]
    for shape, name in enumerate(CLASSES):
        image = clean[shape]
        rows.append({"id": f"{name}", "kind": "mft", "input": image, "expected": name,
                     "tags": "clear"})
        rows.append({"id": f"{name}-ref", "kind": "inv", "input": image, "group": f"{name}-inv",
                     "tags": "robustness"})
        rows.append({"id": f"{name}-noise", "kind": "inv", "group": f"{name}-inv",
                     "input": image + 0.05 * torch.randn(image.shape, generator=gen),
                     "tags": "robustness"})
        rows.append({"id": f"{name}-shift", "kind": "inv", "group": f"{name}-inv",
                     "input": torch.roll(image, shifts=1, dims=2), "tags": "robustness"})
        other = CLASSES[(shape + 1) % len(CLASSES)]
        rows.append({"id": f"{name}-to-{other}-ref", "kind": "dir", "input": image,
                     "group": f"{name}-to-{other}", "target": other, "tags": "monotonic"})
        blended = 0.5 * image + 0.5 * clean[(shape + 1) % len(CLASSES)]
        rows.append({"id": f"{name}-to-{other}", "kind": "dir", "input": blended,
                     "group": f"{name}-to-{other}", "direction": "up", "target": other,
                     "tags": "monotonic"})
    return rows
