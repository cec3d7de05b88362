"""The worker: the only process that imports and runs the user's code.

Started by the supervisor as `python -m mltest.worker` with an environment that holds no
secret, it reads its `Job` from the file named by `MLTEST_JOB`, runs the checks in order and
streams each result back on the pipe named by `MLTEST_CHANNEL_FD`. Under a multi-process
Lightning strategy (ddp), Lightning starts the other ranks by running this module again with
the same environment: they run the same checks, so their training steps meet rank 0's, but
only rank 0 reports, and each rank stages files in a folder of its own. The worker never
writes reports, baselines or goldens: files the checks record go to a staging folder that the
supervisor commits.
"""

from __future__ import annotations

import faulthandler
import gc
import importlib
import os
import signal
import sys
import time
import traceback
from typing import Any

from mltest.channel import CHANNEL_FD_ENV, JOB_ENV, Job, Sender
from mltest.errors import (
    INTERNAL_HINT,
    CheckFailed,
    MltestError,
    ProjectError,
    describe,
    internal_frame,
    raised,
    user_frame,
)
from mltest.exception_hints import hint_for
from mltest.report import CheckResult, Status

_NETWORK_ERRORS = ("ConnectionError", "URLError", "gaierror", "Timeout", "NewConnectionError")
_network_setting = ""  # the action's `network` input, when it runs the suite


def main() -> int:
    # Importing torch, Lightning and the project makes ~400,000 objects that live as long as
    # the process: collecting cycles while they load frees about 12,000 of them and cost 0.7 s
    # of a 3.9 s import on a 2-core machine. The collector comes back once the project is
    # imported.
    gc.disable()
    _die_with_parent()
    if not _rank():  # other ranks are rank 0's children and inherit its fence
        from mltest.worker_fence import install

        install(supervisor_pid=os.getppid())  # before any user code: no stopping the supervisor
    job = Job.from_json(open(os.environ[JOB_ENV], encoding="utf-8").read())  # noqa: SIM115
    global _network_setting
    _network_setting = str(job.extra.get("network", ""))
    from mltest import env_watch

    # before any user code: its lookups of variables mltest withheld become notices
    env_watch.install(job.extra.get("withheld_env", ()), job.extra.get("unset_env", ()))
    rank = _rank()
    if rank:  # another rank of a ddp run: same work, silent, its own files
        sender = Sender(None)
        job.staging = f"{job.staging}-rank{rank}"
        job.stack_file = f"{job.stack_file}.rank{rank}"
        os.makedirs(job.staging, exist_ok=True)
    else:
        sender = Sender(int(os.environ.pop(CHANNEL_FD_ENV)))
    stacks = open(job.stack_file, "w", encoding="utf-8")  # noqa: SIM115 (lives with the process)
    faulthandler.enable(file=stacks, all_threads=True)  # segfaults leave their stack here
    faulthandler.register(signal.SIGUSR1, file=stacks, all_threads=True)  # asked on timeouts

    from mltest.seeding import prepare_process

    prepare_process()  # determinism settings that must precede CUDA's start
    if "explore" in job.extra:  # `mltest init`: measure the project instead of checking it
        from mltest.explore import explore

        gc.enable()
        explore(job, sender)
    else:
        run_checks(job, sender)
    sender.send("done")
    return 0


def run_checks(job: Job, sender: Sender) -> None:
    """Send the environment's facts, then run `job.checks` in order: `start`, `result` each."""
    from mltest import env_watch
    from mltest.baselines import BaselineStore
    from mltest.checks.base import CheckContext, Deadline
    from mltest.config import CHECK_MODULES, load_config
    from mltest.engine import environment_facts
    from mltest.warning_notices import caught

    loaded = load_config(job.config)  # validated by the supervisor already; cheap
    sender.send("facts", facts=environment_facts(loaded.config.trainer))
    project = None
    shared: dict[str, Any] = {}

    def context(name: str) -> CheckContext:
        return CheckContext(
            name=name,
            loaded=loaded,
            project=project,
            # one staging folder per check: the supervisor commits and clears a check's
            # folder while this worker already runs the next check
            baselines=BaselineStore(loaded.baseline_dir, staging=_path(job.staging) / name),
            update_baselines=job.update_baselines,
            deadline=Deadline(name, loaded.checks[name].time_budget_s),
            shared=shared,
            pin_reference=bool(job.extra.get("pin_reference")),
        )

    if job.checks:
        try:
            project = _load_project(loaded)
            _collect_after_imports()
            validate_checks(job.checks, context, loaded.checks)
        except MltestError as exc:  # nothing can run: the supervisor reports a suite error
            withheld = "".join(f". Also: {notice}" for notice in env_watch.notices())
            sender.send("suite_error", message=f"{exc}{network_hint(exc)}{withheld}")
            return
    for name in job.checks:
        sender.send("start", check=name)
        settings = loaded.checks[name]
        started = time.perf_counter()
        ctx = context(name)
        with caught() as warned:  # warnings become the check's notices, not console lines
            result = run_one(importlib.import_module(CHECK_MODULES[name]), ctx, settings)
        result.notices = [*result.notices, *warned.notices(), *env_watch.notices()]
        result.duration_s = round(time.perf_counter() - started, 3)
        sender.send("result", result=result.bounded().to_dict())


