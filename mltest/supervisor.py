"""The supervisor: the process that decides. It never imports the user's code.

It validates the config and the baselines, starts a worker process (without secrets) that
runs the checks, takes each result as it streams in, owns every deadline and stops the worker
when one passes, handles SIGINT/SIGTERM, commits the baselines the worker staged, and alone
writes the report. A worker that ends, hangs, is stopped or misbehaves gives an ERROR for the
check it was running, and the remaining checks go on in a fresh worker; when a worker ends,
everything it started ends too. The verdict can only be PASS when every configured check
reported a pass to this process, and at least one did. Every path ends in a final report with
an exit code; a failure of the supervisor itself is an error (exit 2), never a traceback.
"""

from __future__ import annotations

import math
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from mltest.baseline_commit import commit_check
from mltest.channel import ChannelError, Job
from mltest.errors import MltestError, describe
from mltest.process_guard import Cancellation, protect_from_other_processes
from mltest.process_tree import Containment
from mltest.report import CheckResult, Report, Status, Verdict
from mltest.run_files import ReportWriter
from mltest.run_metadata import run_metadata, suite_name_from_file, worker_facts
from mltest.run_plan import RunPlan, make_plan
from mltest.runner_files import RunnerFiles
from mltest.worker_handle import (
    STOPPED_LIMIT_S,
    WorkerProcess,
    read_stack,
    user_frame_in_stack,
)
from mltest.worker_results import BadResult, result_from_worker

