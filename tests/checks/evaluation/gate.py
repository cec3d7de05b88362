"""Run the evaluation gate in this process on a project copy, as `mltest run` / `mltest baseline
update [--pin]` would (the worker's validate-then-run), with the baselines written directly."""

from __future__ import annotations

from pathlib import Path

from mltest.baselines import BaselineStore
from mltest.checks import evaluation
from mltest.checks.base import CheckContext, Deadline
from mltest.config import load_config
from mltest.project import Project
from tests.suites import forget_project_modules


def gate(config: Path, *, update: bool = False, pin: bool = False):
    """The evaluation check's result on `config`, after its validation."""
    forget_project_modules(config.parent)
    loaded = load_config(config)
    ctx = CheckContext(
        name="evaluation",
        loaded=loaded,
        project=Project(loaded),
        baselines=BaselineStore(loaded.baseline_dir),
        update_baselines=update,
        deadline=Deadline("evaluation", 600),
        pin_reference=pin,
    )
    settings = loaded.checks["evaluation"]
    evaluation.validate(ctx, settings)
    return evaluation.run(ctx, settings)


def cell(result, dataset: str, slice_name: str, metric: str) -> dict:
    return next(
        c for c in result.metrics["cells"]
        if (c["dataset"], c["slice"], c["metric"]) == (dataset, slice_name, metric)
    )
