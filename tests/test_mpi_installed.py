"""A machine with mpi4py installed (NVIDIA's containers, HPC images): Lightning's Trainer
imports `mpi4py.MPI` to ask whether it runs under MPI, and `MPI_Init` aborts the process when
Open MPI cannot start in it (seen on a GPU machine: every check's worker exited with code 1).
mltest's worker is never started by a cluster launcher, so its Trainer is given Lightning's
plain environment and MPI is never started.
"""

from __future__ import annotations

from mltest.report import Verdict
from mltest.supervisor import run_suite
from tests.suites import copy_example

# An installed mpi4py whose MPI cannot start: importing `mpi4py.MPI` leaves a mark and ends
# the process, as a failed MPI_Init does.
_BROKEN_MPI = {
    "mpi4py/__init__.py": "",
    "mpi4py/MPI.py": (
        "import os, pathlib\n"
        "pathlib.Path(__file__).with_name('started').write_text('MPI_Init')\n"
        "os._exit(1)\n"
    ),
    "mpi4py-4.1.2.dist-info/METADATA": "Metadata-Version: 2.1\nName: mpi4py\nVersion: 4.1.2\n",
    "mpi4py-4.1.2.dist-info/RECORD": "",
}


def test_a_single_process_run_never_starts_mpi_when_mpi4py_is_installed(tmp_path):
    config = copy_example("tabular", tmp_path)
    for name, text in _BROKEN_MPI.items():
        (config.parent / name).parent.mkdir(exist_ok=True)
        (config.parent / name).write_text(text)
    report = run_suite(config, tmp_path / "report", only=["memorization", "sanity"])
    assert report.verdict is Verdict.PASS, [(c.name, c.summary) for c in report.checks]
    assert not (config.parent / "mpi4py" / "started").exists()
