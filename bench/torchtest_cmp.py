"""Section 6: the training sanity check against torchtest's `test_suite`, same model and batch.

torchtest 0.5 (`pip install --no-deps torchtest==0.5`) sees a plain `nn.Module`, a loss
function and an optimizer; it is given the model's own `loss` and `configure_optimizers()`, so
a bug placed there is visible to it as well. Its variable-change, NaN and Inf tests are on.
"""

from __future__ import annotations

import tempfile
from typing import Any

from bench.common import alternate, best, context, paired_ratio, write_config

DATA = {"class": "bench.models:BenchData", "init_args": {"kind": "table", "batch_size": 64}}


def _torchtest_verdict(cls) -> tuple[bool, str]:
    """(caught, why) for torchtest's test_suite on a fresh seeded model and the first batch."""
    import torch
    from torchtest import test_suite

    from bench.models import BenchData

    data = BenchData("table", batch_size=64)
    data.setup()
    batch = next(iter(data.predict_dataloader()))  # dataset order, as the sanity check uses
    torch.manual_seed(0)
    model = cls()
    try:
        test_suite(
            model, model.loss, model.configure_optimizers(), list(batch),
            test_vars_change=True, test_nan_vals=True, test_inf_vals=True,
        )
    except Exception as exc:  # torchtest signals each finding with its own exception type
        return True, f"{type(exc).__name__}: {exc}"
    return False, ""


def _sanity_ctx(name: str, baseline_dir: str, settings: dict | None = None):
    config = write_config(
        {"sanity": settings or {}},
        model={"class": f"bench.models:{name}"},
        data=DATA,
        seeds=[0],
        baseline_dir=baseline_dir,
    )
    return context(config, "sanity")


def against_torchtest(quick: bool) -> dict[str, Any]:
    """Which broken variants each tool catches, and how long each takes on the healthy model."""
    try:
        import torchtest  # noqa: F401
    except ImportError:
        return {"skipped": "torchtest is not installed: pip install --no-deps torchtest==0.5"}
    from bench.models import BROKEN, SanityNet
    from mltest.checks import sanity

    baseline_dir = tempfile.mkdtemp(prefix="mltest-bench-baselines-")
    ctx, settings = _sanity_ctx("SanityNet", baseline_dir)
    ctx.update_baselines = True
    recorded = sanity.run(ctx, settings)  # the healthy model's baseline, as a repo would have
    ctx.update_baselines = False

    variants: dict[str, Any] = {}
    for label, cls in {"healthy": SanityNet, **BROKEN}.items():
        v_ctx, v_settings = _sanity_ctx(cls.__name__, baseline_dir)
        result = sanity.run(v_ctx, v_settings)
        absolute = {k: v for k, v in result.metrics["problems"].items() if k != "baseline"}
        caught, why = _torchtest_verdict(cls)
        variants[label] = {
            "mltest_sanity": result.status.value,
            "mltest_caught": result.status.value == "fail",
            "mltest_caught_without_baseline": bool(absolute),
            "mltest_summary": result.summary,
            "torchtest_caught": caught,
            "torchtest_message": why,
        }
    times = alternate(
        {
            "sanity": lambda: sanity.run(ctx, settings),
            "torchtest": lambda: _torchtest_verdict(SanityNet),
        },
        1 if quick else 5,
    )
    return {
        "probes": probe_costs(baseline_dir, 1 if quick else 5),
        "baseline_recorded": recorded.status.value,
        "sanity_s": best(times["sanity"]),
        "torchtest_s": best(times["torchtest"]),
        "ratio": paired_ratio(times["sanity"], times["torchtest"]),
        "variants": variants,
        "caught": {
            "mltest": sum(v["mltest_caught"] for k, v in variants.items() if k != "healthy"),
            "torchtest": sum(v["torchtest_caught"] for k, v in variants.items() if k != "healthy"),
            "of": len(BROKEN),
        },
    }


# The check as it was before the probes: one step, nothing else.
ONE_STEP = {"steps": 1, "gradient_check": False, "init_loss": False, "units": False}


def _plain_step_seconds(repeats: int) -> float:
    """One plain PyTorch training step of SanityNet on the first batch (forward, backward,
    Adam step): the unit the sanity check's cost is counted in."""
    import time

    import torch

    from bench.models import BenchData, SanityNet

    data = BenchData("table", batch_size=64)
    data.setup()
    x, y = next(iter(data.predict_dataloader()))
    torch.manual_seed(0)
    model = SanityNet()
    opt = model.configure_optimizers()
    times = []
    for _ in range(max(repeats, 3) * 10):
        started = time.perf_counter()
        opt.zero_grad()
        model.loss(model(x), y).backward()
        opt.step()
        times.append(time.perf_counter() - started)
    return best(times)


def probe_costs(baseline_dir: str, repeats: int) -> dict[str, Any]:
    """What the probes add to the sanity check on SanityNet: the check with one step and no
    probes, the default (3 steps and every probe), and the gradient check on its own."""
    from mltest.checks import sanity

    runs = {}
    for label, settings in {"one_step": ONE_STEP, "default": {}}.items():
        ctx, s = _sanity_ctx("SanityNet", baseline_dir, settings)
        runs[label] = (ctx, s)
    results = {}
    times = alternate(
        {label: (lambda c=c, s=s: results.setdefault("last", sanity.run(c, s)))
         for label, (c, s) in runs.items()},
        repeats,
    )
    default = sanity.run(*runs["default"])
    plain = _plain_step_seconds(repeats)
    one, full = best(times["one_step"]), best(times["default"])
    return {
        "one_step_s": one,
        "default_s": full,
        "ratio_default_vs_one_step": paired_ratio(times["default"], times["one_step"]),
        "gradient_check_s": default.metrics["gradient_check_seconds"],
        "plain_step_s": plain,
        "added_in_plain_steps": (full - one) / plain if plain else None,
        "default_status": default.status.value,
    }
