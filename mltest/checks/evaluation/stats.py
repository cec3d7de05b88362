"""Confidence intervals: the paired bootstrap over examples, and McNemar's exact test for two
classifiers' paired correctness. Pure numbers in, numbers out (torch for the resampling)."""

from __future__ import annotations

import hashlib
import math
import warnings
from collections.abc import Callable
from typing import Any


def resample_indices(members: Any, count: int, seed: int, key: str) -> Any:
    """`count` bootstrap resamples of `members` (example indices), shape (count, len).

    Seeded by `seed` and a stable hash of `key` (data set and slice), so each slice gets the
    same resamples on every run whatever else is configured.
    """
    import torch

    digest = int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:8], "big")
    gen = torch.Generator().manual_seed(digest & (2**63 - 1))
    picks = torch.randint(0, len(members), (count, len(members)), generator=gen)
    return members[picks]


def bootstrap(metric: Any, preds: Any, target: Any, resamples: Any) -> Any:
    """`metric(preds[rows], target[rows])` for every row of `resamples`: a float64 tensor.

    Small slices, whose cost is torchmetrics' per-call overhead, go through `metric.many`
    (many resamples in one call) where the metric has it, in chunks of about `CHUNK` values;
    larger ones one resample at a time, which is cheaper there (measured with torchmetrics
    1.9: one call per resample wins from about a thousand values a resample).
    """
    import torch

    out = torch.empty(len(resamples), dtype=torch.float64)
    many = getattr(metric, "many", None)
    values = max(1, target[:1].numel()) * max(1, resamples.shape[1])  # per resample
    with warnings.catch_warnings():  # a resample with one class makes AUROC warn; it is nan
        warnings.simplefilter("ignore")
        if many is None or values > BATCHED_UP_TO:
            for b, rows in enumerate(resamples):
                out[b] = metric(preds[rows], target[rows])
            return out
        step = max(1, CHUNK // values)
        for start in range(0, len(resamples), step):
            rows = resamples[start : start + step]
            out[start : start + len(rows)] = many(preds[rows], target[rows]).double()
    return out


BATCHED_UP_TO = 1000  # values per resample up to which `metric.many` is the faster path
CHUNK = 2_000_000  # values per batched call: bounded memory


def quietly(fn: Callable[[Any, Any], float], preds: Any, target: Any) -> float:
    """`fn(preds, target)` without torchmetrics' warnings about slices of one class."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(preds, target)


def interval(values: Any, level: float) -> tuple[float, float]:
    """The percentile interval of bootstrap values at `level` (NaN resamples left out)."""
    import torch

    finite = values[torch.isfinite(values)]
    if len(finite) == 0:
        return math.nan, math.nan
    alpha = (1 - level) / 2
    low, high = torch.quantile(finite, torch.tensor([alpha, 1 - alpha], dtype=finite.dtype))
    return float(low), float(high)


def mcnemar(candidate_ok: Any, reference_ok: Any, level: float) -> tuple[float, float, float]:
    """Accuracy difference (candidate - reference) of two classifiers on the same examples,
    with the exact conditional interval behind McNemar's test.

    Only the discordant examples carry information: `b` the reference got right and the
    candidate wrong, `c` the other way. Given m = b + c, c is binomial(m, p); the exact
    (Clopper-Pearson) interval for p maps to the difference (c - b) / n = m / n * (2p - 1).
    The interval excludes 0 exactly when McNemar's exact two-sided test rejects at 1 - level.

    Returns:
        (difference, low, high).
    """
    n = len(candidate_ok)
    b = int((reference_ok & ~candidate_ok).sum())
    c = int((candidate_ok & ~reference_ok).sum())
    m = b + c
    if n == 0:
        return math.nan, math.nan, math.nan
    if m == 0:
        return 0.0, 0.0, 0.0
    low_p, high_p = clopper_pearson(c, m, level)
    scale = m / n
    return (c - b) / n, scale * (2 * low_p - 1), scale * (2 * high_p - 1)


def clopper_pearson(successes: int, trials: int, level: float) -> tuple[float, float]:
    """The exact binomial interval for a proportion, by bisection on the binomial tails."""
    alpha = (1 - level) / 2
    low = 0.0 if successes == 0 else _solve(lambda p: _upper_tail(successes, trials, p) - alpha)
    high = 1.0 if successes == trials else _solve(
        lambda p: alpha - _lower_tail(successes, trials, p)
    )
    return low, high


def _solve(f: Callable[[float], float]) -> float:
    """The root of an increasing function on (0, 1)."""
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if f(mid) < 0:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _lower_tail(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ binomial(n, p)."""
    return _sum_pmf(range(0, k + 1), n, p)


def _upper_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ binomial(n, p)."""
    return _sum_pmf(range(k, n + 1), n, p)


def _sum_pmf(ks: range, n: int, p: float) -> float:
    import torch

    if p <= 0.0:
        return 1.0 if ks.start == 0 else 0.0
    if p >= 1.0:
        return 1.0 if ks.stop == n + 1 else 0.0
    k = torch.arange(ks.start, ks.stop, dtype=torch.float64)
    log_pmf = (
        math.lgamma(n + 1)
        - torch.lgamma(k + 1)
        - torch.lgamma(n - k + 1)
        + k * math.log(p)
        + (n - k) * math.log1p(-p)
    )
    return min(1.0, float(torch.logsumexp(log_pmf, 0).exp()))
