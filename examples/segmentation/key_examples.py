"""Key examples for the UNet, drawn in code: a square and a disc at known places, each region
expected to be its class (per-region pixel accuracy), the whole mask of a scene, and the same
scene with a little noise (its mask must agree with the clean one's)."""

import torch
from data import COLOURS, SIZE, normalize


def collate(images: list) -> torch.Tensor:
    return torch.stack([torch.as_tensor(img) for img in images])


def scene(squares=(), discs=(), noise: float = 0.0, seed: int = 0):
    """A normalised image and its mask: squares and discs given as (cy, cx, r)."""
    mask = torch.zeros(SIZE, SIZE, dtype=torch.long)
    ys, xs = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
    for cy, cx, r in squares:
        mask[((ys - cy).abs() <= r) & ((xs - cx).abs() <= r)] = 1
    for cy, cx, r in discs:
        mask[(ys - cy) ** 2 + (xs - cx) ** 2 <= r * r] = 2
    image = COLOURS[mask].permute(2, 0, 1)
    if noise:
        generator = torch.Generator().manual_seed(seed)
        image = image + noise * torch.randn(image.shape, generator=generator)
    return normalize(image), mask


def make() -> list[dict]:
    square, _ = scene(squares=[(8, 8, 5)])
    disc, _ = scene(discs=[(20, 20, 6)])
    both, both_mask = scene(squares=[(8, 22, 4)], discs=[(22, 8, 5)])
    noisy, _ = scene(squares=[(8, 22, 4)], discs=[(22, 8, 5)], noise=0.05, seed=1)
    return [
        {"id": "square-inside", "kind": "mft", "input": square, "measure": "pixel_accuracy",
         "region": "5:12,5:12", "expected": 1, "at_least": 0.9, "tags": "regions"},
        {"id": "square-background", "kind": "mft", "input": square, "measure": "pixel_accuracy",
         "region": "20:32,20:32", "expected": 0, "at_least": 0.9, "tags": "regions"},
        {"id": "disc-inside", "kind": "mft", "input": disc, "measure": "pixel_accuracy",
         "region": "17:24,17:24", "expected": 2, "at_least": 0.9, "tags": "regions"},
        {"id": "scene-mask", "kind": "mft", "input": both, "measure": "pixel_accuracy",
         "expected": both_mask, "at_least": 0.9, "tags": "masks"},
        {"id": "scene-ref", "kind": "inv", "input": both, "group": "noise",
         "measure": "pixel_accuracy", "tags": "robustness"},
        {"id": "scene-noise", "kind": "inv", "input": noisy, "group": "noise",
         "measure": "pixel_accuracy", "at_least": 0.95, "tags": "robustness"},
    ]
