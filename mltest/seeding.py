"""Seed everything for one check, run it deterministically, then put global state back.

Checks seed torch, numpy and `random`, switch deterministic algorithms on and may change the
thread count; none of that may leak into the next check or into the user's own test session.
Determinism is warn-only by default: an op without a deterministic kernel (adaptive pooling's
CUDA backward, scatter_add, ...) runs, and the check reports its name as a notice.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from mltest.errors import ConfigError

_ENV_KEYS = ("PL_GLOBAL_SEED", "PL_SEED_WORKERS", "CUBLAS_WORKSPACE_CONFIG")


def seed_all(seed: int) -> None:
    """Seed python, numpy and torch (all devices) the same way on every run."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextlib.contextmanager
def isolated_global_state() -> Iterator[None]:
    """Snapshot RNGs, determinism flags, thread count and seeding env vars; restore on exit."""
    py_state = random.getstate()
    np_state = np.random.get_state()
    torch_state = torch.get_rng_state()
    cuda_states = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    threads = torch.get_num_threads()
    fill = filling_new_tensors()
    env = {key: os.environ.get(key) for key in _ENV_KEYS}
    try:
        yield
    finally:
        fill_new_tensors(fill)
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.set_rng_state(torch_state)
        if cuda_states is not None:
            torch.cuda.set_rng_state_all(cuda_states)
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn
        torch.set_num_threads(threads)
        for key, value in env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# --- determinism -----------------------------------------------------------------------------

CUBLAS_WORKSPACE = ":4096:8"
# `trainer.deterministic` in the config: unset means warn-only, so an op without a
# deterministic kernel runs (and is reported) instead of stopping the user's model.
DEFAULT_MODE = "warn"
_NO_KERNEL = re.compile(r"(?P<op>[\w.:<>\- ]+?) does not have a deterministic implementation")
_CUBLAS = "because it uses CuBLAS"
_CUBLAS_OP = "cuBLAS (CUBLAS_WORKSPACE_CONFIG was not set before CUDA started)"


def prepare_process() -> None:
    """Set what deterministic CUDA needs; call it first in the worker, before any user import.

    cuBLAS reads `CUBLAS_WORKSPACE_CONFIG` once, when CUDA creates its first handle, so it must
    be in the environment before anything initialises CUDA. cuDNN is told to pick deterministic
    algorithms (no benchmarking), and torch is put in warn-only deterministic mode: ops without
    a deterministic kernel still run and are reported by `watch_determinism`. Each check then
    applies the config's own `trainer.deterministic` mode. Calling it again is harmless.

    Raises:
        RuntimeError: CUDA was initialised before the call and the cuBLAS setting is missing,
            which would make CUDA matrix products non-deterministic for the whole process.
    """
    if torch.cuda.is_initialized() and not os.environ.get("CUBLAS_WORKSPACE_CONFIG"):
        raise RuntimeError(
            "prepare_process() came after CUDA was initialised: call it before importing user "
            "code or touching CUDA, or set CUBLAS_WORKSPACE_CONFIG=:4096:8 in the environment"
        )
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    apply_determinism(DEFAULT_MODE)


def filling_new_tensors() -> bool:
    """Whether torch fills the memory of new tensors (NaN for floats) while deterministic
    algorithms are on (`torch.utils.deterministic.fill_uninitialized_memory`)."""
    return bool(getattr(torch.utils.deterministic, "fill_uninitialized_memory", False))


def fill_new_tensors(on: bool) -> None:
    """Turn that fill on or off (no-op on a torch without the switch).

    The fill changes no correct kernel's result: it makes a read of memory nobody wrote
    (a forgotten `torch.empty`) NaN instead of whatever was there, so such a model fails
    loudly and the same way every run. It costs every allocation a write (+4% of a small CNN's
    CPU training step, +10% of a prediction pass), so the checks keep it where that read would
    first show (building the model, the first epoch, the first predicted batch, sanity's steps)
    and turn it off for the repetitions after, which add nothing a first pass did not reveal.
    """
    if hasattr(torch.utils.deterministic, "fill_uninitialized_memory"):
        torch.utils.deterministic.fill_uninitialized_memory = on


def determinism_mode(trainer_settings: dict[str, Any]) -> bool | str:
    """The config's `trainer.deterministic`: True (strict), False (off) or `warn` (default)."""
    mode = trainer_settings.get("deterministic")
    return DEFAULT_MODE if mode is None else mode


def describe_mode(mode: bool | str) -> str:
    """`warn`, `strict` or `off`, for the report metadata."""
    return "warn" if mode == "warn" else ("strict" if mode else "off")


def apply_determinism(mode: bool | str) -> None:
    """Set torch's and cuDNN's determinism flags as Lightning's `deterministic=mode` would.

    Used where prediction runs without a Trainer, so it runs under the same mode as training.
    """
    on = bool(mode)
    torch.use_deterministic_algorithms(on, warn_only=mode == "warn")
    torch.backends.cudnn.deterministic = on
    if on:
        torch.backends.cudnn.benchmark = False


@dataclass
class DeterminismWatch:
    """What `watch_determinism` saw: the ops that ran without a deterministic kernel."""

    ops: set[str] = field(default_factory=set)

    def notice(self) -> str | None:
        """The report notice naming those ops, or None when every op was deterministic."""
        return nondeterminism_notice(self.ops)


def nondeterminism_notice(ops: Iterable[str]) -> str | None:
    """`ran without a deterministic kernel: a, b; reruns may differ slightly`, or None."""
    names = sorted(set(ops))
    if not names:
        return None
    return (
        f"ran without a deterministic kernel: {', '.join(names)}; reruns may differ slightly "
        "(`trainer.deterministic: true` makes this an error instead)"
    )


@contextlib.contextmanager
def watch_determinism(mode: bool | str) -> Iterator[DeterminismWatch]:
    """Run user code under `mode`, collecting ops that warn they have no deterministic kernel.

    Those warnings are recorded (every occurrence, not once per place) and not shown; other
    warnings pass through untouched. Under strict mode the RuntimeError torch raises for such an
    op becomes a ConfigError that names the op and the config key to change. The caller keeps
    the flags it had (wrap in `isolated_global_state` to restore them).
    """
    watch = DeterminismWatch()
    apply_determinism(mode)
    with warnings.catch_warnings():
        warnings.filterwarnings("always", message=r".*does not have a deterministic")
        warnings.filterwarnings("always", message=rf".*{_CUBLAS}")
        shown = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            op = nondeterministic_op(str(message))
            if op is None:
                shown(message, category, filename, lineno, file, line)
            else:
                watch.ops.add(op)

        warnings.showwarning = show
        try:
            yield watch
        except RuntimeError as exc:
            op = nondeterministic_op(str(exc))
            if op is None:
                raise
            raise ConfigError(strict_mode_advice(op)) from exc


def nondeterministic_op(message: str) -> str | None:
    """The op a torch determinism warning or error names, or None for any other message."""
    if _CUBLAS in message:
        return _CUBLAS_OP
    found = _NO_KERNEL.search(message)
    return found.group("op").strip() if found else None


def strict_mode_advice(op: str) -> str:
    """What to do when strict determinism stops a model: the config key and its values."""
    return (
        f"{op} has no deterministic implementation on this device, and "
        "`trainer.deterministic: true` makes that an error. The model is fine: set "
        "`trainer.deterministic: warn` in mltest.yaml (the default when unset) to run it and "
        "get a notice naming the op, or `false` to turn deterministic algorithms off"
    )
