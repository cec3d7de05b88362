"""`mltest init`: complete a partial mltest.yaml from a short exploration of the project.

Supervisor side: it never imports torch or the user's code. It writes (or reads) the partial
config holding what only the user knows (`model`, `data`, `trainer`), starts a worker that
explores the project (`mltest.explore`: the task kind, every seed's learning curve over the
exploration budget, which checks run), chooses a memorization target every seed reaches with
margin (`mltest.target_choice`), and appends a commented block to the file (`mltest.init_yaml`),
keeping the user's lines and comments. `mltest baseline update` then passes on the first try:
the counts it records are those of the curves measured here (same seeds, budget, schedule,
threads).
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mltest.channel import ChannelError, Job
from mltest.errors import ConfigError, MltestError
from mltest.report import CheckResult, Status

_GRACE_S = 5.0


@dataclass(frozen=True)
class InitOptions:
    """What `mltest init` was asked (command-line options)."""

    config: Path
    model: str | None = None
    data: str | None = None
    model_args: Mapping[str, Any] = field(default_factory=dict)
    data_args: Mapping[str, Any] = field(default_factory=dict)
    trainer: Mapping[str, Any] = field(default_factory=dict)
    max_epochs: int = 300
    batches: int = 1
    time_budget_s: float = 1800.0
    pass_env: tuple[str, ...] = ()
    allow_secret_env: tuple[str, ...] = ()


@dataclass
class InitOutcome:
    """What init did: the exit code and the lines it says (the CLI prints them)."""

    exit_code: int
    lines: list[str] = field(default_factory=list)


def run_init(options: InitOptions, say: Callable[[str], None] = print) -> InitOutcome:
    """Explore the project and complete its config.

    Returns:
        exit code 0 (written), 1 (written, but the model did not memorize: memorization is
        left out and the reason is in the file and the output), 2 (nothing explored: bad
        options or config, a project that does not load, a worker that died or ran out of time).
    """
    from mltest.config import load_config
    from mltest.files import atomic_write_text

    path = options.config
    try:
        if options.model or options.data:
            _write_partial(options)
            say(f"wrote {path} with the model and data module; exploring them")
        loaded = load_config(path)
    except MltestError as exc:
        return InitOutcome(2, [str(exc)])
    if loaded.config.checks:
        return InitOutcome(2, [
            f"{path}: already has `checks`; `mltest init` completes a config that holds "
            "`model`, `data` and `trainer` (and optionally `seeds`, `task`). Remove the "
            "`checks` section to start over, or edit it by hand"
        ])
    say(
        f"exploring: seeds {', '.join(map(str, loaded.config.seeds))} for {options.max_epochs} "
        f"epochs each on {options.batches} batch(es), then sanity and regression once"
    )
    started = time.monotonic()
    result = _explore(path, options)
    if result.status is not Status.PASS:
        return InitOutcome(2, [f"{path}: not completed: {result.summary}"])
    found = result.metrics
    for problem in found.get("problems", {}).values():
        if problem:
            return InitOutcome(2, [
                f"{path}: not completed: {problem}; that is a bug in the loss or the model to "
                "fix before any target makes sense"
            ])
    from mltest.init_yaml import completion
    from mltest.target_choice import propose

    hold = 3 if found["judge"] == "samples" else 1
    curves = {int(seed): curve for seed, curve in found["curves"].items()}
    proposal = propose(curves, lower_is_better=True, budget=options.max_epochs, hold=hold)
    budget = _budget(proposal, options.max_epochs, found["scheduled"])
    text = path.read_text(encoding="utf-8")
    keep = {key for key in ("seeds", "task") if (key,) in loaded.lines}
    block = completion(
        found, proposal, explored=options.max_epochs, max_epochs=budget,
        batches=options.batches, hold=hold, keep=keep,
    )
    if text.endswith("\n\n"):
        block = block.lstrip("\n")  # the file already ends with a blank line
    completed = text + ("" if text.endswith("\n") or not text else "\n") + block
    try:
        _check_parses(completed, path)
    except ConfigError as exc:  # a bug of init's: never leave the user's file broken
        return InitOutcome(2, [f"{path}: not completed; the text init wrote does not load: {exc}"])
    atomic_write_text(path, completed)
    lines = _summary(found, proposal, time.monotonic() - started, path)
    return InitOutcome(0 if proposal is not None else 1, lines)


def _budget(proposal, explored: int, scheduled: bool) -> int:
    """`max_epochs` to write: `HEADROOM` times the slowest count (at least 20, in tens), or
    the explored budget for a model with a scheduler, whose schedule may be built from the
    Trainer's `max_epochs` (the counts would then differ from the explored ones)."""
    from mltest.target_choice import HEADROOM

    if scheduled or proposal is None:
        return explored
    wanted = max(20, math.ceil(HEADROOM * proposal.slowest / 10) * 10)
    return min(explored, wanted)


