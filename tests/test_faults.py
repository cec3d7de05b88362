"""Every path ends, and the verdict stays the supervisor's: honest faults and misbehaving
model code against real worker processes, real signals, real pipes and real files.

Each test is a symptom that the supervisor once got wrong: a hang nothing bounded, a death
seen only at the budget, a deadline the worker could move, a crash of mltest itself read as
"a check failed". Timings are asserted as bounds far from both the normal case and the bug.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mltest.supervisor import run_suite
from tests.hostile import hostile_suite

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def github():
    from tests.github.fake_github import FakeGitHub

    with FakeGitHub() as fake:
        yield fake


def cli(*args: str, timeout: float = 180, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m mltest ...` as a real process, killed if it outlives `timeout`."""
    return subprocess.run(
        [sys.executable, "-m", "mltest", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def wait_for_file(path: Path, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)
    return path.read_text()


# --- hangs that nothing bounded ----------------------------------------------------------------


@pytest.mark.slow
def test_a_65000_character_exception_message_ends_the_run_and_the_comment(tmp_path, github):
    # A tensor printed in an assert: the report used to render forever, after every check.
    config = hostile_suite(tmp_path, 'raise AssertionError("tensor([" + "0.123, " * 9300 + "])")')
    report_dir = tmp_path / "r"
    done = cli("run", "--config", str(config), "--report-dir", str(report_dir),
               "--check", "sanity", timeout=240)  # fmt: skip
    assert done.returncode == 2, done.stderr[-2000:]
    assert len((report_dir / "report.md").read_text()) <= 65_536
    # mltest comment on a report that holds the whole message (report files are untrusted
    # data: nothing says another tool bounded them) ends too, and the comment fits.
    data = json.loads((report_dir / "report.json").read_text())
    data["checks"][1]["summary"] = "x" * 65_000
    data["checks"][1]["details"] = "y" * 70_000
    (report_dir / "report.json").write_text(json.dumps(data))
    posted = cli("comment", "--report", str(report_dir), "--repo", "Codertocat/Hello-World",
                 "--pr", "2", "--comment-id", "long", timeout=60,
                 env={"GITHUB_TOKEN": "ghs_jobtoken", "GITHUB_API_URL": github.url})  # fmt: skip
    assert posted.returncode == 0, posted.stderr[-2000:]
    [comment] = github.issue_comments("Codertocat/Hello-World", 2)
    assert len(comment["body"]) <= 65_536


@pytest.mark.slow
def test_a_worker_stopped_from_outside_is_killed_and_the_run_goes_on(tmp_path):
    config = hostile_suite(
        tmp_path,
        """
        (_HERE / "worker.pid").write_text(str(_os.getpid()))
        _time.sleep(1000)
        """,
        budget_s=300,
    )
    stopper = threading.Thread(
        target=lambda: os.kill(int(wait_for_file(config.parent / "worker.pid")), signal.SIGSTOP)
    )
    stopper.start()
    started = time.monotonic()
    report = run_suite(config, tmp_path / "r", only=["sanity"])
    stopper.join()
    assert time.monotonic() - started < 120  # the budget is 300 s: it was not the budget
    sanity = next(c for c in report.checks if c.name == "sanity")
    assert sanity.status.value == "error"
    assert "was stopped (SIGSTOP, or a debugger attached)" in sanity.summary
    assert not alive(int((config.parent / "worker.pid").read_text()))


@pytest.mark.slow
def test_sending_start_again_does_not_move_the_deadline(tmp_path):
    config = hostile_suite(
        tmp_path,
        """
        for _ in range(120):
            _sender().send("start", check="sanity")
            _time.sleep(1)
        return _passed()
        """,
        budget_s=60,
    )
    started = time.monotonic()
    report = run_suite(config, tmp_path / "r", only=["sanity"])
    assert time.monotonic() - started < 100  # 120 s of restarts: it was not let run on
    sanity = next(c for c in report.checks if c.name == "sanity")
    assert sanity.status.value == "error" and "out of turn" in sanity.summary
    assert report.verdict.value == "error"


@pytest.mark.slow
def test_a_helper_holding_the_pipe_does_not_hide_a_killed_worker(tmp_path):
    # The out-of-memory killer takes the worker; a helper it forked still holds the pipe open.
    config = hostile_suite(
        tmp_path,
        """
        helper = _os.fork()
        if helper == 0:
            _time.sleep(1000)
            _os._exit(0)
        (_HERE / "helper.pid").write_text(str(helper))
        _os.kill(_os.getpid(), _signal.SIGKILL)
        """,
        budget_s=300,
    )
    started = time.monotonic()
    report = run_suite(config, tmp_path / "r", only=["sanity"])
    assert time.monotonic() - started < 120  # seen when it died, not at the 300 s budget
    sanity = next(c for c in report.checks if c.name == "sanity")
    assert "was killed by SIGKILL" in sanity.summary and "time budget" not in sanity.summary
    assert not alive(int((config.parent / "helper.pid").read_text()))


# --- messages the supervisor does not take -----------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # only the supervisor's plan skips a configured check
        ('return _Result("sanity", "sanity", _Status.SKIPPED, "skipped by the model")',
         "reported this check as skipped"),
        # a passing result of the wrong shape (every field there, a summary that is no text)
        ('_sender().send("result", result={**_passed().to_dict(), "summary": ["not", "text"]})'
         "\n_os._exit(0)", "sent a bad result (`summary` is a list, not a string)"),
    ],
    ids=["skipped", "bad-shape"],
)  # fmt: skip
def test_a_result_the_supervisor_cannot_accept_is_an_error(tmp_path, body, expected):
    config = hostile_suite(tmp_path, body)
    report = run_suite(config, tmp_path / "r", only=["sanity"])
    sanity = next(c for c in report.checks if c.name == "sanity")
    assert sanity.status.value == "error" and expected in sanity.summary
    assert report.verdict.exit_code == 2