def validate_checks(names: list[str], context, settings: dict[str, Any]) -> None:
    """Run each selected check's optional `validate(ctx, settings)` before any check trains:
    tables, files, labels and the Lightning strategy are refused here, in seconds.

    Raises:
        MltestError: naming the check and the file, row or key; the suite does not run. Model
            code that raises while being validated (a data module's setup) is reported so too.
    """
    from mltest.config import CHECK_MODULES

    for name in names:
        module = importlib.import_module(CHECK_MODULES[name])
        validate = getattr(module, "validate", None)
        if validate is None:
            continue
        try:
            validate(context(name), settings[name])
        except MltestError as exc:
            text = str(exc)
            if not text.startswith(("checks.", "`checks.")):
                text = f"checks.{name}: {text}"
            raise MltestError(text) from exc
        except Exception as exc:
            if internal_frame(exc):
                raise MltestError(f"checks.{name}: {raised(exc)}") from exc
            raise ProjectError(
                f"checks.{name}: validating its inputs before training ran the model code, "
                f"which raised {describe(exc)}"
            ) from exc


def run_one(module, ctx, settings) -> CheckResult:
    """Run one check; anything it raises becomes an error result that names the check.

    `SystemExit` from the model code is caught too: ending the process is not a way to pass.
    """
    try:
        return module.run(ctx, settings)
    except CheckFailed as exc:
        return CheckResult(
            ctx.name, ctx.name, Status.FAIL, exc.summary, details=exc.details, hint=exc.hint
        )
    except MltestError as exc:
        return CheckResult(ctx.name, ctx.name, Status.ERROR, f"{ctx.name}: {exc}")
    except SystemExit as exc:
        return _error(
            ctx.name,
            exc,
            f"the model code tried to end the process with sys.exit({exc.code!r}){user_frame(exc)}",
            "Remove the exit from the model code: mltest decides when the run ends.",
        )
    except Exception as exc:  # report who raised (the model code, or mltest); keep going
        hint = INTERNAL_HINT if internal_frame(exc) else _advice(exc)
        return _error(ctx.name, exc, raised(exc), hint)


def _error(name: str, exc: BaseException, what: str, hint: str) -> CheckResult:
    frames = traceback.format_exception(type(exc), exc, exc.__traceback__)
    return CheckResult(
        name,
        name,
        Status.ERROR,
        f"{name}: {what}",
        details="```\n" + "".join(frames[-6:]).strip() + "\n```",
        hint=hint,
    )


def network_hint(exc: BaseException) -> str:
    """A sentence naming the action's `network` input when a network error ended the run in a
    container without network; "" otherwise."""
    if _network_setting != "none":
        return ""
    seen: BaseException | None = exc
    while seen is not None:
        if (
            any(name in type(seen).__name__ for name in _NETWORK_ERRORS)
            or isinstance(seen, OSError)
            and seen.errno in (101, 110, 111, 113, -2, -3)
        ):
            return (
                ". The action runs the model code with no network (input `network: none`, the "
                "default): put the data in the workspace or the image, or set the action "
                "input `network` (e.g. `network: bridge`) if this workflow may download"
            )
        seen = seen.__cause__ or seen.__context__
    return ""


def _advice(exc: BaseException) -> str:
    hint = network_hint(exc)
    if hint:
        return hint.removeprefix(". ")
    return hint_for(exc) or "Fix the exception; the traceback's last frames are in the details."


def _load_project(loaded):
    from mltest.project import Project

    try:
        return Project(loaded)
    except SystemExit as exc:  # an import that ends the process is a broken project
        raise ProjectError(
            f"importing the model or data module called sys.exit({exc.code!r}){user_frame(exc)}; "
            "remove the exit: mltest decides when the run ends"
        ) from exc


def _collect_after_imports() -> None:
    """Turn the garbage collector back on, with every object alive now (torch, Lightning and
    the project's modules) out of its walks: each full collection would otherwise walk those
    ~400,000 objects again, 0.2 s on a CI core, set off by any check that keeps tens of
    thousands of objects (a 10,000-row key-example table). Reference counting still frees
    them; the cycles the imports left behind stay (about 9 MB with torch and Lightning)."""
    gc.freeze()
    gc.enable()


def _rank() -> int:
    """This process's global rank when Lightning launched it as another rank, else 0."""
    for name in ("RANK", "LOCAL_RANK"):
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 0


def _die_with_parent() -> None:
    """Linux: the kernel kills this worker if the supervisor dies (even by SIGKILL), so no
    orphan keeps running the model code on the runner."""
    if sys.platform.startswith("linux"):
        import contextlib
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PDEATHSIG
        if os.getppid() == 1:  # the parent was already gone before the call
            os._exit(1)


def _path(text: str):
    from pathlib import Path

    return Path(text)


if __name__ == "__main__":
    sys.exit(main())
