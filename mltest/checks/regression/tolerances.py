"""Each output's tolerance: configured, widened across environments and by measured noise."""

from __future__ import annotations

from typing import Any

from mltest.checks.regression.settings import OutputTolerance, Settings
from mltest.errors import ConfigError

NOISE_MARGIN = 4.0  # measured training noise is one sample of it: allow this many times more


def check_per_output(settings: Settings, outputs: dict[str, Any]) -> None:
    """A tolerance for an output that does not exist is most likely a typo: say so."""
    from mltest.checks.regression.golden import is_extent

    names = sorted(n for n in outputs if not is_extent(n))
    unknown = sorted(set(settings.per_output) - set(names))
    if unknown:
        raise ConfigError(
            f"checks.regression.per_output: no output named {', '.join(map(repr, unknown))}; "
            f"the outputs are {', '.join(map(repr, names))}"
        )


def output_tolerances(
    settings: Settings, outputs: dict[str, Any], *, noise: dict[str, float], cross: bool
) -> dict[str, Any]:
    """Each output's tolerance: the configured one, widened to the cross-environment one when
    comparing with another environment's golden, and to NOISE_MARGIN times the training noise
    measured when the golden was recorded."""
    from mltest.checks.regression.diffs import Tolerance
    from mltest.checks.regression.golden import is_extent

    tolerances = {}
    for name in outputs:
        if is_extent(name):
            continue
        own = settings.per_output.get(name, OutputTolerance())
        rtol = own.rtol if own.rtol is not None else settings.rtol
        atol = own.atol if own.atol is not None else settings.atol
        if cross:
            rtol = max(rtol, settings.cross_environment.rtol)
            atol = max(atol, settings.cross_environment.atol)
        atol = max(atol, NOISE_MARGIN * float(noise.get(name, 0.0)))
        tolerances[name] = Tolerance(rtol=rtol, atol=atol)
    return tolerances


_COARSE_ATOL = 1e-2  # a noise-widened atol below this is not worth a notice on every run


def noise_notices(settings: Settings, noise: dict[str, float], tolerances: dict) -> list[str]:
    """Say where measured training noise, not the configured atol, set the tolerance: a noisy
    model under test makes the check coarser, and the user should know by how much."""
    widened = {
        name: tol.atol
        for name, tol in tolerances.items()
        if tol.atol > settings.atol and tol.atol == NOISE_MARGIN * float(noise.get(name, 0.0))
    }
    if not widened or max(widened.values()) < _COARSE_ATOL:  # normal for a trained model
        return []
    parts = ", ".join(f"`{n}` atol {a:.3g}" for n, a in sorted(widened.items()))
    return [
        f"the trained model under test is numerically noisy (two harmless re-trainings at "
        f"baseline update differed by up to {max(noise.values()):.3g}), so values are compared "
        f"with {parts}; more `model_under_test.epochs` or a checkpoint make the check finer"
    ]
