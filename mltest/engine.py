"""Lightning as the engine: a quiet Trainer that leaves no files in the user's repository."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import uuid
import warnings
import weakref
from collections.abc import Iterator
from typing import Any

_LIGHTNING_LOGGERS = ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning")


def lightning_package(model: Any):
    """The Lightning package the model was written against (`pytorch_lightning` or the
    unified `lightning.pytorch`): a Trainer only accepts modules of its own package."""
    for cls in type(model).__mro__:
        if cls.__name__ == "LightningModule":
            if cls.__module__.startswith("lightning.pytorch"):
                import lightning.pytorch as package
            else:
                import pytorch_lightning as package
            return package
    raise TypeError(f"{type(model).__name__} is not a LightningModule")


# Lightning's advice about how mltest drives it (few batches, no val loop, no logger): noise.
LIGHTNING_NOISE = (
    r".*does not have many workers.*",
    r".*smaller than the logging interval.*",
    r".*`training_step` returned `None`.*",
    r".*`self.log\(\)`.*",
    r".*LeafSpec.*",
    r".*but have no `validation_step`.*",
    # mltest fits on fixed batches with no val loop on purpose (memorization judges with
    # validation_step itself): Lightning's advice about a missing val_dataloader is noise.
    r".*but have no `val_dataloader`.*",
)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence Lightning's banners and advice; real warnings from user code still show."""
    levels = {name: logging.getLogger(name).level for name in _LIGHTNING_LOGGERS}
    for name in levels:
        logging.getLogger(name).setLevel(logging.ERROR)
    with warnings.catch_warnings():
        for pattern in LIGHTNING_NOISE:
            warnings.filterwarnings("ignore", message=pattern)
        try:
            yield
        finally:
            for name, level in levels.items():
                logging.getLogger(name).setLevel(level)


class FixedBatches:
    """The same batches every epoch, each time a copy, as a data loader gives new tensors: a
    training_step that changes its batch in place (`x /= 255`, token ids masked) must not
    change the next step's. A plain list would be read by Lightning as a list of dataloaders,
    so it is wrapped in a single iterable."""

    def __init__(self, batches: list):
        self.batches = batches

    def __iter__(self):
        return (copy_batch(batch) for batch in self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def copy_batch(batch: Any) -> Any:
    """The batch with every tensor in it copied (what model code writes into stays apart)."""
    import torch
    from lightning_utilities.core.apply_func import apply_to_collection

    return apply_to_collection(batch, torch.Tensor, torch.clone)


def make_trainer(model: Any, settings: dict[str, Any], **overrides: Any):
    """A Trainer with the config's `trainer:` settings, no logger, checkpoints or progress bars.

    Files Lightning insists on writing go to a throwaway directory, never the user's repo; the
    directory is only a name until something is written there, and is removed with the Trainer.
    """
    from mltest.seeding import determinism_mode

    package = lightning_package(model)
    scratch = _scratch_path()
    options: dict[str, Any] = {
        # Warn-only unless the config says otherwise: Lightning's strict `True` stops every
        # model using an op without a deterministic CUDA kernel (adaptive pooling's backward).
        "deterministic": determinism_mode(settings),
        "log_every_n_steps": 1,
        "num_sanity_val_steps": 0,
        "limit_val_batches": 0,
    }
    options.update(settings)
    options.update(
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=scratch,
    )
    options.update(overrides)
    if "plugins" not in options:
        options["plugins"] = [_no_cluster_environment(package)]
    trainer = package.Trainer(**options)
    if options["default_root_dir"] == scratch:  # ours, not a caller's: remove what lands there
        weakref.finalize(trainer, shutil.rmtree, scratch, True)  # with the Trainer, or at exit
    return trainer


def _no_cluster_environment(package: Any) -> Any:
    """Lightning's plain environment, named so that the Trainer skips its cluster detection.

    Detection imports `mpi4py.MPI` whenever mpi4py is installed (NVIDIA's containers, HPC
    images), and an `MPI_Init` that cannot start there ends the whole process. The worker is
    never started by an MPI, SLURM or LSF launcher (its environment carries none of their
    variables), so detection could only find the plain environment anyway.
    """
    import importlib

    environments = importlib.import_module(f"{package.__name__}.plugins.environments")
    return environments.LightningEnvironment()


def _scratch_path() -> str:
    """A fresh, unguessable path in the temp dir, not created.

    With no logger and no checkpoints Lightning writes nothing there, so creating a folder per
    Trainer (as `mkdtemp` did) only left an empty `mltest-XXXX` folder behind for every fit.
    """
    return os.path.join(tempfile.gettempdir(), f"mltest-{uuid.uuid4().hex}")


def device_key(trainer: Any, settings: dict[str, Any]) -> str:
    """What a baseline is keyed by: device type, torch minor version and precision."""
    return environment_key(trainer.strategy.root_device.type, settings)


_WORLD = "-world"  # a key's suffix for a run over several processes: `-world2`


def environment_key(device_type: str, settings: dict[str, Any]) -> str:
    """`cpu-torch2.13-32-true`: the environment baselines and goldens are kept per.

    A patch release of torch, another GPU model or thread count share a key: the checks
    tolerate their numerical noise; a new device type, torch minor or precision does not. Nor
    does a run over several processes (`devices: 2`, `strategy: ddp`): each rank trains on its
    share of the data, so its key ends in the world size (`cpu-torch2.13-32-true-world2`).
    """
    import torch

    from mltest.checks.base import strategy_of

    major_minor = ".".join(torch.__version__.split("+")[0].split(".")[:2])
    precision = str(settings.get("precision", "32-true"))
    _, processes = strategy_of(settings)
    world = f"{_WORLD}{processes}" if processes > 1 else ""
    return f"{device_type}-torch{major_minor}-{precision}{world}"


def world_size_of(key: str) -> int:
    """The number of processes an environment key was recorded with (1 without the suffix)."""
    _, found, count = key.rpartition(_WORLD)
    return int(count) if found and count.isdigit() else 1


def environment_facts(settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the report's run metadata says about the numerical environment.

    Call it in the worker after `seeding.prepare_process()`: on a GPU machine it initialises
    CUDA (to read the device name).

    Args:
        settings: the config's `trainer:` settings (for the determinism mode); None: default.

    Returns:
        torch, lightning, cuda (runtime version, None without a GPU), cudnn (None without
        one), device (GPU name, else the CPU's), precision and determinism (`warn`, `strict`
        or `off`).
    """
    import platform

    import pytorch_lightning
    import torch

    from mltest.seeding import describe_mode, determinism_mode

    settings = settings or {}
    gpu = torch.cuda.is_available()
    return {
        "torch": torch.__version__,
        "lightning": pytorch_lightning.__version__,
        "cuda": torch.version.cuda if gpu else None,
        "cudnn": torch.backends.cudnn.version() if gpu else None,
        "device": torch.cuda.get_device_name(0) if gpu else platform.processor() or "cpu",
        "precision": str(settings.get("precision", "32-true")),
        "determinism": describe_mode(determinism_mode(settings)),
    }


def device_for(settings: dict[str, Any]):
    """The torch device a plain (Trainer-less) prediction loop should use for these settings."""
    import torch

    accelerator = str(settings.get("accelerator", "auto")).lower()
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return torch.device("cuda", 0)
    if accelerator == "mps" and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")
