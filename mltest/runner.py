"""Run the configured checks and write the report; bad input becomes a report, never a crash."""

from __future__ import annotations

import datetime
import importlib
import platform
import subprocess
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mltest import __version__
from mltest.errors import CheckFailed, MltestError, describe
from mltest.report import CheckResult, Report, Status

ResultHook = Callable[[CheckResult], None]


def run_suite(
    config_path: Path | str,
    report_dir: Path | str,
    *,
    update_baselines: bool = False,
    only: list[str] | None = None,
    on_result: ResultHook | None = None,
    metadata: dict[str, Any] | None = None,
) -> Report:
    """Run every configured check and write report.json, report.md and junit.xml.

    Args:
        config_path: the mltest.yaml.
        report_dir: where the report files go (created if missing).
        update_baselines: record baselines instead of comparing with them.
        only: run just these checks (others are reported as skipped).
        on_result: called with each result as soon as it is known (console progress).
        metadata: facts about the run that only the caller knows (PR number, run link).

    Returns:
        The report. Its verdict's exit code is what CI should exit with.
    """
    started = time.perf_counter()
    report_dir = Path(report_dir)
    report = Report(suite="mltest", metadata={**_metadata(Path(config_path)), **(metadata or {})})
    try:
        _run_checks(report, Path(config_path), report_dir, update_baselines, only, on_result)
    except MltestError as exc:
        report.errors.append(str(exc))
    report.metadata["duration_s"] = round(time.perf_counter() - started, 3)
    write_report(report, report_dir)
    return report


def _run_checks(report, config_path, report_dir, update_baselines, only, on_result) -> None:
    # Imported here so `mltest --help` and the GitHub side never pay for torch.
    from mltest.baselines import BaselineStore
    from mltest.checks.base import CheckContext, Deadline
    from mltest.config import CHECK_MODULES, load_config
    from mltest.project import Project

    loaded = load_config(config_path)
    report.suite = loaded.config.suite
    report.metadata["seeds"] = list(loaded.config.seeds)
    report.metadata.update(_versions())
    if only:
        unknown = sorted(set(only) - set(CHECK_MODULES))
        if unknown:
            raise MltestError(
                f"--check {', '.join(unknown)}: no such check; known: {', '.join(CHECK_MODULES)}"
            )
    project = Project(loaded)
    baselines = BaselineStore(loaded.baseline_dir)
    shared: dict[str, Any] = {}
    for name, module_path in CHECK_MODULES.items():
        settings = loaded.checks.get(name)
        if settings is None or (only and name not in only):
            why = "not configured" if settings is None else "not selected with --check"
            result = CheckResult(name=name, kind=name, status=Status.SKIPPED, summary=why)
        else:
            ctx = CheckContext(
                name=name,
                loaded=loaded,
                project=project,
                baselines=baselines,
                update_baselines=update_baselines,
                deadline=Deadline(name, settings.time_budget_s),
                shared=shared,
            )
            result = _run_one(importlib.import_module(module_path), ctx, settings)
        report.checks.append(result)
        write_report(report, report_dir, json_only=True)  # nothing computed is lost
        if on_result:
            on_result(result)


def _run_one(module, ctx, settings) -> CheckResult:
    """Run one check; anything it raises becomes an error result that names the check."""
    started = time.perf_counter()
    try:
        result = module.run(ctx, settings)
    except CheckFailed as exc:
        result = CheckResult(
            ctx.name, ctx.name, Status.FAIL, exc.summary, details=exc.details, hint=exc.hint
        )
    except MltestError as exc:
        result = CheckResult(ctx.name, ctx.name, Status.ERROR, f"{ctx.name}: {exc}")
    except Exception as exc:  # the user's code raised: report it, keep the other checks going
        frames = traceback.format_exception(type(exc), exc, exc.__traceback__)
        result = CheckResult(
            ctx.name,
            ctx.name,
            Status.ERROR,
            f"{ctx.name}: the model code raised {describe(exc)}",
            details="```\n" + "".join(frames[-6:]).strip() + "\n```",
            hint="Fix the exception; the traceback's last frames are in the details.",
        )
    result.duration_s = round(time.perf_counter() - started, 3)
    return result


def write_report(report: Report, report_dir: Path, *, json_only: bool = False) -> None:
    """Write report.json and, unless json_only, report.md and junit.xml."""
    from mltest.render.junit import render_junit
    from mltest.render.markdown import render_markdown

    report.write_json(report_dir / "report.json")
    if not json_only:
        (report_dir / "report.md").write_text(render_markdown(report), encoding="utf-8")
        (report_dir / "junit.xml").write_text(render_junit(report), encoding="utf-8")


def _metadata(config_path: Path) -> dict[str, Any]:
    return {
        "mltest": __version__,
        "config": str(config_path),
        "started_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        **_git(config_path.resolve().parent),
    }


def _versions() -> dict[str, Any]:
    import pytorch_lightning
    import torch

    cuda = torch.version.cuda if torch.cuda.is_available() else None
    device = torch.cuda.get_device_name(0) if cuda else platform.processor() or "cpu"
    return {
        "torch": torch.__version__,
        "lightning": pytorch_lightning.__version__,
        "cuda": cuda,
        "device": device,
    }


def _git(directory: Path) -> dict[str, Any]:
    """Commit and branch when the config lives in a git checkout; nothing otherwise."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args], cwd=directory, capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    return {"git_sha": git("rev-parse", "HEAD"), "git_branch": git("branch", "--show-current")}
