"""The supervisor: the process that decides. It never imports the user's code.

It validates the config, starts a worker process (without secrets) that runs the checks, takes
each result as it streams in, enforces the time budgets by stopping the worker, handles
SIGINT/SIGTERM, commits the baselines the worker staged, and alone writes the report. A worker
that ends, hangs or crashes gives an ERROR for the check it was running, and the remaining
checks go on in a fresh worker: the verdict can only be PASS when every configured check
reported a pass to this process.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from mltest.channel import ChannelError, Job
from mltest.errors import MltestError, describe
from mltest.process_guard import Cancellation, protect_from_other_processes
from mltest.report import CheckResult, Report, Status
from mltest.run_files import (
    PATCH_LIMIT,
    read_text,
    remove_stale_outputs,
    shown_path,
    text_files,
    unified_diff,
    write_report,
)
from mltest.run_metadata import run_metadata, suite_name_from_file, worker_facts
from mltest.worker_handle import (
    WorkerProcess,
    read_stack,
    user_frame_in_stack,
    worker_environment,
)

ResultHook = Callable[[CheckResult], None]
_TIMEOUT_GRACE_S = 1.0  # past the budget, so the worker's own (gentler) timeout can come first
_FACT_KEYS = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


def run_suite(
    config_path: Path | str,
    report_dir: Path | str,
    *,
    update_baselines: bool = False,
    only: list[str] | None = None,
    on_result: ResultHook | None = None,
    metadata: dict[str, Any] | None = None,
    max_time_s: float | None = None,
    allow_outside_repo: bool = False,
    pass_env: Iterable[str] = (),
    environ: Mapping[str, str] | None = None,
    pin_reference: bool = False,
) -> Report:
    """Run every configured check in a worker process and write report.json, .md and junit.xml.

    Args:
        config_path: the mltest.yaml.
        report_dir: where the report files go (created if missing).
        update_baselines: record baselines instead of comparing with them.
        only: run just these checks (others are reported as skipped).
        on_result: called with each result as soon as it is known (console progress).
        metadata: facts about the run that only the caller knows (PR number, run link).
        max_time_s: a budget for the whole suite; the check running when it ends is an error.
        allow_outside_repo: let baselines be written outside the config's repository.
        pass_env: names of extra environment variables the worker may see.
        environ: the environment the worker's is filtered from (default: this process's).
        pin_reference: with `update_baselines`, the evaluation gate re-pins its reference.

    Returns:
        The report. Its verdict's exit code is what CI should exit with.
    """
    run = _SuiteRun(
        Path(config_path),
        Path(report_dir),
        update_baselines=update_baselines,
        only=only,
        on_result=on_result,
        metadata=metadata or {},
        max_time_s=max_time_s,
        allow_outside_repo=allow_outside_repo,
        pin_reference=pin_reference and update_baselines,
        worker_env=worker_environment(os.environ if environ is None else environ, pass_env),
    )
    return run.run()


class _SuiteRun:
    """One `run_suite` call: the plan, the workers it starts and the report it writes."""

    def __init__(self, config_path: Path, report_dir: Path, **options: Any):
        self.config_path = config_path
        self.report_dir = report_dir
        self.options = options
        self.on_result: ResultHook | None = options["on_result"]
        self.report = Report(
            suite=suite_name_from_file(config_path),
            metadata={**run_metadata(config_path), **options["metadata"]},
            complete=False,
        )
        self.cancel = Cancellation()
        self.suite_deadline = math.inf
        self.order: list[str] = []  # every check, in run order
        self.skipped: dict[str, str] = {}  # check -> why it does not run

    def run(self) -> Report:
        started = time.monotonic()
        protect_from_other_processes()
        if self.options["max_time_s"]:
            self.suite_deadline = started + self.options["max_time_s"]
        remove_stale_outputs(self.report_dir)
        self._save(final=False)
        with self.cancel, tempfile.TemporaryDirectory(prefix="mltest-run-") as scratch:
            try:
                plan, loaded = self._plan()
                self._run_plan(plan, loaded, Path(scratch))
            except MltestError as exc:
                self.report.errors.append(str(exc))
            except Exception as exc:  # a bug in mltest: keep what was computed, say so
                self.report.errors.append(f"mltest failed while supervising: {describe(exc)}")
        self.report.cancelled = self.cancel.signal is not None
        self.report.metadata["duration_s"] = round(time.monotonic() - started, 3)
        self.report.complete = True
        self._save(final=True)
        return self.report

    # --- what to run --------------------------------------------------------------------------

    def _plan(self) -> tuple[list[tuple[str, Any, str]], Any]:
        """(check, settings, why skipped) in run order, validated before anything starts."""
        from mltest.config import CHECK_MODULES, check_write_paths, load_config

        loaded = load_config(self.config_path)
        self.report.suite = loaded.config.suite
        self.report.metadata["seeds"] = list(loaded.config.seeds)
        check_write_paths(loaded, allow_outside=self.options["allow_outside_repo"])
        only = self.options["only"]
        if only:
            unknown = sorted(set(only) - set(CHECK_MODULES))
            if unknown:
                raise MltestError(
                    f"--check {', '.join(unknown)}: no such check; known: "
                    f"{', '.join(CHECK_MODULES)}"
                )
        plan = []
        for name in CHECK_MODULES:
            settings = loaded.checks.get(name)
            why = ""
            if settings is None:
                why = "not configured"
            elif only and name not in only:
                why = "not selected with --check"
            plan.append((name, settings, why))
        return plan, loaded

    def _run_plan(self, plan, loaded, scratch: Path) -> None:
        budgets = {name: settings.time_budget_s for name, settings, why in plan if not why}
        pending = [name for name, _, why in plan if not why]
        self.skipped = {name: why for name, _, why in plan if why}
        self.order = [name for name, _, _ in plan]
        staging = scratch / "staging"
        while pending and self.cancel.signal is None:
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir()
            job = Job(
                config=str(self.config_path.resolve()),
                checks=list(pending),
                update_baselines=self.options["update_baselines"],
                staging=str(staging),
                stack_file=str(scratch / f"stack-{len(pending)}.txt"),
                extra={
                    "network": os.environ.get("MLTEST_NETWORK", ""),
                    "pin_reference": self.options["pin_reference"],
                },
            )
            worker = WorkerProcess(job, self.options["worker_env"])
            try:
                self._drive(worker, pending, budgets, loaded, staging)
            finally:
                worker.stop()
        if self.cancel.signal is not None:
            for name in pending:
                self._add(_result(name, Status.SKIPPED, f"not run: {self._cancelled_by()}"))
            pending.clear()
        self._emit_skipped(upto=None)

    # --- one worker -------------------------------------------------------------------------

    def _drive(self, worker, pending, budgets, loaded, staging) -> None:
        """Feed results from `worker` into the report until it is done, dies or is stopped."""
        current: str | None = None
        # Until the first `start`, the worker imports the project and validates every check:
        # user code, so it runs on the first check's budget.
        check_deadline = time.monotonic() + budgets[pending[0]] + _TIMEOUT_GRACE_S
        while True:
            if self.cancel.signal is not None:
                worker.stop()
                if current:
                    pending.remove(current)
                    self._add(_result(current, Status.ERROR, f"{current}: {self._cancelled_by()}"))
                return
            try:
                messages, state = worker.messages(min(check_deadline, self.suite_deadline))
            except ChannelError as exc:
                worker.stop()
                bad = f"sent a bad message ({exc})"
                self._worker_lost(worker, current or pending[0], pending, bad)
                return
            for message in messages:
                kind = message["type"]
                if kind == "facts":
                    self.report.metadata.update(worker_facts(message.get("facts")))
                elif kind == "start":
                    current = message.get("check")
                    if not pending or current != pending[0]:
                        worker.stop()
                        bad = f"started {current!r} out of turn"
                        self._worker_lost(worker, pending[0], pending, bad)
                        return
                    check_deadline = time.monotonic() + budgets[current] + _TIMEOUT_GRACE_S
                elif kind == "result":
                    try:
                        result = CheckResult.from_dict(message["result"])
                    except (KeyError, TypeError, ValueError) as exc:
                        worker.stop()
                        self._worker_lost(
                            worker, current or pending[0], pending, f"sent a bad result ({exc})"
                        )
                        return
                    if current is None:
                        worker.stop()
                        self._worker_lost(worker, pending[0], pending, "sent a result out of turn")
                        return
                    result.name = result.kind = current  # the worker cannot rename a check
                    self._commit(staging / current, result, loaded)
                    pending.remove(current)
                    self._add(result)
                    current = None  # the next check's budget already covers the gap
                    if pending:
                        check_deadline = time.monotonic() + budgets[pending[0]] + _TIMEOUT_GRACE_S
                elif kind == "suite_error":
                    worker.stop()
                    self.report.errors.append(str(message.get("message", ""))[:4000])
                    pending.clear()
                    return
                elif kind == "done":
                    worker.stop()
                    if pending:
                        self._worker_lost(worker, pending[0], pending, "said it was done too early")
                    return
            if state == "closed":
                how = worker.how_it_ended()
                worker.stop()
                if pending:
                    self._worker_lost(worker, current or pending[0], pending, how, stack=True)
                return
            if state == "timeout":
                self._stop_for_time(worker, current, pending, budgets, check_deadline)
                return

    def _stop_for_time(self, worker, current, pending, budgets, check_deadline) -> None:
        stack = worker.stack()
        suite_ran_out = self.suite_deadline <= check_deadline
        worker.stop()
        name = current or pending[0]
        where = user_frame_in_stack(stack)
        at = f" (it was at {where})" if where else ""
        if suite_ran_out:
            summary = (
                f"{name}: stopped because the suite's time budget of "
                f"{self.options['max_time_s']:g} s (--max-time) ran out{at}; raise --max-time "
                "or make the checks cheaper"
            )
        else:
            summary = (
                f"check `{name}` ran past its time budget of {budgets[name]:g} s "
                f"(checks.{name}.time_budget_s) and was stopped{at}; raise the budget, or find "
                "what blocks (a dataloader deadlock, a hung collective, a sleep)"
            )
        pending.remove(name)
        self._add(_result(name, Status.ERROR, summary, details=_stack_details(stack)))
        if suite_ran_out:
            for other in list(pending):
                pending.remove(other)
                self._add(_result(other, Status.SKIPPED, "not run: --max-time ran out"))

    def _worker_lost(self, worker, name: str, pending: list[str], how: str, stack=False) -> None:
        """ERROR for `name`: the worker ended (or misbehaved) while it was that check's turn."""
        text = read_stack(Path(worker.job.stack_file)) if stack else ""
        where = user_frame_in_stack(text) if text else ""
        at = f" at {where}" if where else ""
        summary = (
            f"{name}: the worker process that runs the model code {how} during this check{at}; "
            "mltest never ends a worker mid-check, so the model code (or native code it called) "
            "did. The remaining checks ran in a fresh worker"
        )
        pending.remove(name)
        self._add(_result(name, Status.ERROR, summary, details=_stack_details(text)))

    # --- results and files --------------------------------------------------------------------

    def _commit(self, staging: Path, result: CheckResult, loaded) -> None:
        """Move what the worker staged for this check into the baseline folder (atomically)."""
        from mltest.baselines import commit_staged
        from mltest.config import check_write_paths

        try:  # checked again: in host mode the worker could have swapped in a link meanwhile
            target = check_write_paths(loaded, allow_outside=self.options["allow_outside_repo"])
            folder = target["baseline_dir"]
            before = text_files(folder, staging)
            written = commit_staged(staging, folder)
        except MltestError as exc:
            result.status = Status.ERROR
            result.summary = f"{result.name}: its baselines could not be written: {exc}"
        else:
            if written:
                self._record_written(folder, written, before)
        shutil.rmtree(staging, ignore_errors=True)

    def _record_written(self, folder: Path, written: list[Path], before: dict[str, str]) -> None:
        """Run metadata for `baselines: update`: which files changed, and a patch of the text."""
        meta = self.report.metadata
        meta["baseline_dir"] = str(folder)
        files = meta.setdefault("baseline_files", [])
        files += [str(path) for path in written if str(path) not in files]
        patch = meta.get("baseline_patch", "")
        for path in written:
            if str(path) in before:
                new = read_text(folder / path)
                patch += unified_diff(before[str(path)], new, shown_path(folder / path))
        if patch:
            meta["baseline_patch"] = patch[:PATCH_LIMIT]

    def _add(self, result: CheckResult) -> None:
        """Append a result (after the skipped checks that come before it) and save."""
        if result.name not in self.skipped:
            self._emit_skipped(upto=result.name)
        self.report.checks.append(result)
        self._save(final=False)  # nothing computed is lost
        if self.on_result:
            self.on_result(result)

    def _emit_skipped(self, upto: str | None) -> None:
        """Report skipped checks that come before `upto` in run order (all, when None)."""
        done = {c.name for c in self.report.checks}
        for name in self.order:
            if name == upto:
                return
            if name in self.skipped and name not in done:
                self._add(_result(name, Status.SKIPPED, self.skipped[name]))

    def _cancelled_by(self) -> str:
        return f"the run was cancelled ({self.cancel.signal})"

    def _save(self, *, final: bool) -> None:
        write_report(self.report, self.report_dir, json_only=not final)


def _result(name: str, status: Status, summary: str, details: str = "") -> CheckResult:
    return CheckResult(name=name, kind=name, status=status, summary=summary, details=details)


def _stack_details(stack: str) -> str:
    if not stack:
        return ""
    return "Python stacks of the worker when it was stopped:\n\n```\n" + stack + "\n```"
