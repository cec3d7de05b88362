"""The supervisor decides: a worker that exits, crashes, hangs or is cancelled is an ERROR that
says how, the other checks' results are kept, and the report is always final and flagged.

Real processes and real signals throughout: the model code below really calls sys.exit,
os._exit, kills itself or segfaults inside `training_step`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mltest.cli import main
from mltest.supervisor import run_suite
from tests.suites import copy_example

ROOT = Path(__file__).resolve().parents[1]

# Appended to the tabular example's model.py: a subclass whose training_step misbehaves.
BROKEN = """

import os as _os
import sys as _sys
import time as _time
from pathlib import Path as _Path


class Broken(TabularMLP):
    def training_step(self, batch, batch_idx):
        _Path(__file__).with_name("training.started").touch()
        {action}
        return super().training_step(batch, batch_idx)
"""

ACTIONS = {
    "sys.exit(0)": ("_sys.exit(0)", "sys.exit(0)"),
    "sys.exit(3)": ("_sys.exit(3)", "sys.exit(3)"),
    "os._exit(0)": ("_os._exit(0)", "exited with code 0"),
    "SIGKILL": ("_os.kill(_os.getpid(), 9)", "was killed by SIGKILL"),
    "segfault": ("import ctypes; ctypes.string_at(0)", "was killed by SIGSEGV"),
}


def broken_suite(tmp_path: Path, action: str, **yaml_edits: str) -> Path:
    """The tabular example whose model crashes in training_step; regression uses the fresh
    init (no training) and the configured task (no step to detect it), so it still runs and
    passes in the fresh worker."""
    config = copy_example("tabular", tmp_path)
    model = config.parent / "model.py"
    model.write_text(model.read_text() + BROKEN.format(action=action))
    text = config.read_text().replace("class: model:TabularMLP", "class: model:Broken")
    text = text.replace(
        "model_under_test: {source: train, epochs: 3, seed: 0}",
        "task: {kind: classification, class_axis: -1, classes: 3}",
    )
    for old, new in yaml_edits.items():
        assert old in text
        text = text.replace(old, new)
    config.write_text(text)
    return config


def read(report_dir: Path) -> dict:
    return json.loads((report_dir / "report.json").read_text())


def statuses(report: dict) -> dict[str, str]:
    return {c["name"]: c["status"] for c in report["checks"]}


@pytest.mark.slow
@pytest.mark.parametrize("name", ACTIONS)
def test_a_worker_that_ends_mid_check_is_an_error_and_the_other_checks_still_run(
    tmp_path, name
):
    action, expected = ACTIONS[name]
    config = broken_suite(tmp_path, action)
    code = main(
        ["baseline", "update", "--config", str(config), "--report-dir", str(tmp_path / "r"),
         "--check", "memorization", "--check", "regression"]
    )  # fmt: skip
    report = read(tmp_path / "r")
    assert code == 2 and report["verdict"] == "error" and report["complete"] is True
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["memorization"]["status"] == "error"
    assert expected in checks["memorization"]["summary"]
    assert checks["regression"]["status"] == "pass"  # ran on in a fresh worker
    if name == "segfault":  # faulthandler's dump names the user's frame
        assert "model.py" in checks["memorization"]["summary"]
        assert "training_step" in checks["memorization"]["details"]


@pytest.mark.slow
def test_a_hung_check_is_stopped_at_its_budget_and_the_next_check_passes(tmp_path):
    config = broken_suite(
        tmp_path,
        "_time.sleep(1000)",
        # Room for the worker's start (torch imports, slow on a loaded machine) in the budget.
        **{"    max_epochs: 300\n": "    max_epochs: 300\n    time_budget_s: 30\n"},
    )
    started = time.monotonic()
    report = run_suite(
        config, tmp_path / "r", update_baselines=True, only=["memorization", "regression"]
    )
    assert time.monotonic() - started < 240  # the sleep is 1000 s: what counts is that it ends
    first, second = report.checks[0], report.checks[2]
    assert report.checks[1].name == "sanity"
    assert (first.name, first.status.value) == ("memorization", "error")
    assert "ran past its time budget of 30 s" in first.summary
    assert "checks.memorization.time_budget_s" in first.summary
    assert "model.py:" in first.summary and "training_step" in first.summary
    assert "sleep" in first.details or "training_step" in first.details
    assert (second.name, second.status.value) == ("regression", "pass")


@pytest.mark.slow
def test_max_time_bounds_the_whole_suite(tmp_path):
    config = broken_suite(tmp_path, "_time.sleep(1000)")
    started = time.monotonic()
    report = run_suite(config, tmp_path / "r", max_time_s=4)
    assert time.monotonic() - started < 30
    by_name = {c.name: c for c in report.checks}
    assert by_name["memorization"].status.value == "error"
    assert "--max-time" in by_name["memorization"].summary
    assert by_name["sanity"].status.value == "skipped"
    assert report.verdict.value == "error"


def start_cli(config: Path, report_dir: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "mltest", "run", "--config", str(config),
         "--report-dir", str(report_dir)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


def wait_for(path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_mid_training_gives_a_final_cancelled_report_within_10_s(tmp_path, sig):
    config = broken_suite(tmp_path, "_time.sleep(0.2)")
    process = start_cli(config, tmp_path / "r")
    wait_for(config.parent / "training.started")
    sent = time.monotonic()
    process.send_signal(sig)
    assert process.wait(timeout=10) == 2
    assert time.monotonic() - sent < 10
    report = read(tmp_path / "r")
    assert report["complete"] is True and report["cancelled"] is True
    assert report["verdict"] == "error"
    memorization = report["checks"][0]
    assert memorization["status"] == "error"
    assert f"cancelled ({sig.name})" in memorization["summary"]
    assert {c["status"] for c in report["checks"][1:]} <= {"skipped"}
    assert (tmp_path / "r" / "report.md").exists()


@pytest.mark.slow
def test_kill_9_of_the_supervisor_leaves_an_incomplete_report_and_no_stale_files(tmp_path):
    report_dir = tmp_path / "r"
    report_dir.mkdir()
    (report_dir / "report.md").write_text("## ✅ mltest: all checks passed (from an old run)\n")
    (report_dir / "junit.xml").write_text("<testsuites/>\n")
    config = broken_suite(tmp_path, "_time.sleep(0.2)")
    process = start_cli(config, report_dir)
    wait_for(config.parent / "training.started")
    process.kill()
    process.wait(10)
    report = read(report_dir)
    assert report["complete"] is False and report["verdict"] == "error"
    assert not (report_dir / "report.md").exists() and not (report_dir / "junit.xml").exists()
    # the worker dies with its supervisor (no orphan keeps training on the runner)
    marker = config.parent / "training.started"
    marker.unlink()
    time.sleep(1.5)
    assert not marker.exists()


SPY = """

