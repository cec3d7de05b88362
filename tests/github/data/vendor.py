"""Regenerate the vendored GitHub data in this folder from the npm packages.

    npm install --prefix /tmp/octo @octokit/openapi @octokit/webhooks-examples
    python tests/github/data/vendor.py /tmp/octo/node_modules/@octokit

Writes `openapi-subset.json` (only the REST operations mltest calls, from GitHub's
dereferenced OpenAPI description) and `events/*.json` (real webhook payloads). Both packages
are MIT-licensed; their licence texts sit next to the data.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).parent
OPERATIONS = {
    "users/get-authenticated",
    "issues/list-comments",
    "issues/create-comment",
    "issues/update-comment",
    "repos/list-pull-requests-associated-with-commit",  # a fork PR's number, for workflow_run
}
# (event name, action or None, output file): the first example matching each is kept.
EVENTS = [
    ("pull_request", "opened", "pull_request.opened.json"),
    ("pull_request", "synchronize", "pull_request.synchronize.json"),
    ("push", None, "push.json"),
    ("workflow_dispatch", None, "workflow_dispatch.json"),
    ("workflow_run", "completed", "workflow_run.completed.json"),
]
# Extra conditions on the example kept: a workflow_run whose run belongs to a pull request.
WANTED = {"workflow_run": lambda e: bool(e["workflow_run"]["pull_requests"])}


def main(octokit: Path) -> None:
    spec = json.loads((octokit / "openapi/generated/api.github.com.deref.json").read_text())
    paths: dict[str, dict] = {}
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if isinstance(op, dict) and op.get("operationId") in OPERATIONS:
                paths.setdefault(path, {})[method] = op
    found = {op["operationId"] for item in paths.values() for op in item.values()}
    if found != OPERATIONS:
        raise SystemExit(f"operations missing from the spec: {sorted(OPERATIONS - found)}")
    subset = {
        "openapi": spec["openapi"],
        "info": {**spec["info"], "x-mltest-note": "subset of @octokit/openapi, see vendor.py"},
        "servers": spec["servers"],
        "paths": paths,
    }
    (HERE / "openapi-subset.json").write_text(json.dumps(subset, indent=1) + "\n")

    examples = json.loads((octokit / "webhooks-examples/api.github.com/index.json").read_text())
    by_name = {entry["name"]: entry["examples"] for entry in examples}
    (HERE / "events").mkdir(exist_ok=True)
    for name, action, filename in EVENTS:
        wanted = WANTED.get(name, lambda e: True)
        payload = next(
            e
            for e in by_name[name]
            if (action is None or e.get("action") == action) and wanted(e)
        )
        (HERE / "events" / filename).write_text(json.dumps(payload, indent=1) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
