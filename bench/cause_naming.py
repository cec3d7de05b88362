"""How often a report names the cause of a bug, and where: three model families, each with
bug variants and harmless variants written as a pull request's source edits (issue 20).

    python -m bench.cause_naming                 # all families; table, bench/cause_naming.json
    python -m bench.cause_naming --family unet   # one family
    python -m bench.cause_naming --no-cost       # skip the cost section
    python -m bench.cause_naming --threads 1 --cpu-time   # a busy machine (CPU time, 1 thread)

For each family the correct model's baselines and golden outputs are recorded once
(`run_suite(update_baselines=True)`, what `mltest baseline update` runs); each variant is a
copy of that project with its edits applied, run as `mltest run` runs it, and its report.json
is classified by `bench.cause_classify` (see there for what "named" means).
The cost section (`bench.cause_cost`) times the sanity check's probes and the regression
check's module trace on each family's correct model.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from bench.cause_classify import classify
from bench.cause_models.variants import FAMILIES, Family, Variant

MODELS = Path(__file__).resolve().parent / "cause_models"
OUTCOMES = ("named", "not named", "moved outputs only", "crashed", "missed")


def write_project(family: Family, directory: Path) -> Path:
    """The family's correct project: model.py (its module, model and data) and mltest.yaml."""
    directory.mkdir(parents=True)
    shutil.copy(MODELS / family.module, directory / "model.py")
    config = {
        "suite": f"cause-{family.name}",
        "model": {"class": f"model:{family.model}"},
        "data": {"class": f"model:{family.data}"},
        "trainer": {"accelerator": "cpu", "devices": 1},
        **family.config,
    }
    path = directory / "mltest.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def apply_edits(path: Path, variant: Variant) -> None:
    text = path.read_text()
    for old, new in variant.edits:
        if old not in text:
            raise ValueError(f"variant {variant.name}: edit target {old!r} not in {path.name}")
        text = text.replace(old, new)
    path.write_text(text)


def run(config: Path, report_dir: Path, update: bool = False) -> dict[str, Any]:
    """One suite run as `mltest run` (or `mltest baseline update`) does it; report.json's data."""
    from mltest.supervisor import run_suite

    run_suite(config, report_dir, update_baselines=update, allow_outside_repo=True)
    return json.loads((report_dir / "report.json").read_text())


def run_family(family: Family, root: Path, only: list[str] | None = None) -> dict[str, Any]:
    """Record the correct model's baselines, then run and classify every (or `only`) variant."""
    correct = write_project(family, root / family.name / "correct")
    started = time.perf_counter()
    recorded = run(correct, root / family.name / "record", update=True)
    if recorded["verdict"] != "pass":
        raise RuntimeError(f"{family.name}: recording the correct model's baselines did not "
                           f"pass: {_failures(recorded)}")  # fmt: skip
    check = run(correct, root / family.name / "correct-report")
    rows = [{"variant": "correct", "cause": "", "harmless": True,
             **classify(check, Variant("correct", "", ()))}]  # fmt: skip
    for variant in family.variants:
        if only and variant.name not in only:
            continue
        project = root / family.name / variant.name
        shutil.copytree(correct.parent, project)
        apply_edits(project / "model.py", variant)
        began = time.perf_counter()
        report = run(project / "mltest.yaml", root / family.name / f"{variant.name}-report")
        rows.append({
            "variant": variant.name,
            "cause": variant.cause,
            "harmless": variant.harmless,
            **classify(report, variant),
            "seconds": round(time.perf_counter() - began, 1),
        })  # fmt: skip
    seconds = round(time.perf_counter() - started, 1)
    return {"family": family.name, "rows": rows, "seconds": seconds, "project": str(correct)}


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    bugs = [r for r in rows if not r["harmless"]]
    harmless = [r for r in rows if r["harmless"]]
    counts = {o: sum(r["outcome"] == o for r in bugs) for o in OUTCOMES}
    return {
        "bugs": len(bugs),
        **counts,
        "named_share": round(counts["named"] / len(bugs), 3) if bugs else None,
        "harmless": len(harmless),
        "false_alarms": sum(r["outcome"] == "false alarm" for r in harmless),
    }


def table(results: list[dict[str, Any]]) -> str:
    """Markdown: one row per variant, then one per family."""
    lines = ["| family | variant | bug | outcome | named by | what the report says first |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for result in results:
        for r in result["rows"]:
            said = r["evidence"].replace("|", "\\|")[:160]
            lines.append(f"| {result['family']} | {r['variant']} | {r['cause'] or 'harmless'} | "
                         f"{r['outcome']} | {r['named_by'] or ''} | {said} |")  # fmt: skip
    lines += ["", "| family | bugs | named | not named | moved outputs only | crashed | missed "
              "| harmless | false alarms |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for result in [*results, {"family": "all", "rows": [r for x in results for r in x["rows"]]}]:
        s = summary(result["rows"])
        cells = [result["family"], s["bugs"], f"{s['named']} ({s['named_share']:.0%})",
                 *(s[o] for o in OUTCOMES[1:]), s["harmless"], s["false_alarms"]]  # fmt: skip
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines)


def _failures(report: dict[str, Any]) -> str:
    bad = [f"{c['name']}: {c['status']}: {c['summary']}" for c in report["checks"]
           if c["status"] != "pass"]  # fmt: skip
    return "; ".join(bad + report.get("errors", []))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.cause_naming",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--family", action="append", choices=sorted(FAMILIES))
    parser.add_argument("--variant", action="append", help="run just these variants")
    parser.add_argument("--json", type=Path, default=Path("bench/cause_naming.json"))
    parser.add_argument("--no-cost", action="store_true", help="skip the cost section")
    parser.add_argument("--keep", action="store_true", help="keep the temporary projects")
    parser.add_argument("--threads", type=int, help="torch threads for the cost section")
    parser.add_argument(
        "--cpu-time", action="store_true", help="time the cost by process CPU time (busy machine)"
    )
    args = parser.parse_args(argv)

    from bench.common import machine, use_clock

    use_clock(args.cpu_time, args.threads)

    root = Path(tempfile.mkdtemp(prefix="mltest-cause-"))
    info = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "clock": "process CPU time" if args.cpu_time else "wall clock"}  # fmt: skip
    results, costs = [], []
    try:
        for name in args.family or list(FAMILIES):
            result = run_family(FAMILIES[name], root, args.variant)
            results.append(result)
            print(f"{name}: {summary(result['rows'])} ({result['seconds']} s)", flush=True)
            if not args.no_cost:
                from bench.cause_cost import cost

                failing = next((root / name / r["variant"] / "mltest.yaml" for r in result["rows"]
                                if r["statuses"].get("regression") == "fail"), None)  # fmt: skip
                figures = cost(Path(result["project"]), root / name, failing)
                costs.append({"family": name, **figures})
                print(f"{name} cost: {costs[-1]}", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print(table(results))
    everything = [r for x in results for r in x["rows"]]
    families = [{k: v for k, v in r.items() if k != "project"} for r in results]  # temp paths
    data = {**info, "summary": summary(everything), "families": families, "cost": costs}
    args.json.write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