ResultHook = Callable[[CheckResult], None]
_TIMEOUT_GRACE_S = 1.0  # past the budget, so the worker's own (gentler) timeout can come first
_CANCEL_GRACE_S = 0.5  # between SIGTERM and SIGKILL for the worker of a cancelled run
# Why a worker was lost, as the check's summary says it.
_ENDED_BY_ITSELF = (
    "mltest never ends a worker mid-check, so the model code (or native code it called) did"
)
_STOPPED_FROM_OUTSIDE = (
    "the model code cannot send stop signals, so a debugger or another process on the machine "
    "did"
)
_SENT_BY_MODEL = "the model code runs in that process and can write to its pipe"


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
    allow_secret_env: Iterable[str] = (),
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
        pass_env: environment entries for the worker beyond the allow-list: `NAME` (copied
            from `environ`) or `NAME=value` (mltest.env_request; a refused one is exit 2).
        environ: the environment the worker's is filtered from, and where the GitHub runner's
            file commands are named (default: this process's).
        allow_secret_env: names that look like credentials and may be passed all the same.
        pin_reference: with `update_baselines`, the evaluation gate re-pins its reference.

    Returns:
        The report. Its verdict's exit code is what CI should exit with.
    """
    source = os.environ if environ is None else environ
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
        env_entries=(tuple(pass_env), tuple(allow_secret_env)),
        environ=dict(source),
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
        self.plan = RunPlan(())
        self.writer: ReportWriter | None = None
        self.loaded: Any = None
        self.worker_env: Any = None  # env_request.WorkerEnv, once the plan is made
        # Under GitHub Actions the worker's output is shown with workflow commands paused.
        actions = options["environ"].get("GITHUB_ACTIONS") == "true"
        self.pause_token = secrets.token_hex(16) if actions else None

    def run(self) -> Report:
        started = time.monotonic()
        protect_from_other_processes()
        if self.options["max_time_s"]:
            self.suite_deadline = started + self.options["max_time_s"]
        with self.cancel:  # until the final report is written: a signal never cuts it short
            self.writer = ReportWriter(self.report, self.report_dir)
            if self.writer.folder is not None:
                self.writer.save(final=False)
                self._supervise()
            self.report.cancelled = self.cancel.signal is not None
            self.report.metadata["duration_s"] = round(time.monotonic() - started, 3)
            self.report.complete = True
            self._explain_verdict()
            self.writer.save(final=True)
            self.writer.close()
        return self.report

    def _supervise(self) -> None:
        """Plan and run the checks; afterwards nothing of the workers is left running."""
        runner_files = RunnerFiles.snapshot(self.options["environ"])
        try:
            with Containment() as tree, tempfile.TemporaryDirectory(prefix="mltest-") as scratch:
                try:
                    self._plan()
                    self._run_plan(tree, Path(scratch))
                except MltestError as exc:
                    self.report.errors.append(str(exc))
        except Exception as exc:  # a bug in mltest: keep what was computed, say so
            self.report.errors.append(f"mltest failed while supervising: {describe(exc)}")
        self.report.errors += runner_files.restore()
        moved = self.writer.replaced()
        if moved:
            self.report.errors.append(moved)

    # --- what to run --------------------------------------------------------------------------

    def _plan(self) -> None:
        """The plan, the config and the baselines validated before any worker starts."""
        from mltest.baselines import read_baselines
        from mltest.config import CHECK_MODULES, check_write_paths, load_config
        from mltest.env_request import EnvRequest, build_worker_env

        request = EnvRequest.parse(*self.options["env_entries"])
        self.worker_env = build_worker_env(self.options["environ"], request)
        loaded = load_config(self.config_path)
        self.report.suite = loaded.config.suite
        self.report.metadata["seeds"] = list(loaded.config.seeds)
        check_write_paths(loaded, allow_outside=self.options["allow_outside_repo"])
        self.plan = make_plan(loaded, self.options["only"], list(CHECK_MODULES))
        read_baselines(loaded.baseline_dir)
        self.loaded = loaded

    def _run_plan(self, tree: Containment, scratch: Path) -> None:
        pending = self.plan.to_run
        staging = scratch / "staging"
        while pending and self.cancel.signal is None and time.monotonic() < self.suite_deadline:
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir()
            job = Job(
                config=str(self.config_path.resolve()),
                checks=list(pending),
                update_baselines=self.options["update_baselines"],
                staging=str(staging),
                stack_file=str(scratch / f"stack-{len(pending)}.txt"),
                extra={
                    "network": self.options["environ"].get("MLTEST_NETWORK", ""),
                    "pin_reference": self.options["pin_reference"],
                    "withheld_env": list(self.worker_env.withheld),  # names, never values
                    "unset_env": list(self.worker_env.unset),
                },
            )
            worker = WorkerProcess(job, self.worker_env.env, tree, pause_commands=self.pause_token)
            try:
                self._drive(worker, pending, staging)
            finally:
                worker.stop()
        why = self._cancelled_by() if self.cancel.signal else "--max-time ran out"
        for name in list(pending):
            self._add(_result(name, Status.SKIPPED, f"not run: {why}"))
        pending.clear()
        self._emit_skipped(upto=None)

    # --- one worker -------------------------------------------------------------------------

    def _drive(self, worker: WorkerProcess, pending: list[str], staging: Path) -> None:
        """Feed results from `worker` into the report until it is done, dies or is stopped.

        The deadlines are this process's, computed from its plan: until a check's `start`, the
        worker (starting up and importing the project, or between two checks) has that check's
        budget; the check then has its budget from its `start`. A `start` is taken once per
        check and in the plan's order, so nothing the worker sends gains it more time: a second
        `start` is an error.
        """
        check_started = time.monotonic()
        deadline = check_started + self.plan.budget_s(pending[0]) + _TIMEOUT_GRACE_S
        current: str | None = None  # the check the worker said it started
        while True:
            if self.cancel.signal is not None:
                # Quickly: the runner sends SIGTERM 7.5 s after its SIGINT, then kills.
                worker.stop(grace_s=_CANCEL_GRACE_S)
                if current:
                    pending.remove(current)
                    self._add(_result(current, Status.ERROR, f"{current}: {self._cancelled_by()}"))
                return
            try:
                messages, state = worker.messages(min(deadline, self.suite_deadline))
            except ChannelError as exc:
                self._worker_lost(worker, pending, f"sent a bad message ({exc})")
                return
            for message in messages:
                kind = message["type"]
                if kind == "facts":
                    self.report.metadata.update(worker_facts(message.get("facts")))
                elif kind == "start":
                    if current is not None or message.get("check") != pending[0]:
                        bad = f"started {str(message.get('check'))[:80]!r} out of turn"
                        self._worker_lost(worker, pending, bad)
                        return
                    current, check_started = pending[0], time.monotonic()
                    deadline = check_started + self.plan.budget_s(current) + _TIMEOUT_GRACE_S
                elif kind == "result":
                    if current is None:
                        self._worker_lost(worker, pending, "sent a result out of turn")
                        return
                    now = time.monotonic()
                    took = now - check_started  # measured here: the worker's word is not used
                    try:
                        result = result_from_worker(message.get("result"), current, took)
                    except BadResult as exc:
                        self._worker_lost(worker, pending, f"sent a bad result ({exc})")
                        return
                    self._commit(staging / current, result)
                    pending.remove(current)
                    self._add(result)
                    current = None
                    if pending:  # the gap before the next check's start, on that check's budget
                        deadline = now + self.plan.budget_s(pending[0]) + _TIMEOUT_GRACE_S
                elif kind == "suite_error":
                    worker.stop()
                    self.report.errors.append(str(message.get("message", ""))[:4000])
                    pending.clear()
                    return
                elif kind == "done":
                    if pending:
                        self._worker_lost(worker, pending, "said it was done too early")
                    return
            if state == "exited":
                if pending:
                    how = worker.how_it_ended()
                    self._worker_lost(worker, pending, how, _ENDED_BY_ITSELF)
                return
            if state == "stopped":
                what = (
                    f"was stopped (SIGSTOP, or a debugger attached) and stayed stopped for "
                    f"{STOPPED_LIMIT_S:g} s, so mltest killed it"
                )
                self._worker_lost(worker, pending, what, _STOPPED_FROM_OUTSIDE)
                return
            if state == "timeout":
                self._stop_for_time(worker, pending, deadline)
                return

    def _stop_for_time(self, worker: WorkerProcess, pending: list[str], deadline: float) -> None:
        stack = worker.stack()
        suite_ran_out = self.suite_deadline <= deadline
        worker.stop()
        name = pending[0]
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
                f"check `{name}` ran past its time budget of {self.plan.budget_s(name):g} s "
                f"(checks.{name}.time_budget_s) and was stopped{at}; raise the budget, or find "
                "what blocks (a dataloader deadlock, a hung collective, a sleep)"
            )
        pending.remove(name)
        self._add(_result(name, Status.ERROR, summary, details=_stack_details(stack)))

    def _worker_lost(
        self, worker: WorkerProcess, pending: list[str], how: str, why: str = _SENT_BY_MODEL
    ) -> None:
        """ERROR for the check whose turn it was: the worker ended, was stopped or misbehaved.

        Args:
            how: what the worker did, as a verb phrase (`was killed by SIGKILL`).
            why: the likely cause, one sentence; for a worker that ended by itself, where in
                the model code it was (faulthandler's stack) is added.
        """
        worker.stop()
        name = pending[0]
        text = read_stack(Path(worker.job.stack_file)) if why is _ENDED_BY_ITSELF else ""
        where = user_frame_in_stack(text) if text else ""
        at = f" at {where}" if where else ""
        summary = (
            f"{name}: the worker process that runs the model code {how} during this check{at}; "
            f"{why}. The remaining checks ran in a fresh worker"
        )
        pending.remove(name)
        self._add(_result(name, Status.ERROR, summary, details=_stack_details(text)))

    # --- results and files --------------------------------------------------------------------

    def _commit(self, staging: Path, result: CheckResult) -> None:
        """Under `baseline update`, move what the worker staged for this check into the
        baseline folder (atomically); in a compare run, nothing the worker staged is kept."""
        if self.options["update_baselines"]:
            problem = commit_check(
                staging, self.loaded, self.report.metadata, self.options["allow_outside_repo"]
            )
            if problem:
                result.status = Status.ERROR
                result.summary = f"{result.name}: its baselines could not be written: {problem}"
        shutil.rmtree(staging, ignore_errors=True)

    def _add(self, result: CheckResult) -> None:
        """Append a result (after the skipped checks that come before it) and save."""
        if result.name not in self.plan.skipped:
            self._emit_skipped(upto=result.name)
        self.report.checks.append(result)
        self.writer.save(final=False)  # nothing computed is lost
        if self.on_result:
            self.on_result(result)

    def _emit_skipped(self, upto: str | None) -> None:
        """Report skipped checks that come before `upto` in run order (all, when None)."""
        done = {c.name for c in self.report.checks}
        for name in self.plan.order:
            if name == upto:
                return
            if name in self.plan.skipped and name not in done:
                self._add(_result(name, Status.SKIPPED, self.plan.skipped[name]))

    def _cancelled_by(self) -> str:
        return f"the run was cancelled ({self.cancel.signal})"

    def _explain_verdict(self) -> None:
        """An error verdict always says why: a run in which no check ran and passed, with
        nothing else wrong, gets a sentence of its own."""
        report = self.report
        statuses = {c.status for c in report.checks}
        unexplained = not (report.errors or report.cancelled or statuses & {Status.ERROR})
        if report.verdict is Verdict.ERROR and unexplained:
            report.errors.append(
                "no check ran and passed, so the run proves nothing; configure at least one "
                "check under `checks:` and select it (or give no --check)"
            )


def _result(name: str, status: Status, summary: str, details: str = "") -> CheckResult:
    return CheckResult(name=name, kind=name, status=status, summary=summary, details=details)


def _stack_details(stack: str) -> str:
    if not stack:
        return ""
    return "Python stacks of the worker when it was stopped:\n\n```\n" + stack + "\n```"
