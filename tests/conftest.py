"""Shared pytest configuration: tests marked `gpu` run only where CUDA is available."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config, items):
    """Skip `gpu` tests, with the reason, on machines without CUDA (CI, most laptops)."""
    gpu_tests = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu_tests:
        return
    import torch  # only when a gpu test was collected: keeps GitHub-side test runs torch-free

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(
        reason=f"needs CUDA: torch {torch.__version__} sees no GPU (torch.cuda.is_available() "
        "is false)"
    )
    for item in gpu_tests:
        item.add_marker(skip)
