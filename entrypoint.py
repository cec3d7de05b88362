"""Entry point of the mltest GitHub Action (the container's ENTRYPOINT; host mode runs it too).

`entrypoint.py` runs and publishes in one process (host mode). Docker mode runs it twice:
`entrypoint.py suite` in a container that gets the workspace read-only, no network and no
token, then `entrypoint.py publish` in one that runs no user code and gets the token. All the
work is in `mltest.github.commands.action_main`; this file only gives it a process.

`entrypoint.py error TITLE MESSAGE` publishes an error found before the suite could run
(mltest.github.early_error); action/run.sh runs it with the runner's own `python3 -S`, so it
imports nothing outside the standard library.
"""

import sys

from mltest.github.commands import action_main

PHASES = ("all", "suite", "publish", "error")

if __name__ == "__main__":
    phase = sys.argv[1] if len(sys.argv) > 1 else "all"
    if phase == "error":
        from mltest.github.early_error import early_error_main

        sys.exit(early_error_main(sys.argv[2:]))
    if phase not in PHASES:
        sys.exit(f"entrypoint.py: unknown phase {phase!r}; expected one of {', '.join(PHASES)}")
    sys.exit(action_main(phase=phase))
