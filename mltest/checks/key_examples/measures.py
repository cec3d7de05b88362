"""Key examples for models whose output per example is an array, not a label: segmentation
masks, reconstructions, generated samples.

A row with a `measure` column compares the example's own output (the post-processed output of
`predict_step`, one array per example) instead of a label or score:

- `pixel_accuracy`: the share of positions whose label (argmax over the class axis, or the
  output itself when it holds labels) is `expected` (a mask, or one class for every
  position). mft: at least `at_least` (default 1.0); inv: agreement with the group
  reference's labels of at least `at_least`.
- `mse`, `mae`: the mean squared / absolute difference from `expected` (an array; default:
  the example's own input, for a reconstruction). mft: at most `at_most`; inv: the difference
  from the reference's output at most `at_most`.
- `mean`, `std`, `min`, `max`: that statistic of the output (a generated sample). mft: within
  `tolerance` of `expected`, or within `at_least` / `at_most`; inv: within `tolerance` of the
  reference's; dir: moves `up` / `down` from the reference's by more than `tolerance`.

`region: "y0:y1,x0:x1"` restricts any measure to a block of the trailing axes (after the class
axis is taken out): a per-region expectation such as "the top rows are background".
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from mltest.errors import ConfigError, ProjectError

LABELS = ("pixel_accuracy",)
DISTANCES = ("mse", "mae")
STATISTICS = ("mean", "std", "min", "max")
MEASURES = (*LABELS, *DISTANCES, *STATISTICS)


class Measured(NamedTuple):
    """A row's measure settings, validated."""

    measure: str
    region: tuple[slice, ...] | None = None
    at_least: float | None = None
    at_most: float | None = None


def parse(
    kind: str,
    measure: str | None,
    region: str | None,
    at_least: float | None,
    at_most: float | None,
    expected: Any,
    tolerance: float | None,
    at: str,
) -> Measured | None:
    """Validate a row's measure columns (None when the row has no `measure`).

    Raises:
        ConfigError: naming the row and the column, with what is allowed.
    """
    if measure is None:
        for column, value in (("region", region), ("at_least", at_least), ("at_most", at_most)):
            if value is not None:
                raise _fail(at, column, "applies to rows with a `measure`; add one or drop it")
        return None
    measure = measure.strip().lower()
    if measure not in MEASURES:
        raise _fail(at, "measure", f"got {measure!r}; allowed: {', '.join(MEASURES)}")
    if kind == "dir" and measure not in STATISTICS:
        raise _fail(at, "measure", f"a dir example moves a statistic ({', '.join(STATISTICS)})")
    if measure in DISTANCES and at_most is None and kind == "mft":
        raise _fail(at, "at_most", f"`{measure}` needs a bound, e.g. at_most: 0.05")
    if measure in LABELS and at_most is not None:
        raise _fail(at, "at_most", "pixel_accuracy takes `at_least` (default 1.0)")
    if measure in STATISTICS and kind == "mft":
        bounded = at_least is not None or at_most is not None
        if (expected is None) == (not bounded) or (expected is not None and tolerance is None):
            raise _fail(
                at, "expected", f"`{measure}` takes `expected` with `tolerance`, or "
                "`at_least`/`at_most`"
            )
    if measure in LABELS and kind == "mft" and expected is None:
        raise _fail(at, "expected", "pixel_accuracy needs the expected mask, or one class")
    return Measured(measure, parse_region(region, at) if region else None, at_least, at_most)


def check_group(members: list) -> None:
    """An inv group judged by a distance: every member but the reference needs `at_most`.

    Raises:
        ConfigError: naming the row.
    """
    for member in members[1:]:
        spec = member.measured
        if spec is not None and spec.measure in DISTANCES and spec.at_most is None:
            raise _fail(
                member.where, "at_most", f"`{spec.measure}` from the group's reference needs "
                "a bound, e.g. at_most: 0.01"
            )


