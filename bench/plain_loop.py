"""The loop a person would write to train a LightningModule by hand: what memorization is
measured against.

Nothing of mltest runs here: the model class is imported and built from the config's
`init_args` after `torch.manual_seed(seed)`, the batch is the first one of the data module's
training loader, and each epoch calls the module's own `training_step`, `backward` and the
optimizer from its `configure_optimizers` on that batch. Torch's flags stay as torch sets them
(no deterministic algorithms) unless `deterministic` asks for the check's default mode, so the
price of deterministic kernels can be shown apart. `judged` adds the least a memorization
check must do per epoch: the eval-mode loss on the batch, read back as a float.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import yaml


def load(config_path: Path) -> tuple[Any, Any]:
    """The model class and the data module class named by a mltest.yaml, with their args."""
    config = yaml.safe_load(config_path.read_text())
    root = str(config_path.parent)
    if root not in sys.path:
        sys.path.insert(0, root)

    def build(section: dict) -> tuple[Any, dict]:
        module, _, name = section["class"].partition(":")
        return getattr(importlib.import_module(module), name), section.get("init_args") or {}

    return build(config["model"]), build(config["data"])


def first_optimizer(configured: Any) -> Any:
    """The optimizer from what `configure_optimizers` returned (an optimizer, list or dict)."""
    if isinstance(configured, dict):
        return configured["optimizer"]
    if isinstance(configured, (list, tuple)):
        first = configured[0]
        return first[0] if isinstance(first, (list, tuple)) else first
    return configured


class PlainLoop:
    """One seeded model and its first batch on a device; `train(epochs)` starts afresh each time.

    Args:
        config_path: the mltest.yaml naming the model and data classes.
        device: `cpu` or `cuda`.
        threads: torch's intra-op threads while training (the check's `threads`).
        seed: the seed both the model's init and the data loader's order start from.
    """

    def __init__(self, config_path: Path, device: str, threads: int, seed: int = 0):
        import torch

        (self.model_cls, self.model_args), (data_cls, data_args) = load(config_path)
        self.device, self.threads, self.seed = torch.device(device), threads, seed
        torch.manual_seed(seed)
        data = data_cls(**data_args)
        data.setup("fit")
        x, y = next(iter(data.train_dataloader()))[:2]
        self.batch = [x.to(self.device), y.to(self.device)]

    def train(self, epochs: int, *, judged: bool = False, deterministic: bool = False) -> float:
        """Train a fresh model for `epochs` epochs; returns the last training loss."""
        import torch

        from mltest.seeding import DEFAULT_MODE, apply_determinism, isolated_global_state

        with isolated_global_state():  # threads and determinism flags put back after
            torch.set_num_threads(self.threads)
            if deterministic:  # what the check runs under by default (`trainer.deterministic`)
                apply_determinism(DEFAULT_MODE)
            torch.manual_seed(self.seed)
            model = self.model_cls(**self.model_args).to(self.device)
            optimizer = first_optimizer(model.configure_optimizers())
            model.train()
            batch = self.batch
            for _ in range(epochs):
                optimizer.zero_grad()
                loss = model.training_step(batch, 0)
                loss.backward()
                optimizer.step()
                if judged:
                    model.eval()
                    with torch.no_grad():
                        float(model.training_step(batch, 0))
                    model.train()
            return float(loss.detach())  # waits for the device, as the check's last read-back does