import os as _os
from pathlib import Path as _Path

_Path(__file__).with_name("worker_env.json").write_text(__import__("json").dumps(dict(_os.environ)))
"""

SECRETS = {
    "MLTEST_GITHUB_TOKEN": "ghs_secret1",
    "GITHUB_TOKEN": "ghs_secret2",
    "GH_TOKEN": "ghs_secret3",
    "INPUT_GITHUB-TOKEN": "ghs_secret4",
    "ACTIONS_RUNTIME_TOKEN": "secret5",
    "ACTIONS_ID_TOKEN_REQUEST_URL": "https://secret6",
    "HF_TOKEN": "secret7",
    "AWS_SECRET_ACCESS_KEY": "secret8",
    "CUDA_API_KEY": "secret9",
    "GITHUB_OUTPUT": "/runner/_temp/file_commands/set_output_x",
    "GITHUB_ENV": "/runner/_temp/file_commands/set_env_x",
    "GITHUB_STEP_SUMMARY": "/runner/_temp/file_commands/summary_x",
}


def test_the_worker_sees_no_token_and_no_runner_file_commands(tmp_path):
    config = copy_example("tabular", tmp_path)
    model = config.parent / "model.py"
    model.write_text(model.read_text() + SPY)
    environ = {**os.environ, **SECRETS, "CUDA_VISIBLE_DEVICES": "", "LANG": "C.UTF-8"}
    run_suite(config, tmp_path / "r", only=["sanity"], environ=environ)
    seen = json.loads((config.parent / "worker_env.json").read_text())
    assert not set(SECRETS) & set(seen)
    assert not any("secret" in value for value in seen.values())
    assert seen["LANG"] == "C.UTF-8" and "CUDA_VISIBLE_DEVICES" in seen and "PATH" in seen


def test_pass_env_lets_a_named_variable_through(tmp_path):
    config = copy_example("tabular", tmp_path)
    model = config.parent / "model.py"
    model.write_text(model.read_text() + SPY)
    environ = {**os.environ, "WANDB_MODE": "offline", "GITHUB_TOKEN": "ghs_x"}
    run_suite(config, tmp_path / "r", only=["sanity"], environ=environ, pass_env=["WANDB_MODE"])
    seen = json.loads((config.parent / "worker_env.json").read_text())
    assert seen["WANDB_MODE"] == "offline" and "GITHUB_TOKEN" not in seen


def test_a_config_that_does_not_parse_keeps_its_suite_name(tmp_path):
    config = copy_example("tabular", tmp_path)
    config.write_text(config.read_text().replace("max_epochs: 300", "max_epoch: 300"))
    report = run_suite(config, tmp_path / "r")
    assert report.suite == "tabular" and report.errors and report.verdict.value == "error"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
def test_the_supervisor_makes_itself_unreadable_to_processes_of_the_same_user():
    # Non-dumpable: /proc/PID/environ and mem of the process holding a token are closed to the
    # worker (same uid). Checked in a child so the test process itself stays debuggable.
    code = (
        "import ctypes; from mltest.process_guard import protect_from_other_processes as p; "
        "libc = ctypes.CDLL(None); before = libc.prctl(3, 0, 0, 0, 0); p(); "
        "print(before, libc.prctl(3, 0, 0, 0, 0))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.split() == ["1", "0"], out.stderr


@pytest.mark.slow
def test_a_ddp_strategy_runs_the_checks_in_two_ranks_and_rank_0_alone_reports(tmp_path):
    # Lightning starts rank 1 by running the worker module again; it runs the same checks
    # (its training steps meet rank 0's over gloo) but sends nothing and stages apart.
    config = copy_example("tabular", tmp_path)
    text = config.read_text().replace("accelerator: auto", "accelerator: cpu")
    config.write_text(text.replace("  devices: 1\n", "  devices: 2\n  strategy: ddp\n"))
    lines: list[str] = []
    report = run_suite(
        config,
        tmp_path / "r",
        only=["memorization", "sanity", "regression"],
        on_result=lambda result: lines.append(result.name),
    )
    from mltest.config import CHECK_MODULES

    assert lines == list(CHECK_MODULES)  # once each; those not selected as skipped
    assert report.complete
    # Two processes are another environment (each rank trains on its shard): the example's
    # one-process baseline and golden are not compared, the run says to record this one.
    checks = {c.name: c for c in report.checks}
    # Sanity's probes see the model's own input under the strategy's forward redirection.
    assert checks["sanity"].status.value == "pass", checks["sanity"].summary
    for name in ("memorization", "regression"):
        assert checks[name].status.value == "error", checks[name].summary
        assert "this run is cpu-torch2.13-32-true-world2" in checks[name].summary
        assert "recorded for cpu-torch2.13-32-true," in checks[name].summary
    assert report.verdict.exit_code == 2


def test_baseline_update_records_every_check_although_checks_finish_back_to_back(tmp_path):
    # The supervisor commits a check's staged files while the worker already runs the next
    # check; each check stages in a folder of its own, so nothing is lost.
    import shutil

    config = copy_example("tabular", tmp_path)
    shutil.rmtree(config.parent / ".mltest")
    report = run_suite(config, tmp_path / "r", update_baselines=True)
    assert report.verdict.value == "pass", [c.summary for c in report.checks]
    recorded = json.loads((config.parent / ".mltest" / "baselines.json").read_text())
    assert set(recorded["checks"]) == {"memorization", "sanity", "regression", "key_examples"}


@pytest.mark.slow
def test_a_project_import_that_hangs_is_stopped_on_the_first_checks_budget(tmp_path):
    config = copy_example("tabular", tmp_path)
    model = config.parent / "model.py"
    model.write_text("import time\ntime.sleep(1000)\n" + model.read_text())
    # The budget covers the worker's start (torch and Lightning imports, seconds on a loaded
    # machine) before the project's import: leave room to reach the sleep.
    text = config.read_text().replace("max_epochs: 300", "max_epochs: 300\n    time_budget_s: 30")
    config.write_text(text)
    started = time.monotonic()
    report = run_suite(config, tmp_path / "r", only=["memorization"])
    assert time.monotonic() - started < 240
    first = report.checks[0]
    assert first.status.value == "error" and "time budget of 30 s" in first.summary
    assert "model.py:2" in first.summary


def test_a_stack_names_the_users_frame_not_the_interpreters_import_machinery():
    from mltest.worker_handle import user_frame_in_stack

    stack = (
        "Current thread 0x1 (most recent call first):\n"
        '  File "<frozen importlib._bootstrap>", line 690 in _load_unlocked\n'
        '  File "/repo/project/model.py", line 2 in <module>\n'
        '  File "<frozen importlib._bootstrap>", line 241 in _call_with_frames_removed\n'
    )
    assert user_frame_in_stack(stack) == "model.py:2 in <module>"
