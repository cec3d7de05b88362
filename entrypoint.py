"""Entry point of the mltest GitHub Action (the container's ENTRYPOINT; host mode runs it too).

All the work is in `mltest.github.commands.action_main`; this file only gives it a process.
"""

from mltest.github.commands import action_main

if __name__ == "__main__":
    raise SystemExit(action_main())
