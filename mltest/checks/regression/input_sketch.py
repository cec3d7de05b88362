"""A fingerprint of the fixed inputs that survives float rounding.

The input hash is exact: inputs that a data module computes (a drawn stroke, a resize, a
normalisation) can differ in their last bits between CPUs (AVX-512 and AVX2 kernels round
differently), and a golden recorded on one runner would then report "the inputs changed" on
another although nothing in the data path did. Alongside the hash, the golden records a few
sums per float array: the plain sum and the sum of squares (a shifted or rescaled input moves
them) and three position-weighted sums (reordered or swapped examples move them). When the
hash differs but every sum agrees to `RELATIVE` of the array's size, the inputs are the same
up to rounding. Integer, boolean and string arrays keep an exact per-array hash.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

# Rounding moves these sums by ~1e-7 of their size; any real change to a data path (a
# constant, a resize, an order) moves them by far more than this.
RELATIVE = 1e-5
_CHUNK = 1 << 20
_WEIGHTS = ((0.7548776662466927, 0.3), (0.5698402909980532, 1.1), (0.4142135623730951, 2.9))


def sketch(arrays: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Per input array: dtype, shape and either float sums or an exact hash."""
    from mltest.checks.regression.golden import content_hash

    out: dict[str, dict[str, Any]] = {}
    for name, value in sorted(arrays.items()):
        if isinstance(value, list) or not np.issubdtype(value.dtype, np.floating):
            out[name] = {"hash": content_hash({name: value})}
            continue
        out[name] = {
            "dtype": str(value.dtype),
            "shape": list(value.shape),
            "sums": _sums(np.ravel(value)),
        }
    return out


def _sums(flat: np.ndarray) -> list[float]:
    """[sum, sum of squares, sum of |x|, three position-weighted sums], in float64 chunks."""
    total = np.zeros(6)
    for start in range(0, flat.size, _CHUNK):
        x = flat[start : start + _CHUNK].astype(np.float64)
        position = np.arange(start, start + x.size, dtype=np.float64)
        total[0] += x.sum()
        total[1] += (x * x).sum()
        total[2] += np.abs(x).sum()
        for k, (step, phase) in enumerate(_WEIGHTS):
            total[3 + k] += (x * np.cos(position * step + phase)).sum()
    return [float(v) for v in total]


def same_up_to_rounding(recorded: Mapping[str, Any], arrays: Mapping[str, Any]) -> bool:
    """Whether `arrays` equal the inputs `recorded` was taken of, up to float rounding."""
    now = sketch(arrays)
    if sorted(now) != sorted(recorded):
        return False
    for name, entry in now.items():
        then = recorded[name]
        if not isinstance(then, dict):  # a damaged record cannot vouch for the inputs
            return False
        if "hash" in entry or "hash" in then:
            if entry.get("hash") != then.get("hash"):
                return False
            continue
        if entry["dtype"] != then.get("dtype") or entry["shape"] != then.get("shape"):
            return False
        sums, old = entry["sums"], then.get("sums")
        if not isinstance(old, list) or len(old) != len(sums):
            return False
        if not all(isinstance(v, int | float) for v in old):
            return False
        if not all(np.isfinite(sums)) or not all(np.isfinite(old)):
            return False
        # Every sum is bounded by the sum of |x| (squares: by their own size).
        size, squares = max(abs(sums[2]), 1e-30), max(abs(sums[1]), 1e-30)
        scales = [size, squares, size, size, size, size]
        if any(abs(a - b) > RELATIVE * s for a, b, s in zip(sums, old, scales, strict=True)):
            return False
    return True
