"""What the cause-finding costs, per family, on the correct model (in process, best of rounds):

- the sanity check as configured (3 steps, every probe; the causal probe where the family sets
  it) against the same check with its optional probes off (`steps: 1`, `gradient_check`,
  `init_loss`, `units`, `causal` false). The loss-input and step-count probes have no switch:
  they run in both, so their own cost is not in the difference;
- the regression check recording its golden outputs (`baseline update`, training the model
  under test as a real run does) with and without the module trace beside them, and the trace
  alone;
- a failing regression check (a bug variant of the family whose outputs moved, its model under
  test already trained) with and without tracing the failure to a module. "Without" replaces
  the trace function for the measurement only.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import Any

from bench.common import alternate, best, context, paired_ratio

ROUNDS = 3
PROBES_OFF = {"steps": 1, "gradient_check": False, "init_loss": False, "units": False,
              "causal": False}  # fmt: skip


def cost(config: Path, workdir: Path, failing: Path | None = None) -> dict[str, Any]:
    """The figures for one family: `config` is its correct project, `failing` a variant's
    project whose regression check fails (None: that part is skipped)."""
    out = {**sanity_cost(config), **record_cost(config, workdir / "cost")}
    if failing is not None:
        out.update(localise_cost(failing))
    return out


def sanity_cost(config: Path) -> dict[str, Any]:
    from mltest.checks import sanity

    ctx, settings = context(config, "sanity")
    off = settings.model_copy(update=PROBES_OFF)
    sanity.run(ctx, settings), sanity.run(ctx, off)  # warm-up: imports, first allocations
    times = alternate(
        {"probes": lambda: sanity.run(ctx, settings), "off": lambda: sanity.run(ctx, off)}, ROUNDS
    )
    return _pair("sanity", times["probes"], times["off"], "probes", "probes_off")


def record_cost(config: Path, copy: Path) -> dict[str, Any]:
    """Golden outputs recorded with and without the trace, in a copy of the project (recording
    writes its baseline folder); each round builds a fresh context, so each trains the model
    under test as a real run does. Also the trace alone (one traced prediction of the fixed
    inputs at the fresh init), which is what recording adds."""
    from mltest.checks import regression
    from mltest.checks.regression import trace
    from mltest.checks.regression.check import _load_inputs

    shutil.copytree(config.parent, copy)

    def record(traced: bool) -> None:
        ctx, settings = context(copy / config.name, "regression")
        ctx.update_baselines = True
        if traced:
            regression.run(ctx, settings)
            return
        with _replaced(trace, "record_trace", lambda *a: (None, [])):
            regression.run(ctx, settings)

    record(True)  # warm-up
    times = alternate({"traced": lambda: record(True), "untraced": lambda: record(False)},
                      ROUNDS)  # fmt: skip
    out = _pair("regression_record", times["traced"], times["untraced"], "traced", "untraced")
    ctx, settings = context(copy / config.name, "regression")
    batches = _load_inputs(ctx, settings).batches
    trace.trace_prediction(ctx, batches)  # warm-up
    alone = alternate({"trace": lambda: trace.trace_prediction(ctx, batches)}, ROUNDS)
    return {**out, "module_trace_s": round(best(alone["trace"]), 3)}


def localise_cost(failing: Path) -> dict[str, Any]:
    from mltest.checks import regression
    from mltest.checks.regression import trace

    # The model under test is trained once per context: the rounds time the prediction, the
    # comparison and (traced) the trace and its reading against the golden's.
    ctx, settings = context(failing, "regression")
    first = regression.run(ctx, settings)  # also warms up; must be the failure it times
    if first.status.value != "fail" or "localisation" not in first.metrics:
        return {"regression_failure": f"not timed: {first.status.value}: {first.summary[:200]}"}

    def unlocalised():
        with _replaced(trace, "localise", lambda *a, **k: "not traced (cost measurement)"):
            regression.run(ctx, settings)

    times = alternate({"traced": lambda: regression.run(ctx, settings), "untraced": unlocalised},
                      ROUNDS)  # fmt: skip
    out = _pair("regression_failure", times["traced"], times["untraced"], "traced", "untraced")
    return {**out, "regression_failure_variant": failing.parent.name}


def _pair(name: str, a: list[float], b: list[float], a_name: str, b_name: str) -> dict[str, Any]:
    return {
        f"{name}_{a_name}_s": round(best(a), 3),
        f"{name}_{b_name}_s": round(best(b), 3),
        f"{name}_ratio": round(paired_ratio(a, b), 2),
    }


@contextlib.contextmanager
def _replaced(module: Any, name: str, value: Any):
    saved = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, saved)