def _write_partial(options: InitOptions) -> None:
    from mltest.files import atomic_write_text
    from mltest.init_yaml import partial_config_text

    if not (options.model and options.data):
        raise ConfigError("give both --model and --data (import paths `module:Class`)")
    if options.config.exists():
        raise ConfigError(
            f"{options.config} exists; `mltest init --config {options.config}` completes it "
            "(drop --model/--data), or name a new file with --config"
        )
    atomic_write_text(
        options.config,
        partial_config_text(
            options.model, options.data, options.model_args, options.data_args,
            options.trainer,
        ),
    )


def _explore(path: Path, options: InitOptions) -> CheckResult:
    """Run the exploration in a worker; its `init` result (an ERROR result when it failed)."""
    from mltest.env_request import EnvRequest, build_worker_env
    from mltest.process_guard import Cancellation, protect_from_other_processes
    from mltest.process_tree import Containment
    from mltest.worker_handle import WorkerProcess

    protect_from_other_processes()
    with Cancellation() as cancel, tempfile.TemporaryDirectory(prefix="mltest-init-") as scratch:
        job = Job(
            config=str(path.resolve()),
            checks=[],
            update_baselines=False,
            staging=str(Path(scratch) / "staging"),
            stack_file=str(Path(scratch) / "stack.txt"),
            extra={
                "network": os.environ.get("MLTEST_NETWORK", ""),
                "explore": {
                    "max_epochs": options.max_epochs,
                    "batches": options.batches,
                    "time_budget_s": options.time_budget_s,
                },
            },
        )
        request = EnvRequest.parse(options.pass_env, options.allow_secret_env)
        with Containment() as tree:  # everything the exploration starts ends with it
            worker = WorkerProcess(job, build_worker_env(os.environ, request).env, tree)
            try:
                return _drive(worker, options.time_budget_s, cancel)
            finally:
                worker.stop()


def _drive(worker, budget_s: float, cancel) -> CheckResult:
    deadline = time.monotonic() + budget_s + _GRACE_S
    while True:
        if cancel.signal is not None:
            return _error(f"cancelled ({cancel.signal})")
        try:
            messages, state = worker.messages(deadline)
        except ChannelError as exc:
            return _error(f"the worker sent a bad message ({exc})")
        for message in messages:
            if message["type"] == "suite_error":
                return _error(str(message.get("message", ""))[:4000])
            if message["type"] == "result":
                try:
                    return CheckResult.from_dict(message["result"])
                except (KeyError, TypeError, ValueError) as exc:
                    return _error(f"the worker sent a bad result ({exc})")
        if state in ("exited", "stopped"):
            return _error(f"the worker process {worker.how_it_ended()} while exploring")
        if state == "timeout":
            return _error(
                f"the exploration ran past {budget_s:g} s (--time-budget); lower --max-epochs, "
                "or raise the budget"
            )


def _error(summary: str) -> CheckResult:
    return CheckResult("init", "init", Status.ERROR, summary)


def _check_parses(text: str, path: Path) -> None:
    """Load the completed text as a config (next to the file, so paths resolve the same)."""
    from mltest.config import load_config

    handle, name = tempfile.mkstemp(prefix=".mltest-init-", suffix=".yaml", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        load_config(name)
    finally:
        Path(name).unlink(missing_ok=True)


def _summary(found, proposal, seconds: float, path: Path) -> list[str]:
    lines = [f"task: {found['task']['described']}"]
    if proposal is None:
        lines.append(
            "memorization: left out; no level was reached with margin by most seeds (see the "
            f"comment in {path})"
        )
    else:
        quantity = found["quantity"]
        op = "<" if quantity == "loss" else "<="
        lines.append(f"memorization: target {quantity} {op} {proposal.value:g}; "
                     f"{proposal.describe()}")
    for name, outcome in found["checks"].items():
        state = outcome["status"]
        shown = {"pass": "added", "fail": "added (it fails now: see the comment)"}.get(
            state, "left out"
        )
        lines.append(f"{name}: {shown}" + ("" if state in ("pass", "fail") else
                                            f": {outcome['summary'][:200]}"))
    lines.append(
        f"completed {path} in {seconds:.0f} s; next: `mltest baseline update --config {path}` "
        "and commit mltest.yaml and the baseline folder"
    )
    return lines


def parse_mapping(text: str, option: str) -> dict[str, Any]:
    """A `--model-args '{lr: 0.01}'` value: a YAML (or JSON) mapping.

    Raises:
        ConfigError: naming the option when the text is not a mapping.
    """
    import yaml

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{option}: not YAML ({exc}); e.g. {option} '{{lr: 0.01}}'") from exc
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{option}: expected a mapping such as '{{lr: 0.01}}', got {text!r}")
    return value
