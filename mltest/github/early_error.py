"""An error before the suite could run (a bad input, no GPU, an image that cannot be pulled or
built, the suite's container ending without a report), published as a run's error verdict: the
same sticky comment the suite's results would update, the job summary, annotations, outputs.

So a pull request never shows an old ✅ comment next to a red check. Only the standard library
and mltest's standard-library modules are imported: action/run.sh runs this with the runner's
own ``python3 -S`` (``entrypoint.py error TITLE MESSAGE``), before any image or virtualenv.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TextIO

from mltest.github.actions import Actions
from mltest.github.context import ContextError, GitHubContext
from mltest.github.publish import PUBLISH_S, publish_action
from mltest.github.settings import ActionSettings
from mltest.report import Report, Verdict
from mltest.run_metadata import suite_name_from_file

USAGE = "usage: entrypoint.py error TITLE MESSAGE"


def early_error_report(
    title: str, message: str, config: Path, ctx: GitHubContext | None = None
) -> Report:
    """A finished report whose only content is the error: its suite name comes from the
    config's ``suite:`` line, so the error lands in that suite's sticky comment."""
    metadata = {}
    if ctx is not None:
        metadata = {
            "event": ctx.event_name,
            "pr": ctx.pull_request.number if ctx.pull_request else None,
            "head_sha": ctx.commit_sha,
            "run_url": ctx.run_url,
        }
    return Report(
        suite=suite_name_from_file(config), errors=[f"{title}: {message}"], metadata=metadata
    )


def publish_early_error(
    title: str,
    message: str,
    env: Mapping[str, str],
    out: Actions,
    *,
    settings: ActionSettings | None = None,
    ctx: GitHubContext | None = None,
    deadline: float | None = None,
) -> int:
    """Publish ``message`` as the run's error; returns the step's exit code (fail-on's).

    Args:
        settings, ctx: as already read by the caller; read here (a bad input falling back to
            its default, and said so) when not given.
        deadline: when the comment must be posted by (monotonic); at most PUBLISH_S from now.
    """
    problems: list[str] = []
    if settings is None:
        settings, problems = ActionSettings.leniently_from_env(env)
    if ctx is None:
        try:
            ctx = GitHubContext.from_env(env)
        except ContextError as exc:
            # No repository or event to comment on: summary, annotations and outputs only.
            problems.append(str(exc))
            ctx = GitHubContext(repository="")
    report = early_error_report(title, message, settings.config, ctx)
    report.errors += [p for p in problems if p not in message]
    deadline = min(math.inf if deadline is None else deadline, time.monotonic() + PUBLISH_S)
    publish_action(report, None, ctx, settings, out, deadline=deadline)
    return settings.fail_on.exit_code(Verdict.ERROR)


def early_error_main(
    args: Sequence[str], env: Mapping[str, str] | None = None, stream: TextIO | None = None
) -> int:
    """``entrypoint.py error TITLE MESSAGE``: publish an error found before the suite ran.

    Exits with fail-on's code for an error (2, or 0 with fail-on: nothing); a GitHub API
    failure is a warning and changes nothing. Any other exit code means this could not run,
    and run.sh falls back to an annotation and the outputs.
    """
    if len(args) != 2:
        print(USAGE, file=stream)
        return 3
    env = os.environ if env is None else env
    return publish_early_error(args[0], args[1], env, Actions(env, stream))
