"""Baseline store: atomic, locked, staged writes, checked with real processes and real kills."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mltest.baselines import BaselineStore, commit_staged
from mltest.errors import BaselineError
from mltest.files import UnsafePathError

# Entries big enough that writing one file takes a while, so kills land mid-write.
PAYLOAD = "x" * 200_000


def spawn(code: str, *args: object) -> subprocess.Popen:
    """A Python process running `code` with `args` in sys.argv[1:]."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen) -> None:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err


def entries(directory: Path) -> dict:
    return json.loads((directory / "baselines.json").read_text())["checks"]


PUT_FOREVER = """
    import sys
    from pathlib import Path
    from mltest.baselines import BaselineStore
    store = BaselineStore(Path(sys.argv[1]))
    i = 0
    while True:
        store.put("memorization", f"env{i:05d}", {"n": i, "pad": "x" * 200_000})
        i += 1
"""


def wait_for(predicate, timeout=60.0):
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out waiting"
        time.sleep(0.01)


def test_kill_9_during_puts_leaves_a_whole_file_with_every_finished_entry(tmp_path):
    directory = tmp_path / ".mltest"
    proc = spawn(PUT_FOREVER, directory)
    try:
        wait_for(lambda: (directory / "baselines.json").exists())
        for _ in range(5):  # kill at several moments of the write cycle
            time.sleep(0.05)
            proc.send_signal(signal.SIGSTOP)
            seen = entries(directory)  # never half a file, even mid-write
            assert sorted(int(k[3:]) for k in seen["memorization"]) == list(
                range(len(seen["memorization"]))
            )
            proc.send_signal(signal.SIGCONT)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
        proc.communicate()
    found = entries(directory)["memorization"]
    assert sorted(int(k[3:]) for k in found) == list(range(len(found)))
    # The next writer cleans the temp file a killed writer may have left.
    BaselineStore(directory).put("sanity", "cpu", {"ok": True})
    assert sorted(p.name for p in directory.iterdir()) == ["baselines.json"]


def test_kill_9_during_commit_leaves_the_previous_file(tmp_path):
    directory = tmp_path / ".mltest"
    BaselineStore(directory).put("regression", "cpu", {"old": True})
    before = (directory / "baselines.json").read_bytes()
    staging = tmp_path / "staging"
    staged = BaselineStore(directory, staging=staging)
    for i in range(50):
        staged.put("regression", f"env{i}", {"pad": PAYLOAD})
    staged.write_file("golden/regression.safetensors", os.urandom(5_000_000))
    code = """
        import sys
        from pathlib import Path
        from mltest.baselines import commit_staged
        print("ready", flush=True)
        while True:
            commit_staged(Path(sys.argv[1]), Path(sys.argv[2]))
    """
    for delay in (0.0, 0.02, 0.1):
        proc = spawn(code, staging, directory)
        assert proc.stdout.readline() == "ready\n"
        time.sleep(delay)
        proc.kill()
        proc.wait(timeout=30)
        proc.communicate()
        text = (directory / "baselines.json").read_bytes()
        assert text == before or len(entries(directory)["regression"]) == 51
    golden = directory / "golden" / "regression.safetensors"
    assert not golden.exists() or golden.stat().st_size == 5_000_000


CONCURRENT_PUTS = """
    import sys, time
    from pathlib import Path
    from mltest.baselines import BaselineStore
    directory, name, go = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    store = BaselineStore(directory)
    store.get("memorization", "warm")  # read the file before the other process writes
    while not go.exists():
        time.sleep(0.001)
    for i in range(40):
        store.put(name, f"env{i}", {"i": i})
"""


def test_two_processes_putting_at_once_keep_every_entry(tmp_path):
    directory, go = tmp_path / ".mltest", tmp_path / "go"
    BaselineStore(directory).put("memorization", "old", {"kept": True})
    procs = [spawn(CONCURRENT_PUTS, directory, name, go) for name in ("sanity", "regression")]
    time.sleep(1.0)  # both processes imported and read the old file
    go.touch()
    for proc in procs:
        finish(proc)
    found = entries(directory)
    assert len(found["sanity"]) == len(found["regression"]) == 40
    assert found["memorization"] == {"old": {"kept": True}}


