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

    from mltest.checks.memorization.fit import seed_threads
    from mltest.engine import device_for
    from mltest.seeding import apply_determinism, determinism_mode, isolated_global_state

    device = device_for(ctx.trainer_settings)
    with isolated_global_state():
        model, batches = ctx.project.fresh_start(seed, settings.batches)
        apply_determinism(determinism_mode(ctx.trainer_settings))  # as the check runs
        if device.type == "cpu":
            torch.set_num_threads(seed_threads(settings.threads))
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
    from mltest.checks.memorization.fit import train_seed

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


# --- section: memorization speed against plain training (issue 10) ---------------------------

_SMALL_CNN = (
    {"class": "bench.models:SmallCNN"},
    {"class": "bench.models:ImageData", "init_args": {"size": 24, "rows": 64, "batch_size": 32}},
)


def _resnet(depth: int, size: int, batch: int) -> tuple[dict, dict]:
    return (
        {"class": "bench.models:ResNet", "init_args": {"depth": depth}},
        {
            "class": "bench.models:ImageData",
            "init_args": {"size": size, "rows": batch, "batch_size": batch},
        },
    )


# name: (model, data), device, (short, long) epochs, target for the check/training ratio
SPEED_ROWS: dict[str, tuple[tuple[dict, dict], str, tuple[int, int], float | None]] = {
    "small CNN 3x24x24, batch 32, CPU": (_SMALL_CNN, "cpu", (5, 25), 1.5),
    "ResNet-18 3x32x32, batch 16, CPU": (_resnet(18, 32, 16), "cpu", (2, 6), None),
    "ResNet-50 3x128x128, batch 64, CUDA": (_resnet(50, 128, 64), "cuda", (5, 25), 1.15),
    "ResNet-18 3x64x64, batch 64, CUDA": (_resnet(18, 64, 64), "cuda", (5, 25), None),
    "MediumNet width 32, CUDA": (
        (
            {"class": "bench.models:MediumNet", "init_args": {"width": 32}},
            {"class": "bench.models:BenchData", "init_args": {"kind": "images", "rows": 64}},
        ),
        "cuda",
        (5, 25),
        None,
    ),
}


def _speed_config(sections: tuple[dict, dict], device: str, epochs: int, seeds=(0,)) -> Any:
    model, data = sections
    checks = {"memorization": {"batches": 1, "max_epochs": epochs, "target": {"loss_below": 0.0}}}
    trainer = {"accelerator": "gpu" if device == "cuda" else "cpu", "devices": 1}
    return write_config(checks, model=model, data=data, seeds=list(seeds), trainer=trainer)


def plain_training(ctx, settings, seed: int, *, judged: bool, mode: Any = None) -> None:
    """Plain PyTorch on the check's seeded model and batches, for `max_epochs` epochs.

    Same device, thread count and determinism mode as the check (`mode` overrides the mode);
    `judged` adds what a hand-written loop would do to judge the target: the eval-mode loss
    over the batches after each epoch, read back as a float.
    """
    import torch

    from mltest.checks.memorization.fit import seed_threads
    from mltest.engine import device_for
    from mltest.seeding import apply_determinism, determinism_mode, isolated_global_state

    device = device_for(ctx.trainer_settings)
    with isolated_global_state():
        model, batches = ctx.project.fresh_start(seed, settings.batches)
        apply_determinism(determinism_mode(ctx.trainer_settings) if mode is None else mode)
        if device.type == "cpu":
            torch.set_num_threads(seed_threads(settings.threads))
        model = model.to(device)
        batches = [[t.to(device) for t in batch] for batch in batches]
        optimizer = model.configure_optimizers()
        for _ in range(settings.max_epochs):
            model.train()
            for index, batch in enumerate(batches):
                optimizer.zero_grad()
                model.training_step(batch, index).backward()
                optimizer.step()
            if judged:
                model.eval()
                with torch.no_grad():
                    losses = [float(model.training_step(b, i)) for i, b in enumerate(batches)]
                settings.target.met(sum(losses) / len(losses), {})
        if device.type == "cuda":
            torch.cuda.synchronize()


