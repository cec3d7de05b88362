"""mltest.files helpers: path checks, the folder lock, reading only regular files."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from mltest.files import (
    UnsafePathError,
    child_path,
    directory_lock,
    find_repo_root,
    read_regular_file,
    safe_relative,
)


@pytest.mark.parametrize(
    ("relative", "reason"),
    [
        ("/abs", "absolute"),
        ("a/../../b", "`..`"),
        ("a/.GIT/config", "`.git`"),
        ("a\\..\\b", "backslash"),
        (" a", "blanks"),
    ],
)
def test_safe_relative_refuses_paths_that_could_leave_the_folder(relative, reason):
    with pytest.raises(UnsafePathError, match=reason):
        safe_relative(relative, what="golden file")


def test_safe_relative_keeps_plain_names():
    assert str(safe_relative("./golden/r.safetensors", what="x")) == "golden/r.safetensors"


def test_child_path_refuses_a_link_anywhere_below_the_root(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "golden").symlink_to(tmp_path / "out")
    with pytest.raises(UnsafePathError, match="golden is a symbolic link"):
        child_path(tmp_path / "root", safe_relative("golden/x", what="f"), what="golden file")


def test_reading_a_fifo_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(UnsafePathError, match="not a regular file"):
        read_regular_file(tmp_path / "pipe")


def test_the_repository_root_is_the_nearest_folder_with_git(tmp_path):
    (tmp_path / "repo" / "a" / "b").mkdir(parents=True)
    (tmp_path / "repo" / ".git").write_text("gitdir: elsewhere\n")  # a worktree's .git file
    assert find_repo_root(tmp_path / "repo" / "a" / "b") == (tmp_path / "repo").resolve()
    (tmp_path / "plain").mkdir()
    assert find_repo_root(tmp_path / "plain") == (tmp_path / "plain").resolve()


HOLD_LOCK = """
import sys, time
from mltest.files import directory_lock
with directory_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(1.0)
"""


def test_the_folder_lock_makes_another_process_wait_and_leaves_no_file(tmp_path):
    folder = tmp_path / ".mltest"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(folder)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline() == "locked\n"
        started = time.monotonic()
        with directory_lock(folder):
            waited = time.monotonic() - started
    finally:
        holder.communicate(timeout=30)
    assert waited > 0.3  # the holder sleeps 1 s with the lock
    assert list(folder.iterdir()) == []
