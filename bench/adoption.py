"""Adoption: from a partial mltest.yaml (model, data, trainer) to a passing baseline, timed.

For the segmentation and autoencoder examples and the GAN example without its
`validation_step` (as Lightning's own GAN has none): copy the project without its baselines,
keep only what a new user writes (the config's lines before the block `mltest init` wrote, or
before `seeds:` for the GAN), then run, as the user would, `mltest init --config mltest.yaml`
and `mltest baseline update --config mltest.yaml`, each in a subprocess. Reports wall and CPU
seconds of each command (CPU: this process's children, so a busy machine moves it less), and
whether the update passed on the first try.

    python -m bench.adoption [--json PATH] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
INIT_BLOCK = "\n# --- "  # where the block `mltest init` wrote begins


def _partial(name: str, project: Path) -> None:
    """Reduce a copied example to what a new user writes."""
    config = project / "mltest.yaml"
    text = config.read_text()
    if name == "gan":
        model = project / "model.py"
        source = model.read_text()
        start, end = source.index("    def validation_step"), source.index("    def predict_step")
        model.write_text(source[:start] + source[end:])
        config.write_text(text[: text.index("seeds:")])
    else:
        config.write_text(text[: text.index(INIT_BLOCK)].rstrip("\n") + "\n")
    shutil.rmtree(project / ".mltest", ignore_errors=True)


def _timed(args: list[str], cwd: Path) -> dict[str, Any]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "mltest", *args], cwd=cwd, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"exit_code": done.returncode, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
            "output": done.stdout[-2000:] + done.stderr[-2000:]}


def adopt(name: str, workdir: Path) -> dict[str, Any]:
    project = workdir / name
    shutil.copytree(REPO / "examples" / name, project,
                    ignore=shutil.ignore_patterns("__pycache__", ".mltest"))
    _partial(name, project)
    init = _timed(["init", "--config", "mltest.yaml"], project)
    update = _timed(["baseline", "update", "--config", "mltest.yaml", "--report-dir",
                     str(workdir / f"{name}-report")], project)
    return {
        "init": init,
        "baseline_update": update,
        "first_try": init["exit_code"] == 0 and update["exit_code"] == 0,
        "total_wall_s": round(init["wall_s"] + update["wall_s"], 1),
        "total_cpu_s": round(init["cpu_s"] + update["cpu_s"], 1),
        "config": (project / "mltest.yaml").read_text(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    parser.add_argument("--only", action="append", help="segmentation, autoencoder or gan")
    args = parser.parse_args(argv)
    names = args.only or ["segmentation", "autoencoder", "gan"]
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="mltest-adoption-"))
    workdir.mkdir(parents=True, exist_ok=True)
    results = {"load_average": os.getloadavg()[0]}
    for name in names:
        results[name] = adopt(name, workdir)
        row = results[name]
        print(f"{name:13} init {row['init']['wall_s']:6.1f} s wall ({row['init']['cpu_s']:.1f} s "
              f"CPU), baseline update {row['baseline_update']['wall_s']:6.1f} s wall "
              f"({row['baseline_update']['cpu_s']:.1f} s CPU), first try: {row['first_try']}",
              flush=True)
    results["load_average_after"] = os.getloadavg()[0]
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if all(results[n]["first_try"] for n in names) else 1


if __name__ == "__main__":
    sys.exit(main())
