"""`mltest init`'s measuring half, run in the worker: what the project is and what it can do.

The supervisor starts a worker with a `Job` whose `extra["explore"]` holds the options; this
module imports the user's model and data module (only here, never in the supervisor), then:

1. reads the task kind (`mltest.checks.task`: the config's `task:`, else the loss);
2. trains every seed for the exploration budget through the memorization check's own fit,
   with a target that is never met, and keeps each seed's curve of the quantity a target
   would judge (the loss; the built-in `sample_gap` for a GAN without a validation_step);
3. runs `sanity` and `regression` once as `mltest baseline update` would (their files go to a
   scratch folder nobody commits), so init writes only checks that run on this project and
   says why it left one out.

It sends `facts`, then one `result` for the pseudo-check `init` whose metrics hold all of it,
then `done`; `suite_error` when the project does not load.
"""

from __future__ import annotations

import importlib
import math
from pathlib import Path
from typing import Any

from mltest.channel import Job, Sender
from mltest.errors import CheckFailed, MltestError, describe
from mltest.report import CheckResult, Status

NAME = "init"
# Never met, so every seed trains for the whole budget; tiny rather than 0 so that a loss that
# is exactly 0 from the start is still found ("met before training").
_UNREACHABLE = 1e-12
_DEPTH = 100.0  # a loss falls this factor below its value at init before a seed stops early


def explore(job: Job, sender: Sender) -> None:
    """Run the exploration `job.extra["explore"]` describes and send its result."""
    from mltest.baselines import BaselineStore
    from mltest.checks.base import CheckContext, Deadline
    from mltest.config import load_config
    from mltest.engine import environment_facts
    from mltest.project import Project

    options = job.extra["explore"]
    loaded = load_config(job.config)
    sender.send("facts", facts=environment_facts(loaded.config.trainer))
    try:
        project = Project(loaded)
    except MltestError as exc:
        sender.send("suite_error", message=str(exc))
        return
    shared: dict[str, Any] = {}

    def context(name: str) -> CheckContext:
        return CheckContext(
            name=name,
            loaded=loaded,
            project=project,
            baselines=BaselineStore(loaded.baseline_dir, staging=Path(job.staging) / name),
            update_baselines=True,
            deadline=Deadline(name, float(options["time_budget_s"])),
            shared=shared,
        )

    sender.send("start", check=NAME)
    try:
        metrics = _explore(context, options)
    except MltestError as exc:
        result = CheckResult(NAME, NAME, Status.ERROR, str(exc))
    except Exception as exc:  # the model code raised while it was explored
        result = CheckResult(
            NAME, NAME, Status.ERROR, f"exploring the model ran its code, which raised "
            f"{describe(exc)}"
        )
    else:
        result = CheckResult(NAME, NAME, Status.PASS, "explored", metrics=metrics)
    sender.send("result", result=result.to_dict())


def _explore(context, options: dict[str, Any]) -> dict[str, Any]:
    from mltest.checks.task import task_of
    from mltest.config import CHECK_MODULES

    ctx = context("memorization")
    task = task_of(ctx)
    model = ctx.project.new_model(ctx.seeds[0])
    manual = not getattr(model, "automatic_optimization", True)
    memorization = importlib.import_module(CHECK_MODULES["memorization"])
    judge = "samples" if manual else "training_step"
    target = (
        {"metric": "sample_gap", "at_most": _UNREACHABLE}
        if judge == "samples"
        else {"loss_below": _UNREACHABLE}
    )
    settings = memorization.Settings.model_validate(
        {
            "batches": options["batches"],
            "max_epochs": options["max_epochs"],
            "target": target,
            "judge": judge,
        }
    )
    memorization.validate(ctx, settings)  # refuses, e.g., samples without a latent shape
    if judge == "training_step":
        deep = memorization.Target(loss_below=_deep_loss(ctx, memorization, options))
        settings = settings.model_copy(update={"target": deep})
    runs = memorization.explore(ctx, settings)
    found: dict[str, Any] = {
        "task": {
            "kind": task.kind,
            "class_axis": task.class_axis,
            "classes": task.classes,
            "described": task.describe(),
        },
        "manual_optimization": manual,
        "scheduled": _scheduled(model),
        "judge": judge,
        "quantity": settings.target.quantity,
        "seeds": [r.seed for r in runs],
        "curves": {str(r.seed): r.curve for r in runs},
        "problems": {str(r.seed): r.problem for r in runs if r.nonfinite or r.met_before_training},
        "seconds": {str(r.seed): round(r.seconds, 2) for r in runs},
        "checks": {},
    }
    for name in ("sanity", "regression"):
        if name == "regression" and task.kind == "generative":
            found["checks"][name] = {
                "status": "skipped",
                "summary": "a generative model's predict_step takes latents, which the data "
                "module does not give; give `checks.regression.inputs.file` (.safetensors) "
                "with fixed latents to compare generated samples",
            }
            continue
        found["checks"][name] = _try_check(context(name), CHECK_MODULES[name])
    return found


def _deep_loss(ctx, memorization, options: dict[str, Any]) -> float:
    """Where a seed's exploration may stop: a loss `_DEPTH` times below the lowest loss at
    init (no target init proposes is that low: it needs margin above the settled value), so a
    model that memorizes fast is not trained for the whole budget. Read by judging each fresh
    seed once (a target met at init stops a fit before its first step)."""
    probe = memorization.Settings.model_validate(
        {"batches": options["batches"], "max_epochs": 1, "target": {"loss_below": 1e300}}
    )
    starts = [r.initial_loss for r in memorization.explore(ctx, probe)]
    if not all(s is not None and math.isfinite(s) and s > 0 for s in starts):
        return _UNREACHABLE
    return min(starts) / _DEPTH


def _try_check(ctx, module_name: str) -> dict[str, str]:
    """Validate and run a check with its default settings as `baseline update` would; its
    status and summary (an error's reason is why init leaves it out)."""
    module = importlib.import_module(module_name)
    try:
        settings = module.Settings()
        validate = getattr(module, "validate", None)
        if validate is not None:
            validate(ctx, settings)
        result = module.run(ctx, settings)
    except CheckFailed as exc:
        return {"status": "fail", "summary": exc.summary}
    except MltestError as exc:
        return {"status": "error", "summary": str(exc)}
    except Exception as exc:
        return {"status": "error", "summary": f"the model code raised {describe(exc)}"}
    return {"status": result.status.value, "summary": result.summary}


def _scheduled(model: Any) -> bool:
    """Whether `configure_optimizers` returns a learning-rate scheduler (or cannot be called
    outside a Trainer): its schedule may then depend on the Trainer's `max_epochs`, and init
    keeps the budget the curves were measured with."""
    try:
        configured = model.configure_optimizers()
    except Exception:
        return True
    if isinstance(configured, dict):
        return configured.get("lr_scheduler") is not None
    if isinstance(configured, (list, tuple)) and len(configured) == 2:
        first, second = configured
        if isinstance(first, (list, tuple)):
            return bool(second)
    if isinstance(configured, (list, tuple)):
        return any(isinstance(c, dict) and c.get("lr_scheduler") for c in configured)
    return False
