"""The probes that watch the fit through callbacks of their own, beside the step's."""

from __future__ import annotations

from mltest.checks.sanity.obs import StepObs
from mltest.checks.sanity.probes.causal import CausalProbe
from mltest.checks.sanity.probes.gan import GanWatch
from mltest.checks.sanity.probes.loss_growth import ScaleWatch
from mltest.checks.sanity.probes.loss_inputs import LossInputWatch


def callbacks(obs: StepObs, settings) -> list:
    """The callbacks the settings turn on; each has `error` (raised after the fit), or None."""
    added = [ScaleWatch(obs, settings.input_key), LossInputWatch(obs, settings.input_key)]
    if settings.gan:
        added.append(GanWatch(obs))  # it watches only with several optimizers
    if settings.causal:
        added.append(CausalProbe(obs, settings))
    return added
