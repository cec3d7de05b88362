"""Checks made before the suite runs, so a missing GPU is one clear sentence, not a CUDA
stack trace deep inside a check. torch is imported only when a GPU is asked for."""

from __future__ import annotations


def gpu_problem() -> str | None:
    """None when CUDA sees at least one GPU, else a message saying what to check."""
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is a dependency
        return f"torch cannot be imported ({exc}), so no GPU can be used"
    if torch.cuda.is_available() and torch.cuda.device_count() > 0:
        return None
    build = f"torch {torch.__version__}, CUDA build {torch.version.cuda or 'none (CPU-only)'}"
    return (
        "A GPU was asked for (input gpus) but none is visible to PyTorch "
        f"({build}). Check the NVIDIA driver on the runner (nvidia-smi), that Docker runs with "
        "--gpus (NVIDIA Container Toolkit installed), and that the job's runs-on labels select "
        "a GPU runner; set gpus: '' to run on CPU."
    )
