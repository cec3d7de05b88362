"""Sections 1 and 2: the memorization check against a plain PyTorch loop, and seeds.

The plain loop does what the check does, without Lightning: same seeded model and batches,
the model's own `training_step` and `configure_optimizers`, and the same eval-mode loss over
the batches before training and after every epoch. The target is unreachable (loss < 0) so
both run exactly the same number of epochs.
"""

from __future__ import annotations

import os
import time
from typing import Any

from bench.common import alternate, best, context, paired_ratio, write_config

SIZES = {
    # name: model section, data section, (short, long) epoch counts
    "tiny": (
        {"class": "bench.models:TinyNet"},
        {"class": "bench.models:BenchData", "init_args": {"kind": "table"}},
        (40, 160),
    ),
    "medium": (
        {"class": "bench.models:MediumNet", "init_args": {"width": 16}},
        {"class": "bench.models:BenchData", "init_args": {"kind": "images", "rows": 256}},
        (5, 20),
    ),
}


def _config(
    size: str, epochs: int, target: dict | None = None, seeds=(0,), workers: Any = 1
) -> Any:
    model, data, _ = SIZES[size]
    checks = {
        "memorization": {
            "batches": 1,
            "max_epochs": epochs,
            "target": target or {"loss_below": 0.0},
            "workers": workers,
        }
    }
    return write_config(checks, model=model, data=data, seeds=list(seeds))


def plain_loop(ctx, settings, seed: int) -> int:
    """Train like the check, in plain PyTorch; returns the epochs run."""
    import torch

    from mltest.engine import device_for
    from mltest.seeding import isolated_global_state

    device = device_for(ctx.trainer_settings)
    with isolated_global_state():
        model, batches = ctx.project.fresh_start(seed, settings.batches)
        model = model.to(device)
        batches = [[t.to(device) for t in batch] for batch in batches]
        optimizer = model.configure_optimizers()

        def eval_loss() -> float:
            model.eval()
            with torch.no_grad():
                losses = [float(model.training_step(b, i)) for i, b in enumerate(batches)]
            model.train()
            return sum(losses) / len(losses)

        met = settings.target.met
        if met(eval_loss(), {}):
            return 0
        for epoch in range(1, settings.max_epochs + 1):
            model.train()
            for index, batch in enumerate(batches):
                optimizer.zero_grad()
                model.training_step(batch, index).backward()
                optimizer.step()
            if met(eval_loss(), {}):
                return epoch
        return settings.max_epochs


def overhead(quick: bool) -> dict[str, Any]:
    """Section 1: per-epoch ratio and fixed setup cost, for the tiny and the medium model."""
    from mltest.checks.memorization_fit import train_seed

    results = {}
    for size, (_, _, (short, long)) in SIZES.items():
        if quick:
            short, long = 2, 8
        contexts = {n: context(_config(size, n), "memorization") for n in (short, long)}
        fns = {}
        for n, (ctx, settings) in contexts.items():
            fns[f"check@{n}"] = lambda c=ctx, s=settings: train_seed(c, s, 0)
            fns[f"plain@{n}"] = lambda c=ctx, s=settings: plain_loop(c, s, 0)
        for fn in fns.values():  # warm-up: first-call import and allocation costs
            fn()
        times = alternate(fns, 1 if quick else 5)
        fit = {}
        for side in ("check", "plain"):
            t_short, t_long = best(times[f"{side}@{short}"]), best(times[f"{side}@{long}"])
            per_epoch = (t_long - t_short) / (long - short)
            if per_epoch <= 0:  # noise swamped the difference (quick mode): no fixed-cost split
                per_epoch = t_long / long
            fit[side] = {
                "per_epoch_ms": per_epoch * 1000,
                "setup_s": max(t_short - per_epoch * short, 0.0),
                f"total_s_at_{long}": t_long,
            }
        results[size] = {
            "epochs": [short, long],
            "check": fit["check"],
            "plain": fit["plain"],
            "ratio_per_epoch": fit["check"]["per_epoch_ms"]
            / max(fit["plain"]["per_epoch_ms"], 1e-9),
            "ratio_total": paired_ratio(times[f"check@{long}"], times[f"plain@{long}"]),
            "setup_extra_s": fit["check"]["setup_s"] - fit["plain"]["setup_s"],
            "targets": {"ratio_per_epoch": 2.0 if size == "tiny" else 1.15, "setup_s": 0.5},
        }
    return results


# --- section 2: seeds --------------------------------------------------------------------------


def seeds(quick: bool) -> dict[str, Any]:
    """Section 2: 1, 3 and 5 seeds one after another, and with the check's `workers: auto`.

    Wall time, always: concurrency is the point. Sequential seeds get every core (torch's
    default), whatever --threads pinned for the in-process ratios; each forked worker uses one.
    """
    import torch

    counts = (1, 2) if quick else (1, 3, 5)
    cores = os.cpu_count() or 1
    threads_before = torch.get_num_threads()
    torch.set_num_threads(cores)
    try:
        return _seeds(quick, counts, cores)
    finally:
        torch.set_num_threads(threads_before)


def _seeds(quick: bool, counts: tuple[int, ...], cores: int) -> dict[str, Any]:
    from mltest.checks.memorization import run

    out: dict[str, Any] = {"cores": cores}
    for size in ("tiny",) if quick else ("tiny", "medium"):
        epochs = 3 if quick else (300 if size == "tiny" else 60)
        target = {"loss_below": 0.05}
        rows = {}
        for count in counts:
            modes = {
                mode: context(_config(size, epochs, target, range(count), mode), "memorization")
                for mode in (1, "auto")
            }
            results: dict[Any, Any] = {}
            times: dict[Any, list[float]] = {1: [], "auto": []}
            for ctx, settings in modes.values():
                run(ctx, settings)  # warm-up
            for _ in range(1 if quick else 2):  # alternate sequential and worker rounds
                for mode, (ctx, settings) in modes.items():
                    started = time.perf_counter()
                    results[mode] = run(ctx, settings)
                    times[mode].append(time.perf_counter() - started)
            sequential, parallel = results[1], results["auto"]
            rows[str(count)] = {
                "sequential_s": min(times[1]),
                "workers_auto_s": min(times["auto"]),
                "workers": min(count, cores),
                "workers_speedup": min(times[1]) / min(times["auto"]),
                "epochs": sequential.metrics["epochs"],
                "workers_same_epochs": parallel.metrics["epochs"] == sequential.metrics["epochs"],
                "workers_notices": parallel.notices,
            }
        out[size] = rows
    return out