CONCURRENT_COMMITS = """
    import sys, time
    from pathlib import Path
    from mltest.baselines import BaselineStore, commit_staged
    directory, name, go = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    stagings = []
    for i in range(30):
        staging = directory.parent / f"staging-{name}-{i}"
        BaselineStore(directory, staging=staging).put(name, f"env{i}", {"i": i})
        stagings.append(staging)
    while not go.exists():
        time.sleep(0.001)
    for staging in stagings:
        commit_staged(staging, directory)
"""


def test_two_concurrent_commits_keep_every_entry(tmp_path):
    directory, go = tmp_path / ".mltest", tmp_path / "go"
    procs = [spawn(CONCURRENT_COMMITS, directory, name, go) for name in ("sanity", "regression")]
    time.sleep(1.0)
    go.touch()
    for proc in procs:
        finish(proc)
    found = entries(directory)
    assert len(found["sanity"]) == len(found["regression"]) == 30


def test_staging_writes_nothing_to_the_baseline_folder_until_commit(tmp_path):
    directory, staging = tmp_path / "repo" / ".mltest", tmp_path / "staging"
    BaselineStore(directory).put("memorization", "cpu", {"epochs": 9})
    before = (directory / "baselines.json").read_bytes()

    store = BaselineStore(directory, staging=staging)
    store.put("memorization", "gpu", {"epochs": 4})
    store.write_file("golden/regression.safetensors", b"tensor bytes")

    assert (directory / "baselines.json").read_bytes() == before
    assert sorted(p.name for p in directory.iterdir()) == ["baselines.json"]
    assert store.get("memorization", "gpu") == {"epochs": 4}
    assert store.get("memorization", "cpu") == {"epochs": 9}  # committed entries still read
    assert store.keys("memorization") == ["cpu", "gpu"]
    assert store.read_path("golden/regression.safetensors") == (
        staging / "golden" / "regression.safetensors"
    )
    assert store.read_path("golden/other.json") == directory / "golden" / "other.json"

    written = commit_staged(staging, directory)

    assert written == [Path("baselines.json"), Path("golden/regression.safetensors")]
    assert entries(directory)["memorization"] == {"cpu": {"epochs": 9}, "gpu": {"epochs": 4}}
    assert (directory / "golden" / "regression.safetensors").read_bytes() == b"tensor bytes"


def test_a_fresh_worker_sees_what_an_earlier_worker_staged(tmp_path):
    directory, staging = tmp_path / ".mltest", tmp_path / "staging"
    code = """
        import sys
        from pathlib import Path
        from mltest.baselines import BaselineStore
        BaselineStore(Path(sys.argv[1]), staging=Path(sys.argv[2])).put("sanity", "cpu", {})
    """
    finish(spawn(code, directory, staging))
    store = BaselineStore(directory, staging=staging)
    assert store.get("sanity", "cpu") == {}
    store.put("regression", "cpu", {"n": 1})
    commit_staged(staging, directory)
    assert entries(directory) == {"sanity": {"cpu": {}}, "regression": {"cpu": {"n": 1}}}


def test_a_symlinked_baselines_file_is_refused_and_its_target_untouched(tmp_path):
    outside = tmp_path / "outside.json"
    outside.write_text('{"format_version": 1, "checks": {}}')
    directory = tmp_path / "repo" / ".mltest"
    directory.mkdir(parents=True)
    (directory / "baselines.json").symlink_to(outside)
    with pytest.raises(UnsafePathError, match=r"baselines\.json.* symbolic link"):
        BaselineStore(directory).put("sanity", "cpu", {})
    with pytest.raises(UnsafePathError, match="symbolic link"):
        BaselineStore(directory).get("sanity", "cpu")
    assert outside.read_text() == '{"format_version": 1, "checks": {}}'


