"""Writing files the supervisor owns (reports, baselines, goldens): atomic, locked, contained.

A kill at any moment leaves either the old file or the new one, never half of one; two
writers take turns; a path that is a symlink or leads out of the repository is refused, so a
pull request cannot make mltest overwrite a file elsewhere on the runner.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from mltest.errors import MltestError


class UnsafePathError(MltestError):
    """A path mltest was asked to write is a symlink or lies outside the allowed folder."""


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    """Write `data` to `path` via a temporary file in the same folder, fsync, then rename.

    Raises:
        UnsafePathError: `path` is a symlink (the write would land wherever it points).
    """
    path = Path(path)
    if path.is_symlink():
        raise UnsafePathError(
            f"{path}: is a symbolic link; mltest does not write through links. Replace it "
            "with a regular file (or delete it) and run again"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: Path | str, text: str) -> None:
    """`atomic_write_bytes` for UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def file_lock(path: Path | str) -> Iterator[None]:
    """Hold an exclusive lock on `<path>.lock` (blocking) so writers of `path` take turns."""
    lock_path = Path(f"{path}.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def ensure_inside(path: Path | str, root: Path | str, *, what: str) -> Path:
    """`path` resolved, if it lies inside `root` (symlinks followed); else UnsafePathError.

    Args:
        what: names the setting the path came from, for the message (e.g. `baseline_dir`).
    """
    resolved = Path(path).resolve()
    base = Path(root).resolve()
    if resolved != base and not resolved.is_relative_to(base):
        raise UnsafePathError(
            f"{what}: {path} resolves to {resolved}, outside {base}; mltest writes only inside "
            "the repository. Use a path inside it, or pass --allow-outside-repo if this is "
            "intended"
        )
    return resolved


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # some filesystems cannot fsync a directory
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
