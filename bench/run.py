"""Run every benchmark, print a table, write JSON.

    python -m bench.run [--quick] [--json bench/results.json] [--only NAME ...]
                        [--threads N] [--cpu-time]

`--quick` is the CI smoke mode: tiny sizes, one round, no figures worth quoting.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _sections() -> dict[str, Callable[[bool], dict[str, Any]]]:
    from bench import (
        evaluation,
        memorization,
        prediction,
        startup,
        suite,
        supervision,
        torchtest_cmp,
    )

    return {
        "startup": startup.startup,  # first, before this process warms any cache
        "memorization_overhead": memorization.overhead,
        "seeds": memorization.seeds,
        "memorization_speed": memorization.speed,
        "prediction_checks": prediction.prediction_checks,
        "golden_compare": prediction.golden_compare,
        "whole_suite": suite.whole_suite,
        "supervision": supervision.supervision,
        "against_torchtest": torchtest_cmp.against_torchtest,
        "evaluation_gate": evaluation.evaluation_gate,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke mode: small and fast")
    parser.add_argument("--json", type=Path, default=Path("bench/results.json"))
    parser.add_argument("--only", action="append", metavar="NAME", help="run just this section")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument(
        "--rows", action="append", metavar="TEXT",
        help="memorization_speed: only the rows whose name contains TEXT (`seeds` for the "
        "3-seed row), e.g. --rows '1 thread' --rows seeds",
    )  # fmt: skip
    parser.add_argument(
        "--cpu-time", action="store_true",
        help="time in-process comparisons by process CPU time (steadier on a busy machine; "
        "use with --threads 1)",
    )
    args = parser.parse_args(argv)
    # As the worker does before CUDA starts (reading the machine's GPU name starts it): cuBLAS
    # reads this once, and the deterministic sides would run without it.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

    from bench.common import machine, use_clock

    use_clock(args.cpu_time, args.threads)
    from mltest.engine import quiet

    _freeze_imports()

    sections = _sections()
    if args.rows:
        from bench import memorization

        memorization.ROWS[:] = args.rows
    unknown = set(args.only or ()) - set(sections)
    if unknown:
        parser.error(f"unknown section(s) {sorted(unknown)}; known: {', '.join(sections)}")
    results: dict[str, Any] = {
        "quick": args.quick,
        "clock": "process CPU time" if args.cpu_time else "wall",
        "machine": machine(),
        "sections": {},
    }
    for name, fn in sections.items():
        if args.only and name not in args.only:
            continue
        started = time.perf_counter()
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        with quiet():
            results["sections"][name] = fn(args.quick)
        results["sections"][name]["bench_seconds"] = round(time.perf_counter() - started, 2)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(table(results))
    print(f"\nJSON written to {args.json}")
    return 0


def _freeze_imports() -> None:
    """As the worker does before any check runs (`mltest.worker`): torch's and Lightning's
    objects out of the garbage collector's walks, so a full collection set off by one side of
    a comparison does not walk them for 0.2 s."""
    import gc

    import pytorch_lightning  # noqa: F401
    import torch  # noqa: F401

    gc.freeze()


def table(results: dict[str, Any]) -> str:
    """The figures a person compares with the targets, one row each."""
    s = results["sections"]
    rows: list[tuple[str, str, str]] = []

    def add(what: str, value: str, target: str = "") -> None:
        rows.append((what, value, target))

    if "startup" in s:
        st = s["startup"]
        for arg in ("--help", "--version"):
            torch = "imports torch!" if st[arg]["torch_imported"] else "no torch"
            add(f"mltest {arg}", f"{st[arg]['seconds']:.3f} s ({torch})", "< 0.3 s, no torch")
        add("mltest run -> first check's result", f"{st['run_to_first_check']['seconds']:.2f} s")
    if "memorization_overhead" in s:
        for size, r in s["memorization_overhead"].items():
            if isinstance(r, dict) and "check" in r:
                _memorization_rows(add, f"memorization {size}", r)
    if "seeds" in s:
        for size in ("tiny", "medium"):
            for count, r in s["seeds"].get(size, {}).items():
                extra = ""
                if r["workers"] > 1:
                    extra = (f"; workers: auto ({r['workers']} processes) "
                             f"{r['workers_auto_s']:.2f} s (x{r['workers_speedup']:.2f}, "
                             f"same epochs: {r['workers_same_epochs']})")
                add(f"seeds {size} x{count}", f"{r['sequential_s']:.2f} s sequential{extra}")
    if "memorization_speed" in s:
        m = s["memorization_speed"]
        for name, r in m["rows"].items():
            _memorization_rows(add, f"memorization {name}", r)
        if "seeds" in m:
            sr = m["seeds"]
            add("memorization 3 seeds / 1 seed", f"x{sr['ratio']:.2f} ({sr['three_seeds_s']:.2f} "
                f"vs {sr['one_seed_s']:.2f} s)", f"<= {sr['target_ratio']}")
        if "cuda" in m:
            add("memorization on CUDA", m["cuda"])
    if "prediction_checks" in s:
        p = s["prediction_checks"]
        for name in ("predict", "regression", "regression_file_inputs", "key_examples"):
            det = p[name].get("throughput_ratio_deterministic")
            loader = p[name].get("throughput_ratio_data_module")
            own = p[name].get("throughput_ratio_own_inputs")
            add(f"{name} on {p['examples']} examples: throughput ratio",
                f"{p[name]['throughput_ratio']:.2f}"
                + (f" ({det:.2f} vs plain in the same determinism mode)" if det else "")
                + (f" ({loader:.2f} vs a plain loop over the data module)" if loader else "")
                + (f" ({own:.2f} vs a plain loop over the rows and collate)" if own else ""),
                ">= 0.8")
    if "golden_compare" in s:
        g = s["golden_compare"]
        add(f"golden compare {g['floats']:,} floats", f"{g['unchanged_s']:.3f} s "
            f"({g['one_percent_moved_s']:.3f} s with 1% moved)", "< 1 s")
    if "whole_suite" in s:
        for name, r in s["whole_suite"].items():
            if isinstance(r, dict) and "wall_s" in r:
                gpu = f", GPU {r['cuda_peak_mb']:.0f} MB" if r["cuda_peak_mb"] else ""
                add(f"suite {name}", f"{r['wall_s']:.1f} s, RSS {r['peak_rss_mb']:.0f} MB{gpu}"
                    f", exit {r['exit_code']}", "< 60 s")
    if "supervision" in s:
        w = s["supervision"]["worker_start"]
        add("worker: spawn -> facts / -> first check",
            f"{w['to_facts_s']:.2f} s / {w['to_first_check_s']:.2f} s")
        for name, r in s["supervision"].items():
            if isinstance(r, dict) and "ratio" in r:
                add(f"supervised suite {name} vs one process",
                    f"x{r['ratio']:.2f} ({r['supervised_s']:.1f} vs {r['in_process_s']:.1f} s)",
                    f"<= {r['target']}")
    if "against_torchtest" in s:
        t = s["against_torchtest"]
        if "skipped" in t:
            add("sanity vs torchtest", t["skipped"])
        else:
            add("sanity vs torchtest: time", f"{t['sanity_s']:.3f} s vs {t['torchtest_s']:.3f} s "
                f"(x{t['ratio']:.1f})")
            pr = t["probes"]
            add("sanity probes: one step / default", f"{pr['one_step_s']:.3f} s / "
                f"{pr['default_s']:.3f} s (x{pr['ratio_default_vs_one_step']:.2f}; gradient "
                f"check {pr['gradient_check_s']:.3f} s; +{pr['added_in_plain_steps']:.0f} "
                f"plain steps of {pr['plain_step_s'] * 1e3:.2f} ms)")
            add("broken variants caught", f"mltest {t['caught']['mltest']}/{t['caught']['of']}, "
                f"torchtest {t['caught']['torchtest']}/{t['caught']['of']}")
            for label, v in t["variants"].items():
                add(f"  {label}", f"mltest {'FAIL' if v['mltest_caught'] else 'pass'}, "
                    f"torchtest {'FAIL' if v['torchtest_caught'] else 'pass'}")
    if "evaluation_gate" in s:
        from bench.evaluation import table_rows

        rows += table_rows(s["evaluation_gate"])
    width = max(len(r[0]) for r in rows) if rows else 10
    vwidth = max(len(r[1]) for r in rows) if rows else 10
    lines = [f"{'benchmark':<{width}}  {'measured':<{vwidth}}  target", "-" * (width + vwidth + 12)]
    lines += [f"{a:<{width}}  {b:<{vwidth}}  {c}" for a, b, c in rows]
    return "\n".join(lines)


def _memorization_rows(add: Callable[..., None], label: str, r: dict[str, Any]) -> None:
    """Per-epoch cost of the check and its companions against the plain loop, with spread."""

    def ratio(side: str) -> str:
        low, high = r[f"{side}_spread"]
        return f"x{r[f'{side}_ratio']:.2f} [{low:.2f}-{high:.2f}]"

    ms = {side: r[side]["per_epoch_ms"] for side in r if isinstance(r[side], dict)}
    target = f"<= {r['target_ratio']}" if "target_ratio" in r else ""
    add(f"{label}: check / plain per epoch",
        f"{ratio('check')} ({ms['check']:.2f} vs {ms['plain']:.2f} ms, {r['rounds']} rounds)",
        target)  # fmt: skip
    add(f"{label}: judged plain / plain", f"{ratio('judged')} ({ms['judged']:.2f} ms)")
    add(f"{label}: check in Lightning's loop / plain",
        f"{ratio('check_lightning')} ({ms['check_lightning']:.2f} ms)")  # fmt: skip
    if "plain_deterministic" in r:
        add(f"{label}: plain, deterministic / plain",
            f"{ratio('plain_deterministic')} ({ms['plain_deterministic']:.2f} ms)")  # fmt: skip
    if "judged_deterministic" in r:
        add(f"{label}: judged plain, deterministic / plain (the check's floor)",
            f"{ratio('judged_deterministic')} ({ms['judged_deterministic']:.2f} ms)")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