@pytest.mark.parametrize("link", ["golden", "golden/regression.safetensors"])
def test_a_symlinked_golden_file_or_folder_is_refused(tmp_path, link):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "regression.safetensors").write_bytes(b"theirs")
    directory = tmp_path / "repo" / ".mltest"
    (directory / "golden").mkdir(parents=True)
    if link == "golden":
        (directory / "golden").rmdir()
        (directory / "golden").symlink_to(outside)
    else:
        (directory / link).symlink_to(outside / "regression.safetensors")
    store = BaselineStore(directory)
    with pytest.raises(UnsafePathError, match=f"{link}.* is a symbolic link"):
        store.write_file("golden/regression.safetensors", b"ours")
    with pytest.raises(UnsafePathError, match="symbolic link"):
        store.read_path("golden/regression.safetensors")
    assert (outside / "regression.safetensors").read_bytes() == b"theirs"


@pytest.mark.parametrize(
    ("relative", "reason"),
    [
        ("/etc/passwd", "absolute"),
        ("../outside.bin", "`..`"),
        ("golden/../../x", "`..`"),
        (".git/hooks/pre-commit", "`.git`"),
        ("", "empty"),
        ("baselines.json", "the baselines file itself"),
    ],
)
def test_unsafe_file_names_are_refused(tmp_path, relative, reason):
    store = BaselineStore(tmp_path / ".mltest", staging=tmp_path / "staging")
    with pytest.raises(UnsafePathError, match=reason):
        store.write_file(relative, b"data")
    assert not (tmp_path / "outside.bin").exists()


@pytest.mark.parametrize("planted", ["link", "fifo", "dotdot-link"])
def test_commit_refuses_a_staging_folder_holding_links_or_special_files(tmp_path, planted):
    directory, staging = tmp_path / ".mltest", tmp_path / "staging"
    store = BaselineStore(directory, staging=staging)
    store.put("sanity", "cpu", {"n": 1})
    store.write_file("golden/regression.json", b"{}")
    target = tmp_path / "victim"
    target.write_text("secret")
    if planted == "link":
        (staging / "golden" / "stolen.json").symlink_to(target)
    elif planted == "fifo":
        os.mkfifo(staging / "golden" / "pipe")
    else:
        (staging / "up").symlink_to(tmp_path)
    with pytest.raises(UnsafePathError, match="refused"):
        commit_staged(staging, directory)
    assert not directory.exists()  # checked before anything was written


def test_a_corrupt_baselines_file_is_a_clear_error_and_is_kept(tmp_path):
    directory, staging = tmp_path / ".mltest", tmp_path / "staging"
    directory.mkdir()
    (directory / "baselines.json").write_text("{not json")
    BaselineStore(directory, staging=staging).put("sanity", "cpu", {})
    with pytest.raises(BaselineError, match=r"baselines\.json: not valid JSON.*restore it"):
        commit_staged(staging, directory)
    with pytest.raises(BaselineError, match="not valid JSON"):
        BaselineStore(directory).put("sanity", "cpu", {})
    assert (directory / "baselines.json").read_text() == "{not json"


def test_a_staged_file_of_the_wrong_shape_is_refused(tmp_path):
    directory, staging = tmp_path / ".mltest", tmp_path / "staging"
    staging.mkdir()
    (staging / "baselines.json").write_text('{"format_version": 1, "checks": {"a": [1]}}')
    with pytest.raises(BaselineError, match="`checks` must map"):
        commit_staged(staging, directory)


def test_commit_with_nothing_staged_writes_nothing(tmp_path):
    assert commit_staged(tmp_path / "missing", tmp_path / ".mltest") == []
    (tmp_path / "empty").mkdir()
    assert commit_staged(tmp_path / "empty", tmp_path / ".mltest") == []
    assert not (tmp_path / ".mltest").exists()
