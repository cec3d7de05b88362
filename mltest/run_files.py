"""The report files a run leaves, written by the supervisor alone into a folder it opened once.

Writing never ends the run: a file that cannot be written (a full disk, `report.json` replaced
by a folder) becomes an error of the run, said once on stderr, and the other files are still
written. Supervisor side: no torch, no user code.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import sys
from collections.abc import Callable
from pathlib import Path

from mltest.errors import MltestError, describe
from mltest.report import Report

REPORT_FILES = ("report.json", "report.md", "junit.xml")


class ReportFolder:
    """The report folder, opened once when the run starts.

    Every write goes through the folder's descriptor: a temporary file created there with
    `O_EXCL | O_NOFOLLOW`, fsynced, then renamed over the name (a rename replaces a link the
    model code may have planted; it never follows it). So a folder swapped for a symbolic link
    during the run is not written through; `replaced()` tells that it happened.

    Raises:
        MltestError: the folder cannot be created or opened, or is a symbolic link.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError as exc:
            raise MltestError(
                f"the report folder {self.path} cannot be used ({exc}); pass --report-dir with "
                "a folder mltest may create (not a symbolic link)"
            ) from exc
        info = os.fstat(self.fd)
        self.identity = (info.st_dev, info.st_ino)

    def write(self, name: str, data: bytes) -> None:
        """Replace `name` in the folder with `data` atomically.

        Raises:
            OSError: the disk is full, `name` is a folder, the folder is gone...
        """
        temp = f".{name}.{secrets.token_hex(6)}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        fd = os.open(temp, flags, 0o644, dir_fd=self.fd)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=self.fd)
            raise
        with contextlib.suppress(OSError):
            os.fsync(self.fd)

    def remove(self, name: str) -> None:
        """Delete `name` (a report file left by an earlier run), if it is there."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=self.fd)

    def replaced(self) -> str:
        """"" while the path still leads to the folder opened at the start; else a sentence
        saying what happened and where the report was written instead."""
        try:
            info = os.stat(self.path, follow_symlinks=False)
            same = stat.S_ISDIR(info.st_mode) and (info.st_dev, info.st_ino) == self.identity
        except OSError:
            same = False
        if same:
            return ""
        try:
            now = os.readlink(f"/proc/self/fd/{self.fd}")
        except OSError:
            now = "the folder opened at the start"
        return (
            f"the report folder {self.path} was moved or replaced (by a symbolic link?) while "
            f"the model code ran; mltest wrote the report into {now}, never through the new "
            "path. The run is an error: find what in the model code touches the report folder"
        )

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


class ReportWriter:
    """Writes one run's report files; failures become errors of the report, never exceptions.

    Args:
        report: the report (its `errors` receive what could not be written).
        path: the report folder.
    """

    def __init__(self, report: Report, path: Path):
        self.report = report
        self.path = Path(path)
        self._failed: set[str] = set()
        self.folder: ReportFolder | None = None
        try:
            self.folder = ReportFolder(self.path)
        except MltestError as exc:
            self._problem("folder", str(exc))
            return
        folder = self.folder
        for name in REPORT_FILES[1:]:  # an earlier run's must never pass for this one's
            self._try(name, f"remove {self.path / name}", lambda name=name: folder.remove(name))

    def save(self, *, final: bool) -> None:
        """report.json; when final, report.md and junit.xml too (and report.json again, when
        writing one of them failed, so that the JSON says so)."""
        if self.folder is None:
            return
        errors = len(self.report.errors)
        for name in REPORT_FILES if final else REPORT_FILES[:1]:
            self._try(name, f"write {self.path / name}", lambda name=name: self._write(name))
        if final and len(self.report.errors) > errors:
            self._try("again", "write report.json", lambda: self._write("report.json"))

    def replaced(self) -> str:
        """See `ReportFolder.replaced`; "" when no folder could be opened."""
        return self.folder.replaced() if self.folder else ""

    def close(self) -> None:
        if self.folder is not None:
            self.folder.close()

    def _write(self, name: str) -> None:
        from mltest.render.junit import render_junit
        from mltest.render.markdown import render_markdown

        render = {
            "report.json": self.report.to_json,
            "report.md": lambda: render_markdown(self.report),
            "junit.xml": lambda: render_junit(self.report),
        }[name]
        self.folder.write(name, render().encode("utf-8"))

    def _try(self, key: str, what: str, action: Callable[[], object]) -> None:
        try:
            action()
        except Exception as exc:  # mltest's own failure to write: an error of the run
            self._problem(key, f"mltest could not {what}: {describe(exc)}")

    def _problem(self, key: str, message: str) -> None:
        if key in self._failed:
            return
        self._failed.add(key)
        self.report.errors.append(message)
        with contextlib.suppress(OSError, ValueError):  # stderr gone too: the exit code says it
            print(f"mltest: error: {message}", file=sys.stderr, flush=True)
