"""`baselines: update` on a runner: hand the baselines recorded there back to the user.

The action never commits. Its outputs name the baseline folder and an artifact name for the
workflow's upload-artifact step (docs/github-action.md, "Record baselines on the runner"), and
the job summary says what changed, shows a patch of the text files, and gives the exact
commands that bring the files into a checkout.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from mltest.github.context import GitHubContext
from mltest.render.safe import code, fenced
from mltest.report import Report

ARTIFACT_PREFIX = "mltest-baselines-"


def artifact_name(comment_id: str) -> str:
    """The artifact's name: one per suite, so matrix jobs do not overwrite each other."""
    return ARTIFACT_PREFIX + re.sub(r"[^A-Za-z0-9._-]+", "-", comment_id).strip("-")


def recorded_dir(report: Report, workspace: str | None) -> str:
    """The recorded baseline folder, when this run recorded files and it lies inside the
    workspace; else "". The report comes from a process that ran user code, so the path is
    checked before an upload step is pointed at it."""
    folder = report.metadata.get("baseline_dir")
    if not report.metadata.get("baseline_files") or not isinstance(folder, str):
        return ""
    root = Path(workspace or os.getcwd()).resolve()
    path = Path(folder).resolve()
    if path == root or not path.is_relative_to(root) or not path.is_dir():
        return ""
    if ".git" in path.relative_to(root).parts:  # never hand .git (and its credentials) out
        return ""
    return str(path)


def summary_section(report: Report, ctx: GitHubContext, folder: str, artifact: str) -> str:
    """Markdown for the job summary: what was recorded, the patch, how to commit it."""
    files = [str(f) for f in report.metadata.get("baseline_files", [])]
    shown = os.path.relpath(folder, Path(ctx.workspace or os.getcwd()).resolve())
    device = report.metadata.get("device") or "this runner"
    lines = [
        "### 📦 Baselines recorded on this runner",
        "",
        f"`mltest baseline update` wrote {len(files)} file(s) under {code(shown)} on "
        f"{code(device)}; nothing was committed. Once the workflow's upload step has stored "
        f"them as the artifact {code(artifact)}, add them to your branch from a checkout of "
        f"{code(ctx.commit_sha[:12] or 'the same commit')}:",
        "",
        "```sh",
        f"gh run download {ctx.run_id or '<run-id>'} --repo {ctx.repository} "
        f"--name {artifact} --dir {shown}",
        f"git add {shown} && git diff --cached --stat",
        f'git commit -m "mltest: baselines recorded on {_plain(device)}"',
        "```",
        "",
        "Files: " + ", ".join(code(f) for f in files),
    ]
    patch = report.metadata.get("baseline_patch")
    if isinstance(patch, str) and patch:
        lines += [
            "",
            "<details><summary>Patch of the text files (review it before committing)</summary>",
            "",
            fenced(patch),
            "",
            "</details>",
        ]
    return "\n".join(lines) + "\n"


def _plain(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9 ._-]+", "", text)[:60]