def test_metrics_nested_600_deep_are_left_out_with_a_notice_not_a_traceback(tmp_path):
    config = hostile_suite(
        tmp_path,
        """
        deep = leaf = {}
        for _ in range(600):
            leaf["x"] = {}
            leaf = leaf["x"]
        _sender().send("result", result={"status": "pass", "summary": "fine", "metrics": deep})
        _os._exit(0)
        """,
    )
    report = run_suite(config, tmp_path / "r", only=["sanity"])
    sanity = next(c for c in report.checks if c.name == "sanity")
    assert sanity.status.value == "pass" and sanity.metrics == {}
    assert any("nested more than 16 levels" in n for n in sanity.notices)
    assert json.loads((tmp_path / "r" / "report.json").read_text())["verdict"] == "pass"


@pytest.mark.slow
def test_a_60_mb_message_is_refused_at_once_with_a_clear_error(tmp_path):
    config = hostile_suite(
        tmp_path,
        """
        big = {"status": "pass", "summary": "x", "details": "y" * 60_000_000}
        _sender().send("result", result=big)
        _os._exit(0)
        """,
    )
    started = time.monotonic()
    report = run_suite(config, tmp_path / "r", only=["sanity"])
    assert time.monotonic() - started < 60  # it took 47-85 s to swallow, with ~500 MB
    sanity = next(c for c in report.checks if c.name == "sanity")
    assert sanity.status.value == "error"
    assert "a message of more than 16 MiB" in sanity.summary


def test_the_receiver_takes_a_large_message_in_linear_time():
    # One copy per message, not one per read: 15 MB arriving 1 KiB at a time (a slow writer)
    # cost over 100 GB of copying with a buffer joined on every read.
    from mltest.channel import Receiver

    message = {"type": "result", "result": {"details": "y" * 15_000_000}}
    line = (json.dumps(message) + "\n").encode()
    receiver = Receiver()
    started = time.monotonic()
    messages = []
    for start in range(0, len(line), 1024):
        messages += receiver.feed(line[start : start + 1024])
    assert len(messages) == 1 and len(messages[0]["result"]["details"]) == 15_000_000
    assert time.monotonic() - started < 10  # linear: well under a second


# --- mltest's own failures are exit 2 with a message ---------------------------------------


@pytest.mark.slow
def test_a_full_disk_is_exit_2_with_a_message_and_every_check_still_runs(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12k", "tmpfs", str(disk)],
                             capture_output=True)  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode()[-200:]}")
    try:
        config = hostile_suite(tmp_path, 'return _passed("x" * 1500)')  # grows report.json
        done = cli("run", "--config", str(config), "--report-dir", str(disk / "r"),
                   "--check", "sanity", "--check", "regression")  # fmt: skip
    finally:
        subprocess.run(["umount", str(disk)], check=False)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "No space left on device" in done.stderr and "Traceback" not in done.stderr
    assert "PASS    regression" in done.stdout  # the checks after the failed write still ran


def test_a_report_json_replaced_by_a_folder_is_exit_2_and_the_other_files_are_written(tmp_path):
    config = hostile_suite(tmp_path, "return _passed()")
    report_dir = tmp_path / "r"
    (report_dir / "report.json").mkdir(parents=True)
    done = cli("run", "--config", str(config), "--report-dir", str(report_dir),
               "--check", "sanity")  # fmt: skip
    assert done.returncode == 2, done.stderr[-2000:]
    assert "could not write" in done.stderr and "report.json" in done.stderr
    assert "Traceback" not in done.stderr
    assert "💥" in (report_dir / "report.md").read_text()  # the Markdown says error too


def test_a_report_folder_swapped_for_a_link_is_not_written_through(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    report_dir = tmp_path / "r"
    config = hostile_suite(
        tmp_path,
        f"""
        _os.rename({str(report_dir)!r}, {str(report_dir)!r} + ".moved")
        _os.symlink({str(elsewhere)!r}, {str(report_dir)!r})
        return _passed()
        """,
    )
    report = run_suite(config, report_dir, only=["sanity"])
    assert list(elsewhere.iterdir()) == []  # nothing went through the link
    assert report.verdict.exit_code == 2
    assert any("was moved or replaced" in e for e in report.errors)
    moved = json.loads((tmp_path / "r.moved" / "report.json").read_text())
    assert moved["verdict"] == "error" and moved["complete"] is True
