"""The files a run leaves: the report (written atomically, stale outputs removed first) and,
under `baseline update`, a patch of the baseline text files for the job summary."""

from __future__ import annotations

import contextlib
import difflib
from pathlib import Path

from mltest.report import Report


def write_report(report: Report, report_dir: Path, *, json_only: bool = False) -> None:
    """Write report.json and, unless json_only, report.md and junit.xml (each atomically)."""
    from mltest.files import atomic_write_text
    from mltest.render.junit import render_junit
    from mltest.render.markdown import render_markdown

    report.write_json(report_dir / "report.json")
    if not json_only:
        atomic_write_text(report_dir / "report.md", render_markdown(report))
        atomic_write_text(report_dir / "junit.xml", render_junit(report))


def remove_stale_outputs(report_dir: Path) -> None:
    """A report.md or junit.xml from an earlier run must never pass for this run's."""
    for name in ("report.md", "junit.xml"):
        with contextlib.suppress(FileNotFoundError):
            (report_dir / name).unlink()


PATCH_LIMIT = 60_000  # characters of baseline patch kept for the job summary


def text_files(folder: Path, staging: Path) -> dict[str, str]:
    """Current text of the JSON files a commit of `staging` will replace (`""` when new)."""
    names = {"baselines.json"} | {
        str(p.relative_to(staging)) for p in staging.rglob("*.json") if p.is_file()
    }
    return {name: read_text(folder / name) for name in names}


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""


def unified_diff(old: str, new: str, shown: str) -> str:
    lines = difflib.unified_diff(
        old.splitlines(keepends=True),
        new.splitlines(keepends=True),
        fromfile=f"a/{shown}" if old else "/dev/null",
        tofile=f"b/{shown}",
    )
    return "".join(lines)


def shown_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
