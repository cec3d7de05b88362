"""Likely causes that more than one check can see, named once so every check says the same.

A finding carries the cause's key (in the check's `metrics["causes"]`), its title leads the
message and its hint is the advice; a renderer may group failures of several checks by key.
Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Cause:
    """A likely cause behind a failure: a stable key, the words a person reads, the fix."""

    key: str
    title: str
    hint: str


NONDETERMINISTIC_PREDICTION = Cause(
    "nondeterministic prediction",
    "non-deterministic prediction",
    "predict_step must be deterministic in eval mode: look for dropout applied with "
    "training=True (`F.dropout(x, training=True)`), a module switched back to train mode in "
    "predict_step, or sampling without a fixed seed.",
)
