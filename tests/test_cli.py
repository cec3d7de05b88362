"""The command line as a user meets it: help without torch, exit codes, report files."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.suites import EXAMPLES, copy_example


def mltest(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "mltest", *args], capture_output=True, text=True, cwd=cwd,
        timeout=600,
    )


def test_help_and_version_do_not_import_torch():
    probe = (
        "import sys; from mltest.cli import main\n"
        "for argv in (['--version'], ['--help'], ['run', '--help'], ['comment', '--help'],\n"
        "             ['init', '--help']):\n"
        "    try: main(argv)\n"
        "    except SystemExit: pass\n"
        "heavy = [m for m in ('torch', 'pytorch_lightning', 'pandas') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout


def test_no_command_prints_usage_and_exits_2():
    out = mltest()
    assert out.returncode == 2
    assert "usage: mltest" in out.stderr


def test_run_writes_every_report_file_and_prints_one_line_per_check(tmp_path):
    config = copy_example("tabular", tmp_path)
    out = mltest("run", "--config", str(config), "--report-dir", str(tmp_path / "rep"),
                 "--check", "memorization")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "PASS    memorization  memorized in 14 epochs" in out.stdout
    assert "mltest tabular: PASS" in out.stdout
    assert "\033[" not in out.stdout  # no colour when not on a TTY
    for name in ("report.json", "report.md", "junit.xml"):
        assert (tmp_path / "rep" / name).exists()
    meta = json.loads((tmp_path / "rep" / "report.json").read_text())["metadata"]
    assert meta["torch"].startswith("2.") and meta["seeds"] == [0, 1, 2]


def test_defaults_are_mltest_yaml_and_mltest_report_in_the_working_dir(tmp_path):
    config = copy_example("tabular", tmp_path)
    out = mltest("run", "--check", "memorization", cwd=config.parent)
    assert out.returncode == 0, out.stdout + out.stderr
    assert (config.parent / "mltest-report" / "report.json").exists()
    assert not (config.parent / "lightning_logs").exists()  # nothing left in the user's repo


@pytest.mark.slow
@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir()))
def test_every_bundled_example_passes_its_whole_suite(tmp_path, example):
    config = copy_example(example, tmp_path)
    out = mltest("run", "--config", str(config), "--report-dir", str(tmp_path / "rep"))
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert out.returncode == 0, out.stdout + out.stderr
    assert report["verdict"] == "pass"
    assert report["counts"]["fail"] == report["counts"]["error"] == 0


def test_a_closed_pipe_does_not_stop_the_suite(tmp_path):
    config = copy_example("tabular", tmp_path)
    command = (
        f"{sys.executable} -m mltest run --config {config} --report-dir {tmp_path / 'rep'} "
        "--check memorization --check sanity | head -1"
    )
    out = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=600)
    assert "BrokenPipeError" not in out.stderr
    counts = json.loads((tmp_path / "rep" / "report.json").read_text())["counts"]
    assert counts["pass"] == 2
