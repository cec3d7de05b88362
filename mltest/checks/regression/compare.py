"""Compare named output arrays with golden ones: pure, vectorised numpy, no torch.

Floats compare with `|got - golden| <= atol + rtol * |golden|` (NaN equals NaN, an infinity
only itself); integers, booleans and strings compare exactly. Names and shapes are checked both
ways. The result says how many values moved, by how much, where the worst ones are, and for
classifier outputs how many predicted labels (argmax over the class axis: the last one for
`[B, C]`, axis 1 for a segmentation's `[B, C, H, W]`, so labels flip per pixel) flipped.

Ragged outputs (variable-length sequences, padded per batch) carry each example's extent
(`<name>#extent`, see `golden.flatten_batches`); they are compared example by example
on the positions both sides have, so the inference batch size does not matter.

Compared with another environment's golden (`labels_only`), a classifier output is judged on
its labels alone: a flip counts unless the golden scores had the two labels within tolerance
of each other (a tie that float noise may break either way).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, NamedTuple

import numpy as np

from mltest.checks.regression.diffs import Comparison, OutputDiff, Tolerance, Worst

EXTENT = "#extent"  # the per-example extents of a ragged output (golden.EXTENT)

Task = Literal["auto", "classification", "regression"]
Value = Any  # np.ndarray, or list[str] for string outputs


class _ClassAxis(NamedTuple):
    """Where a classifier output holds its class scores, and how many there are (if known)."""

    axis: int = -1
    classes: int | None = None


def compare_outputs(
    golden: Mapping[str, Value],
    got: Mapping[str, Value],
    *,
    default: Tolerance = Tolerance(),  # noqa: B008 (frozen: one shared default is safe)
    per_output: Mapping[str, Tolerance] | None = None,
    task: Task = "auto",
    worst: int = 10,
    labels_only: bool = False,
    class_axis: int = -1,
    classes: int | None = None,
) -> Comparison:
    """Compare every named output; names present on one side only are reported, not skipped.

    Args:
        golden: name -> array (or list of strings) from the golden file.
        got: name -> array (or list of strings) from this run.
        default: tolerance for float outputs without their own.
        per_output: name -> tolerance overriding the default.
        task: `classification` counts label flips on every float output of 2+ dimensions
            (with `classes` entries on `class_axis`, when given); `auto` only on 2-D float
            outputs with 2+ columns; `regression` never.
        worst: how many of the most-moved values to keep per output.
        labels_only: judge classifier outputs on their labels only (values are still
            measured and reported); other outputs stay judged on values.
        class_axis: the axis holding class scores, for `classification`.
        classes: how many classes a classifier output has on `class_axis`, when known.
    """
    axis = _ClassAxis(class_axis, classes)
    per_output = per_output or {}
    diffs = []
    extents = {n for n in set(golden) | set(got) if n.endswith(EXTENT)}
    for name in sorted((set(golden) | set(got)) - extents):
        if name not in got:
            diffs.append(OutputDiff(name, problem="in the golden file but not produced any more"))
        elif name not in golden:
            diffs.append(OutputDiff(name, problem="produced now but not in the golden file"))
        else:
            tol = per_output.get(name, default)
            key = name + EXTENT
            if key in extents:
                diff = compare_ragged(
                    name, golden[name], got[name], golden.get(key), got.get(key), tol, task, worst
                )
            else:
                diff = compare_one(name, golden[name], got[name], tol, task, worst, axis)
            if labels_only and diff.flipped is not None:
                diff.judged_on = "labels"
            diffs.append(diff)
    return Comparison(diffs)


def compare_one(
    name: str,
    golden: Value,
    got: Value,
    tol: Tolerance,
    task: Task = "auto",
    worst: int = 10,
    axis: _ClassAxis | None = None,
) -> OutputDiff:
    """Compare one output; see `compare_outputs`."""
    if isinstance(golden, list) or isinstance(got, list):
        return _compare_strings(name, golden, got, worst)
    golden, got = np.asarray(golden), np.asarray(got)
    kind_g, kind_n = _kind(golden), _kind(got)
    if kind_g != kind_n:
        return OutputDiff(
            name, problem=f"was {kind_g} ({golden.dtype}), now {kind_n} ({got.dtype})"
        )
    if golden.shape != got.shape:
        return OutputDiff(name, problem=f"shape was {golden.shape}, now {got.shape}")
    examples = golden.shape[0] if golden.ndim else 1
    if kind_g != "float":
        return _compare_exact(name, golden, got, examples, worst)
    return _compare_float(name, golden, got, tol, task, examples, worst, axis or _ClassAxis())


def compare_ragged(
    name: str,
    golden: Value,
    got: Value,
    golden_extent: Any,
    got_extent: Any,
    tol: Tolerance,
    task: Task = "auto",
    worst: int = 10,
) -> OutputDiff:
    """Compare a ragged output example by example, on the positions both sides have.

    Each side is zero-padded to its longest batch; an extent array ([examples, trailing
    axes]) gives each example's own size (None: every example has the full size). Axes whose
    sizes vary are ragged; the others must match as in `compare_one`. The compared positions
    are packed into rows (one per position, the last axis kept when it is not ragged), so a
    token classifier's labels flip per position; worst indices name example and position.
    """
    golden, got = np.asarray(golden), np.asarray(got)
    if isinstance(golden, list) or isinstance(got, list) or golden.ndim != got.ndim:
        return compare_one(name, golden, got, tol, task, worst)
    if golden.shape[0] != got.shape[0]:
        return OutputDiff(name, problem=f"had {golden.shape[0]} examples, now {got.shape[0]}")
    ext_g = _extents(golden, golden_extent)
    ext_n = _extents(got, got_extent)
    ragged = [bool((ext_g[:, a] != ext_g[0, a]).any() or (ext_n[:, a] != ext_n[0, a]).any())
              for a in range(golden.ndim - 1)]
    fixed = [a for a in range(golden.ndim - 1) if not ragged[a] and ext_g[0, a] != ext_n[0, a]]
    if fixed:
        was = tuple(int(ext_g[0, a]) for a in fixed)
        now = tuple(int(ext_n[0, a]) for a in fixed)
        return OutputDiff(name, problem=f"per-example size was {was}, now {now} (axes {fixed})")
    keep_last = golden.ndim > 2 and not ragged[-1]
    rows_g, rows_n, where = [], [], []
    for i in range(golden.shape[0]):
        common = np.minimum(ext_g[i], ext_n[i])
        region = (i, *(slice(0, int(n)) for n in common))
        part_g, part_n = golden[region], got[region]
        if keep_last:
            width = part_g.shape[-1]
            rows_g.append(part_g.reshape(-1, width))
            rows_n.append(part_n.reshape(-1, width))
            positions = np.ndindex(*(int(n) for n in common[:-1]))
        else:
            rows_g.append(part_g.reshape(-1))
            rows_n.append(part_n.reshape(-1))
            positions = np.ndindex(*(int(n) for n in common))
        where += [(i, *p) for p in positions]
    packed_g, packed_n = np.concatenate(rows_g), np.concatenate(rows_n)
    flips_on = task if task != "auto" or not keep_last or golden.ndim == 2 else "regression"
    diff = compare_one(name, packed_g, packed_n, tol, flips_on, worst)
    diff.examples = golden.shape[0]
    for w in diff.worst:
        w.index = (*where[w.index[0]], *w.index[1:])
    return diff


def _extents(array: np.ndarray, extent: Any) -> np.ndarray:
    """Each example's trailing sizes: the recorded extents, else the array's own shape."""
    if extent is None:
        return np.tile(np.asarray(array.shape[1:], dtype=np.int64), (array.shape[0], 1))
    return np.asarray(extent, dtype=np.int64).reshape(array.shape[0], array.ndim - 1)


def _kind(array: np.ndarray) -> str:
    if array.dtype == bool:
        return "boolean"
    if np.issubdtype(array.dtype, np.integer):
        return "integer"
    if np.issubdtype(array.dtype, np.floating):
        return "float"
    return str(array.dtype)


def _compare_strings(name: str, golden: Value, got: Value, worst: int) -> OutputDiff:
    if not (isinstance(golden, list) and isinstance(got, list)):
        was = "strings" if isinstance(golden, list) else "numbers"
        now = "strings" if isinstance(got, list) else "numbers"
        return OutputDiff(name, problem=f"was {was}, now {now}")
    if len(golden) != len(got):
        return OutputDiff(name, problem=f"had {len(golden)} strings, now {len(got)}")
    changed = [i for i, (a, b) in enumerate(zip(golden, got, strict=True)) if a != b]
    return OutputDiff(
        name,
        total=len(golden),
        moved=len(changed),
        exact=True,
        examples=len(golden),
        worst=[Worst((i,), golden[i], got[i]) for i in changed[:worst]],
    )


def _compare_exact(name, golden, got, examples, worst) -> OutputDiff:
    flat_g, flat_n = golden.reshape(-1), got.reshape(-1)
    changed = np.flatnonzero(flat_g != flat_n)
    rows = [
        Worst(_index(i, golden.shape), flat_g[i].item(), flat_n[i].item()) for i in changed[:worst]
    ]
    return OutputDiff(
        name, total=flat_g.size, moved=int(changed.size), exact=True, examples=examples, worst=rows
    )


def _compare_float(name, golden, got, tol, task, examples, worst, axis) -> OutputDiff:
    # Native float32 (or wider) arithmetic, in place: 10 million values in well under a
    # second. Close values subtract exactly in float32 (Sterbenz), so no float64 copy is needed.
    dtype = np.result_type(golden.dtype, got.dtype, np.float32)
    flat_g = golden.reshape(-1).astype(dtype, copy=False)
    flat_n = got.reshape(-1).astype(dtype, copy=False)
    size = flat_g.size
    diff = OutputDiff(name, total=size, examples=examples)
    if not size:
        return diff
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        abs_diff = np.subtract(flat_n, flat_g)
        np.abs(abs_diff, out=abs_diff)
        magnitude = np.abs(flat_g)
        limit = magnitude * dtype.type(tol.rtol)
        limit += dtype.type(tol.atol)
        moved_mask = abs_diff > limit
        mean_abs = float(abs_diff.mean(dtype=np.float64))
        nonfinite = not np.isfinite(mean_abs)
        if nonfinite:  # NaN/inf somewhere: NaN equals NaN, inf only itself
            same = (flat_g == flat_n) | (np.isnan(flat_g) & np.isnan(flat_n))
            abs_diff[same] = 0
            abs_diff[np.isnan(abs_diff)] = np.inf
            moved_mask = (abs_diff > limit) | np.isinf(abs_diff)  # an inf limit excuses nothing
            mean_abs = float(abs_diff.mean(dtype=np.float64))
        np.fmax(magnitude, np.finfo(dtype).tiny, out=magnitude)  # fmax: a NaN golden -> tiny
        rel_diff = np.divide(abs_diff, magnitude, out=magnitude)
        if nonfinite:
            rel_diff[np.isnan(rel_diff)] = np.inf  # inf / inf: an infinity that changed
        diff.max_abs = float(abs_diff.max())
        diff.mean_abs = mean_abs
        diff.max_rel = float(rel_diff.max())
        diff.mean_rel = float(rel_diff.mean(dtype=np.float64))
    moved_at = np.flatnonzero(moved_mask)
    diff.moved = int(moved_at.size)
    if diff.moved:
        # Worst = furthest beyond its own limit, so a large value inside rtol is not listed.
        picked = abs_diff[moved_at]
        with np.errstate(invalid="ignore"):
            excess = np.where(np.isinf(picked), np.inf, picked - limit[moved_at])
        count = min(worst, moved_at.size)
        top = np.argpartition(-excess, count - 1)[:count] if count < excess.size else None
        top = np.arange(excess.size) if top is None else top
        top = top[np.argsort(-excess[top], kind="stable")][:count]
        diff.worst = [
            Worst(_index(i, golden.shape), flat_g[i].item(), flat_n[i].item(), float(abs_diff[i]))
            for i in moved_at[top]
        ]
        diff.histogram = abs_diff_histogram(abs_diff, moved_mask)
    if _is_classifier(golden, task, axis):
        diff.flipped, diff.ties = _flips(golden, got, tol, axis.axis)
        diff.labels = golden.size // golden.shape[axis.axis]
    return diff


def abs_diff_histogram(abs_diff: np.ndarray, moved: np.ndarray, bins: int = 12) -> dict:
    """Absolute differences counted in decades (log-spaced bins), and how many in each bin are
    beyond their own tolerance.

    Returns ``{"decades": [k, ...], "counts": [...], "moved": [...], "zero": n, "nonfinite": n}``
    where bin ``k`` holds differences in ``[10**k, 10**(k+1))``; at most ``bins`` bins, the
    smallest differences folded into the first one.
    """
    finite = np.isfinite(abs_diff)
    positive = finite & (abs_diff > 0)
    result = {
        "decades": [],
        "counts": [],
        "moved": [],
        "zero": int(np.count_nonzero(finite & (abs_diff == 0))),
        "nonfinite": int(abs_diff.size - np.count_nonzero(finite)),
    }
    if not positive.any():
        return result
    exponents = np.floor(np.log10(abs_diff[positive].astype(np.float64))).astype(np.int64)
    top = int(exponents.max())
    low = max(int(exponents.min()), top - bins + 1)
    index = np.clip(exponents, low, top) - low
    result["decades"] = list(range(low, top + 1))
    result["counts"] = np.bincount(index, minlength=top - low + 1).tolist()
    result["moved"] = np.bincount(index[moved[positive]], minlength=top - low + 1).tolist()
    return result


def _flips(
    golden: np.ndarray, got: np.ndarray, tol: Tolerance, axis: int = -1
) -> tuple[int, int]:
    """Changed argmax labels (one per position: per pixel when the classes are on axis 1 of
    `[B, C, H, W]`), and how many of them the golden scored as a near-tie."""
    golden, got = np.moveaxis(golden, axis, -1), np.moveaxis(got, axis, -1)
    was, now = golden.argmax(axis=-1), got.argmax(axis=-1)
    changed = was != now
    flipped = int(np.count_nonzero(changed))
    if not flipped:
        return 0, 0
    scores = golden[changed].astype(np.float64)
    top = np.take_along_axis(scores, was[changed][..., None], axis=-1)[..., 0]
    new = np.take_along_axis(scores, now[changed][..., None], axis=-1)[..., 0]
    ties = np.count_nonzero(top - new <= tol.atol + tol.rtol * np.abs(top))
    return flipped, int(ties)


def _is_classifier(array: np.ndarray, task: Task, axis: _ClassAxis) -> bool:
    if task == "regression" or array.ndim < 2 or array.size == 0:
        return False
    if not -array.ndim <= axis.axis < array.ndim:
        return False
    width = array.shape[axis.axis]
    if width < 2 or (axis.classes is not None and width != axis.classes):
        return False
    return task == "classification" or array.ndim == 2


def _index(flat: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.unravel_index(int(flat), shape)) if shape else ()
