"""Nothing of the worker outlives the run, and the model code cannot reach the supervisor, the
runner's file commands or the job log's workflow commands (docs/security.md).

One real run of model code that tries all of it at once, under GitHub Actions' environment:
real signals, a real `setsid` daemon, a forked helper, the runner's real files.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mltest.process_tree import Containment, process_table
from tests.hostile import hostile_suite
from tests.test_faults import alive

ROOT = Path(__file__).resolve().parents[1]

DAEMON = """
import os, sys, time
from pathlib import Path
here = Path(sys.argv[1])
if os.fork():  # a daemon as daemons are made: fork, setsid, fork again
    os._exit(0)
os.setsid()
if os.fork():
    os._exit(0)
(here / "daemon.pid").write_text(str(os.getpid()))
time.sleep(4)  # until the supervisor has finished: then forge its work
with open((here / "runner_files.json").read_text().split("|")[1], "a") as out:
    out.write("result=pass\\n")
Path(sys.argv[2], "report.json").write_text('{"verdict": "pass"}')
(here / "daemon.woke").write_text("the daemon outlived the run")
"""

HOSTILE = f"""
try:
    _os.kill(_os.getppid(), _signal.SIGSTOP)
    (_HERE / "sigstop.txt").write_text("sent")
except PermissionError:
    (_HERE / "sigstop.txt").write_text("refused")
# a daemon that leaves mltest's marker behind (a clean environment) and calls setsid
_subprocess.Popen(
    [_sys.executable, "-c", {DAEMON!r}, str(_HERE), (_HERE / "report_dir.txt").read_text()],
    env={{"PATH": _os.environ["PATH"]}}, start_new_session=True,
    stdin=_subprocess.DEVNULL, stdout=_subprocess.DEVNULL, stderr=_subprocess.DEVNULL,
).wait()
helper = _os.fork()  # a helper that keeps the environment and just stays
if helper == 0:
    _time.sleep(1000)
    _os._exit(0)
(_HERE / "helper.pid").write_text(str(helper))
github_env = (_HERE / "runner_files.json").read_text().split("|")[0]
with open(github_env, "a") as env_file:
    env_file.write("BASH_ENV=/tmp/planted-by-the-model\\n")
print("::error::forged by the model", flush=True)
print("::add-mask::mltest", flush=True)
print("::set-output name=result::pass", flush=True)
return _passed()
"""


@pytest.mark.slow
def test_model_code_cannot_stop_the_supervisor_outlive_the_run_or_steer_the_runner(tmp_path):
    config = hostile_suite(tmp_path, HOSTILE)
    project = config.parent
    report_dir = tmp_path / "r"
    runner = tmp_path / "runner"
    runner.mkdir()
    files = {name: runner / name for name in ("env", "output", "summary", "path")}
    files["env"].write_text("EARLIER=1\n")
    for name in ("output", "summary", "path"):
        files[name].write_text("")
    (project / "runner_files.json").write_text(f"{files['env']}|{files['output']}")
    (project / "report_dir.txt").write_text(str(report_dir))
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "GITHUB_ACTIONS": "true",
        "GITHUB_ENV": str(files["env"]),
        "GITHUB_OUTPUT": str(files["output"]),
        "GITHUB_STEP_SUMMARY": str(files["summary"]),
        "GITHUB_PATH": str(files["path"]),
    }
    done = subprocess.run(
        [sys.executable, "-m", "mltest", "run", "--config", str(config),
         "--report-dir", str(report_dir), "--check", "sanity"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    written = (report_dir / "report.json").read_text()

    # The supervisor could not be stopped, and ended with the verdict its own checks give.
    assert (project / "sigstop.txt").read_text() == "refused"
    report = json.loads(written)
    assert done.returncode == 2 and report["verdict"] == "error", done.stderr[-2000:]
    assert any("$GITHUB_ENV" in error for error in report["errors"])
    # What the model wrote to the runner's files during the run is gone again.
    assert files["env"].read_text() == "EARLIER=1\n"
    # Nothing it started is left: not the forked helper, not the setsid daemon, whose
    # forgeries (a result=pass output, a passing report.json) never happen.
    time.sleep(6)
    assert not (project / "daemon.woke").exists()
    assert not alive(int((project / "helper.pid").read_text()))
    assert not alive(int((project / "daemon.pid").read_text()))
    assert files["output"].read_text() == ""
    assert (report_dir / "report.json").read_text() == written
    # Its workflow commands reach the job log with commands paused, by a token it never saw.
    lines = done.stdout.splitlines()
    [pause] = [line for line in lines if line.startswith("::stop-commands::")]
    token = pause.removeprefix("::stop-commands::")
    assert re.fullmatch(r"[0-9a-f]{32}", token)
    forged = lines.index("::error::forged by the model")
    assert lines.index(pause) < forged < lines.index(f"::{token}::")
    assert token not in json.dumps(dict(os.environ))


def test_a_sweep_kills_a_daemon_that_dropped_the_marker_and_left_its_parent(tmp_path):
    # The subreaper layer on its own: the daemon's parent exits at once and its environment
    # holds no marker; being re-parented to this process is what finds it.
    code = (
        "import os, sys, time\n"
        "if os.fork(): os._exit(0)\n"
        "os.setsid()\n"
        "open(sys.argv[1], 'w').write(str(os.getpid()))\n"
        "time.sleep(1000)\n"
    )
    pid_file = tmp_path / "daemon.pid"
    with Containment() as tree:
        if not tree.subreaper:
            pytest.skip("no subreaper on this platform")
        clean = {"PATH": os.environ["PATH"]}  # no marker
        subprocess.run([sys.executable, "-c", code, str(pid_file)], env=clean, check=True)
        deadline = time.monotonic() + 30
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        daemon = int(pid_file.read_text())
        assert process_table()[daemon][0] == os.getpid()  # re-parented here, not to init
        assert daemon in tree.sweep()
    assert not alive(daemon)


@pytest.mark.skipif(not Path("/sys/fs/cgroup/cgroup.controllers").exists(), reason="no cgroup v2")
def test_where_a_cgroup_can_be_made_the_worker_tree_lives_in_it(tmp_path):
    with Containment() as tree:
        if tree.cgroup is None:
            pytest.skip("this process may not create a cgroup (no delegation)")
        child = subprocess.Popen(["sleep", "1000"])
        tree.adopt(child.pid)
        assert str(child.pid) in (tree.cgroup / "cgroup.procs").read_text().split()
        assert child.pid in tree.sweep()
    assert not alive(child.pid)


def test_a_forgotten_secret_is_gone_from_proc_environ(tmp_path):
    # /proc/<pid>/environ shows the environment a process started with: popping the variable
    # is not enough, the value must be wiped in place (root's model code reads every environ).
    code = (
        "import os\n"
        "from mltest.process_guard import forget_secrets\n"
        "assert forget_secrets(['MLTEST_GITHUB_TOKEN', 'ABSENT']) == ['MLTEST_GITHUB_TOKEN']\n"
        "data = open('/proc/self/environ', 'rb').read()\n"
        "print(b'ghs_secret' in data, 'MLTEST_GITHUB_TOKEN' in os.environ, b'KEEP=1' in data)\n"
    )
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), "KEEP": "1",
           "MLTEST_GITHUB_TOKEN": "ghs_secret"}  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.split() == ["False", "False", "True"], out.stderr