def parse_region(text: str, at: str) -> tuple[slice, ...]:
    """`"0:8,4:12"` -> (slice(0, 8), slice(4, 12)); an empty bound is open."""
    slices = []
    for part in str(text).split(","):
        start, sep, stop = part.strip().partition(":")
        try:
            if not sep:
                raise ValueError
            slices.append(slice(int(start) if start else None, int(stop) if stop else None))
        except ValueError:
            raise _fail(at, "region", f"got {text!r}; write `y0:y1,x0:x1` (one per axis)") from None
    return tuple(slices)


def value(
    spec: Measured, output: Any, expected: Any, class_axis: int | None, fallback: Any = None
) -> float:
    """The measure of one example's output against `expected` (`fallback`: the input, for a
    reconstruction with no `expected`; the reference's output, for inv)."""
    import numpy as np

    out = np.asarray(output)
    if spec.measure in STATISTICS:
        values = _region(out, spec)
        return float(getattr(np, spec.measure)(values.astype(np.float64)))
    if spec.measure in LABELS:
        labels = _labels(out, class_axis)
        want = np.asarray(expected if expected is not None else fallback)
        if want.ndim and want.shape != labels.shape and want.ndim == labels.ndim + 1:
            want = _labels(want, class_axis)  # the reference's scores
        want = np.broadcast_to(want, labels.shape) if want.size == 1 else want
        if want.shape != labels.shape:
            raise ProjectError(f"the expected mask is shaped {list(want.shape)}, the predicted "
                               f"one {list(labels.shape)}")
        return float((_region(labels, spec) == _region(want, spec)).mean())
    want = np.asarray(expected if expected is not None else fallback, dtype=np.float64)
    got = out.astype(np.float64)
    if want.shape != got.shape and want.size == got.size:
        want = want.reshape(got.shape)  # a flattened reconstruction of a [1, 28, 28] image
    if want.shape != got.shape:
        raise ProjectError(f"expected an array shaped like the output {list(got.shape)}, got "
                           f"{list(want.shape)}")
    diff = _region(got, spec) - _region(want, spec)
    return float((diff**2).mean() if spec.measure == "mse" else np.abs(diff).mean())


def passes(spec: Measured, got: float, expected: Any, tolerance: float | None) -> bool:
    """mft: whether the measured value meets the row's expectation."""
    if not math.isfinite(got):
        return False
    if spec.measure in LABELS:
        return got >= (spec.at_least if spec.at_least is not None else 1.0)
    if spec.measure in STATISTICS and expected is not None:
        return abs(got - float(expected)) <= (tolerance or 0.0)
    low_ok = spec.at_least is None or got >= spec.at_least
    return low_ok and (spec.at_most is None or got <= spec.at_most)


def expectation(spec: Measured, expected: Any, tolerance: float | None) -> str:
    """What an mft row asks, in words: `pixel_accuracy >= 0.9`, `mean 0.2 ± 0.05`."""
    if spec.measure in STATISTICS and expected is not None:
        return f"{spec.measure} {float(expected):.4g} ± {tolerance or 0:g}"
    parts = []
    if spec.measure in LABELS:
        parts.append(f">= {spec.at_least if spec.at_least is not None else 1.0:g}")
    else:
        parts += [f">= {spec.at_least:g}"] if spec.at_least is not None else []
        parts += [f"<= {spec.at_most:g}"] if spec.at_most is not None else []
    where = " in the region" if spec.region else ""
    return f"{spec.measure}{where} {' and '.join(parts)}"


def _labels(out, class_axis: int | None):
    """Per-position labels: argmax over the class axis of scores; integer outputs as they are."""
    import numpy as np

    if np.issubdtype(out.dtype, np.integer) or out.dtype == bool:
        return out
    axis = 0 if class_axis is None else (class_axis - 1 if class_axis > 0 else class_axis)
    if out.ndim < 2:
        raise ProjectError("pixel_accuracy needs an output with a class axis (scores) or a mask")
    return out.argmax(axis=axis)


def _region(array, spec: Measured):
    """The region's block of the trailing axes (the whole array without a region)."""
    return array[(Ellipsis, *spec.region)] if spec.region else array


def _fail(at: str, column: str, message: str) -> ConfigError:
    return ConfigError(f"{at}, column `{column}`: {message}")