def speed(quick: bool) -> dict[str, Any]:
    """Plain training / judged plain training / the check, per epoch and in total, per model
    and device (CUDA rows only where CUDA is), plus 3 seeds against one."""
    import torch

    from bench.models import torchvision_available
    from mltest.seeding import prepare_process

    cuda = torch.cuda.is_available()
    out: dict[str, Any] = {
        "torchvision": torchvision_available(),
        "resnet": "torchvision" if torchvision_available() else "built-in fallback (bench.models)",
        "determinism": "warn (the default): the plain loops run under the same flags",
        "threads_per_seed": "checks.memorization.threads (default 1); the plain loops use it too",
        "rows": {},
    }
    if cuda:
        try:
            prepare_process()  # cuBLAS determinism must be set before CUDA starts
        except RuntimeError as exc:
            out["cuda_note"] = str(exc)
    else:
        out["cuda"] = "not measured: torch sees no CUDA device on this machine"
    for name, (sections, device, (short, long), target) in SPEED_ROWS.items():
        if device == "cuda" and not cuda:
            continue
        if quick:
            short, long = 1, 3
        out["rows"][name] = _speed_row(sections, device, short, long, target, quick)
    out["seeds"] = _seeds_ratio(quick)
    return out


def _speed_row(sections, device, short, long, target, quick) -> dict[str, Any]:
    from mltest.checks.memorization.fit import train_seed

    contexts = {
        n: context(_speed_config(sections, device, n), "memorization") for n in (short, long)
    }
    fns: dict[str, Any] = {}
    for n, (ctx, settings) in contexts.items():
        fns[f"plain@{n}"] = lambda c=ctx, s=settings: plain_training(c, s, 0, judged=False)
        fns[f"judged@{n}"] = lambda c=ctx, s=settings: plain_training(c, s, 0, judged=True)
        fns[f"check@{n}"] = lambda c=ctx, s=settings: train_seed(c, s, 0)
        if device == "cuda":  # what deterministic kernels cost, for the record
            fns[f"plain_nondeterministic@{n}"] = lambda c=ctx, s=settings: plain_training(
                c, s, 0, judged=False, mode=False
            )
    for fn in fns.values():  # warm-up: imports, allocator, cuDNN handles
        fn()
    times = alternate(fns, 1 if quick else 3)
    row: dict[str, Any] = {"device": device, "epochs": [short, long]}
    for side in sorted({key.split("@")[0] for key in fns}):
        t_short, t_long = best(times[f"{side}@{short}"]), best(times[f"{side}@{long}"])
        per_epoch = (t_long - t_short) / (long - short)
        if per_epoch <= 0:  # noise swamped the difference: fall back to the average
            per_epoch = t_long / long
        row[side] = {"per_epoch_ms": per_epoch * 1000, f"total_s_at_{long}": t_long}
    plain = max(row["plain"]["per_epoch_ms"], 1e-9)
    row["ratio_per_epoch"] = row["check"]["per_epoch_ms"] / plain
    row["judged_ratio_per_epoch"] = row["judged"]["per_epoch_ms"] / plain
    row["ratio_total"] = paired_ratio(times[f"check@{long}"], times[f"plain@{long}"])
    if target is not None:
        row["target_ratio"] = target
    return row


def _seeds_ratio(quick: bool) -> dict[str, Any]:
    """The whole check (`run`) with 3 seeds against 1 seed, same epochs per seed."""
    from mltest.checks.memorization import run

    epochs = 3 if quick else 25
    contexts = {
        count: context(_speed_config(_SMALL_CNN, "cpu", epochs, range(count)), "memorization")
        for count in (1, 3)
    }
    fns = {str(count): (lambda c=c: run(*c)) for count, c in contexts.items()}
    for fn in fns.values():
        fn()
    times = alternate(fns, 1 if quick else 3)
    one, three = best(times["1"]), best(times["3"])
    return {
        "model": "small CNN 3x24x24, batch 32, CPU",
        "epochs_per_seed": epochs,
        "one_seed_s": one,
        "three_seeds_s": three,
        "ratio": three / one,
        "target_ratio": 3.1,
    }
