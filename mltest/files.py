"""Writing files the supervisor owns (reports, baselines, goldens): atomic, locked, contained.

A kill at any moment leaves either the old file or the new one, never half of one; two
writers take turns; a path that is a symlink or leads out of the repository is refused, so a
pull request cannot make mltest overwrite a file elsewhere on the runner.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

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


@contextlib.contextmanager
def directory_lock(directory: Path | str) -> Iterator[None]:
    """Hold an exclusive lock on `directory` itself (created if missing), blocking.

    Locking the folder rather than a `.lock` file beside the data leaves nothing behind in the
    repository for a user to commit by mistake; flock on a directory works on Linux and macOS.
    """
    directory = Path(directory)
    if directory.is_symlink():
        raise UnsafePathError(
            f"{directory}: is a symbolic link; mltest does not write through links. Replace it "
            "with a real folder and run again"
        )
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_DIRECTORY", 0))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def safe_relative(relative: str, *, what: str) -> PurePosixPath:
    """`relative` as a path that cannot leave the folder it is joined to.

    Refuses absolute paths, `..`, empty names, backslashes and any `.git` component (a file
    written under `.git/` could plant a hook that later jobs on the runner execute).

    Raises:
        UnsafePathError: naming `what`, the value and what is allowed.
    """
    path = PurePosixPath(relative)
    parts = path.parts
    reason = None
    if not relative or not parts or relative.strip() != relative:
        reason = "it is empty or starts or ends with blanks"
    elif path.is_absolute():
        reason = "it is absolute"
    elif "\\" in relative or "\0" in relative:
        reason = "it holds a backslash or NUL byte"
    elif ".." in parts:
        reason = "it contains `..`"
    elif any(part.lower() == ".git" for part in parts):
        reason = "it enters a `.git` folder"
    if reason:
        raise UnsafePathError(
            f"{what}: {relative!r} is refused because {reason}; use a plain relative path "
            "such as `golden/regression.safetensors`"
        )
    return PurePosixPath(*[part for part in parts if part != "."])


def child_path(root: Path | str, relative: PurePosixPath, *, what: str) -> Path:
    """`root / relative`, refusing it when any existing part below `root` is a symlink.

    `root` itself may be a link (e.g. /tmp on macOS); whether it lies inside the repository is
    `ensure_inside`'s job.

    Raises:
        UnsafePathError: a component is a symbolic link or exists but is not a folder.
    """
    current = Path(root)
    for index, part in enumerate(relative.parts):
        current = current / part
        if current.is_symlink():
            raise UnsafePathError(
                f"{what}: {current} is a symbolic link; mltest neither reads nor writes "
                "through links in its folders. Replace it with a regular file or folder "
                "(or delete it) and run again"
            )
        last = index == len(relative.parts) - 1
        if not last and current.exists() and not current.is_dir():
            raise UnsafePathError(f"{what}: {current} exists and is not a folder; remove it")
    return current


def read_regular_file(path: Path | str) -> bytes:
    """The bytes of `path`, refusing a symlink or anything but a regular file (FIFO, device).

    Opens with O_NOFOLLOW and checks the open descriptor, so a link swapped in after an
    earlier check is still refused.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        if path.is_symlink():
            raise UnsafePathError(
                f"{path}: is a symbolic link; mltest does not read through links"
            ) from exc
        raise
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise UnsafePathError(f"{path}: is not a regular file; mltest copies only files")
        return handle.read()


def remove_stale_temps(path: Path | str) -> None:
    """Delete temp files a killed `atomic_write_bytes` of `path` left behind.

    Call only while holding the lock that every writer of `path` takes: then no live writer
    owns such a file.
    """
    path = Path(path)
    if not path.parent.is_dir():
        return
    for stale in path.parent.glob(f".{glob_escape(path.name)}.*.tmp"):
        with contextlib.suppress(OSError):
            if stale.is_file() and not stale.is_symlink():
                stale.unlink()


def glob_escape(name: str) -> str:
    """`name` with glob metacharacters made literal."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def find_repo_root(start: Path | str) -> Path:
    """The git top-level holding `start` (the nearest folder up with a `.git`), else `start`.

    `.git` may be a folder or, in worktrees and submodules, a file; both count. Not asking
    `git` itself keeps this free of a subprocess and of git's own config, which the pull
    request's checkout could influence.
    """
    start = Path(start).resolve()
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return start


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
