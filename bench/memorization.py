"""Memorization against what a user compares it with: the same model trained by hand.

Every row times four ways of training the same seeded model on the same batch, in the same
process, at the same torch thread count:

- `plain`: the loop a person would write (`bench.plain_loop`): the LightningModule's own
  `training_step`, `backward` and optimizer, and nothing else;
- `judged`: that loop plus the least a memorization check must add each epoch, the eval-mode
  loss on the batch read back as a float: the floor any exact per-epoch judgement stands on;
- `check`: the memorization check itself (`run`, one seed, its default lean loop);
- `check_lightning`: the same check with Lightning's own fit loop (what the lean loop saves).

On CUDA a fifth, `plain_deterministic`, is the plain loop under the check's default
determinism mode (`trainer.deterministic: warn`), to show what deterministic kernels cost apart
from what mltest adds. The target is unreachable (loss < 0), so every run trains exactly the
epochs asked. Per epoch = (long run - short run) / (long - short epochs), which cancels each
side's fixed cost (Trainer, data, first call); rounds interleave the sides (the order reverses
every other round) and the figures are medians over rounds with their spread (min-max), the
ratios medians of per-round ratios.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import common
from bench.common import alternate, best, context, write_config
from bench.plain_loop import PlainLoop

SIZES = {
    # name: model section, data section, (short, long) epoch counts
    "tiny": (
        {"class": "bench.models:TinyNet"},
        {"class": "bench.models:BenchData", "init_args": {"kind": "table"}},
        (40, 320),
    ),
    "medium": (
        {"class": "bench.models:MediumNet", "init_args": {"width": 16}},
        {"class": "bench.models:BenchData", "init_args": {"kind": "images", "rows": 256}},
        (5, 40),
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


# --- the measurement every row shares -------------------------------------------------------


def _speed_config(
    sections: tuple[dict, dict],
    device: str,
    epochs: int,
    threads: int = 1,
    seeds=(0,),
    folder: Path | None = None,
) -> Path:
    """A memorization config with an unreachable target; in `folder` when the model's module
    lives there, else in a fresh temp dir (classes in `bench.models`)."""
    model, data = sections
    checks = {
        "memorization": {
            "batches": 1,
            "max_epochs": epochs,
            "target": {"loss_below": 0.0},
            "threads": threads,
        }
    }
    trainer = {"accelerator": "gpu" if device == "cuda" else "cpu", "devices": 1}
    path = write_config(checks, model=model, data=data, seeds=list(seeds), trainer=trainer)
    if folder is None:
        return path
    moved = folder / f"mltest-{epochs}-{threads}-{len(list(seeds))}.yaml"
    moved.write_text(path.read_text())
    return moved


@contextlib.contextmanager
def _lightnings_loop():
    """The check with Lightning's own fit loop instead of mltest's lean one."""
    import functools

    from mltest.checks.memorization import fit

    lean = fit.train_seed
    fit.train_seed = functools.partial(lean, lean=False)
    try:
        yield
    finally:
        fit.train_seed = lean


def measure_row(
    sections: tuple[dict, dict],
    device: str,
    epochs: tuple[int, int],
    *,
    threads: int = 1,
    rounds: int = 5,
    folder: Path | None = None,
) -> dict[str, Any]:
    """Per-epoch milliseconds of every side, their spread, and each side's ratio to `plain`."""
    from mltest.checks.base import Deadline
    from mltest.checks.memorization import run

    short, long = epochs
    configs = {n: _speed_config(sections, device, n, threads, folder=folder) for n in epochs}
    contexts = {n: context(path, "memorization") for n, path in configs.items()}
    plain = PlainLoop(configs[short], device, threads)

    def check(n: int) -> Any:
        ctx, settings = contexts[n]
        ctx.deadline = Deadline(ctx.name, settings.time_budget_s)  # a budget per run, as a run
        return run(ctx, settings)

    def check_lightning(n: int) -> Any:
        with _lightnings_loop():
            return check(n)

    sides: dict[str, Callable[[int], Any]] = {
        "plain": lambda n: plain.train(n),
        "judged": lambda n: plain.train(n, judged=True),
        "check": check,
    }

    sides["check_lightning"] = check_lightning
    # The check predicts and trains under its default determinism mode (warn-only
    # deterministic algorithms), which costs the plain loop too, on the CPU as well (batch
    # norm and convolutions take other kernels): the floor under the check's own mode.
    sides["plain_deterministic"] = lambda n: plain.train(n, deterministic=True)
    sides["judged_deterministic"] = lambda n: plain.train(n, judged=True, deterministic=True)
    for side in sides.values():  # warm-up: imports, allocator, cuDNN handles
        side(short)
    times: dict[str, dict[int, list[float]]] = {name: {short: [], long: []} for name in sides}
    names = list(sides)
    for round_ in range(rounds):
        for name in names if round_ % 2 == 0 else names[::-1]:
            for n in epochs if round_ % 2 == 0 else epochs[::-1]:
                started = common.CLOCK()
                sides[name](n)
                times[name][n].append(common.CLOCK() - started)
    row: dict[str, Any] = {
        "device": device,
        "threads": threads,
        "epochs": [short, long],
        "rounds": rounds,
    }
    per_round = {
        name: [_per_epoch_ms(a, b, short, long) for a, b in zip(t[short], t[long], strict=True)]
        for name, t in times.items()
    }
    for name, values in per_round.items():
        row[name] = {
            "per_epoch_ms": statistics.median(values),
            "per_epoch_ms_spread": [min(values), max(values)],
            "per_epoch_ms_rounds": values,
            "fixed_s": statistics.median(
                max(a - v / 1000 * short, 0.0)
                for a, v in zip(times[name][short], values, strict=True)
            ),
            f"total_s_at_{long}": statistics.median(times[name][long]),
        }
    for name in names[1:]:
        ratios = [a / b for a, b in zip(per_round[name], per_round["plain"], strict=True)]
        row[f"{name}_ratio"] = statistics.median(ratios)
        row[f"{name}_spread"] = [min(ratios), max(ratios)]
    return row


def _per_epoch_ms(short_s: float, long_s: float, short: int, long: int) -> float:
    """The difference of the two runs per epoch; the long run's average when noise swamped
    the difference (quick mode's one- and three-epoch runs)."""
    per_epoch = (long_s - short_s) / (long - short)
    return (per_epoch if per_epoch > 0 else long_s / long) * 1000


def _load() -> dict[str, Any]:
    """What the machine was doing while the figures were taken."""
    with contextlib.suppress(OSError):
        return {"load_average": [round(v, 2) for v in os.getloadavg()], "cores": os.cpu_count()}
    return {"cores": os.cpu_count()}


# --- section 1: tiny and medium models ------------------------------------------------------


def overhead(quick: bool) -> dict[str, Any]:
    """Section 1: the check against the plain loop for the tiny MLP and the medium CNN."""
    results: dict[str, Any] = {"load_before": _load()}
    for size, (model, data, epochs) in SIZES.items():
        results[size] = measure_row(
            (model, data), "cpu", (1, 3) if quick else epochs, rounds=1 if quick else 5
        )
    results["load_after"] = _load()
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


# --- section: memorization speed against plain training ----------------------------------

_SMALL_CNN = (
    {"class": "bench.models:SmallCNN"},
    {"class": "bench.models:ImageData", "init_args": {"size": 24, "rows": 64, "batch_size": 32}},
)
_EXAMPLE_CNN = (  # examples/image_classifier's model: 1x16x16 shapes, batch 32
    {"class": "model:SmallCNN", "init_args": {"lr": 0.01}},
    {"class": "data:ShapesDataModule", "init_args": {"batch_size": 32}},
)


def _resnet(depth: int, size: int, batch: int) -> tuple[dict, dict]:
    return (
        {"class": "bench.models:ResNet", "init_args": {"depth": depth}},
        {
            "class": "bench.models:ImageData",
            "init_args": {"size": size, "rows": batch, "batch_size": batch},
        },
    )


# name: (model, data), device, (short, long) epochs, threads, target for check / plain
SPEED_ROWS: dict[str, tuple[tuple[dict, dict], str, tuple[int, int], int, float | None]] = {
    "small CNN 3x24x24, batch 32, CPU, 1 thread": (_SMALL_CNN, "cpu", (20, 320), 1, 1.5),
    "small CNN 3x24x24, batch 32, CPU, 2 threads": (_SMALL_CNN, "cpu", (20, 320), 2, 1.5),
    "examples/image_classifier CNN 1x16x16, batch 32, CPU, 1 thread": (
        _EXAMPLE_CNN, "cpu", (20, 320), 1, 1.5),
    "ResNet-18 3x32x32, batch 16, CPU, 1 thread": (_resnet(18, 32, 16), "cpu", (2, 8), 1, None),
    # CUDA: 10 and 60 epochs (5 and 25 left a 0.5 s difference on an H200, too noisy)
    "ResNet-50 3x128x128, batch 64, CUDA": (_resnet(50, 128, 64), "cuda", (10, 60), 1, 1.15),
    "ResNet-18 3x64x64, batch 64, CUDA": (_resnet(18, 64, 64), "cuda", (10, 60), 1, None),
    "MediumNet width 32, CUDA": (
        (
            {"class": "bench.models:MediumNet", "init_args": {"width": 32}},
            {"class": "bench.models:BenchData", "init_args": {"kind": "images", "rows": 64}},
        ),
        "cuda", (10, 60), 1, None,
    ),
}  # fmt: skip


ROWS: list[str] = []  # `bench.run --rows TEXT`: only the speed rows whose name holds TEXT


def speed(quick: bool) -> dict[str, Any]:
    """Every row of SPEED_ROWS this machine can run (CUDA rows only where CUDA is), plus the
    whole check with 3 seeds against 1 seed."""
    import torch

    from bench.models import torchvision_available
    from mltest.seeding import prepare_process

    cuda = torch.cuda.is_available()
    out: dict[str, Any] = {
        "resnet": "torchvision" if torchvision_available() else "built-in fallback (bench.models)",
        "plain_loop": "bench.plain_loop: training_step, backward, optimizer step; torch defaults",
        "load_before": _load(),
        "rows": {},
    }
    if cuda:
        try:
            prepare_process()  # cuBLAS determinism must be set before CUDA starts
        except RuntimeError as exc:
            out["cuda_note"] = str(exc)
    else:
        out["cuda"] = "not measured: torch sees no CUDA device on this machine"
    cores = os.cpu_count() or 1
    for name, (sections, device, epochs, threads, target) in SPEED_ROWS.items():
        if (device == "cuda" and not cuda) or threads > cores:
            continue
        if ROWS and not any(part in name for part in ROWS):
            continue
        if quick and name.startswith(("ResNet-18 3x32", "examples/")):
            continue
        row = measure_row(
            sections,
            device,
            (1, 3) if quick else epochs,
            threads=threads,
            rounds=1 if quick else 5,
            folder=_example_folder() if sections is _EXAMPLE_CNN else None,
        )
        if target is not None:
            row["target_ratio"] = target
        out["rows"][name] = row
    if not ROWS or "seeds" in ROWS:
        out["seeds"] = _seeds_ratio(quick)
    out["load_after"] = _load()
    return out


def _example_folder() -> Path:
    """A copy of examples/image_classifier's model and data modules, for configs written next
    to them (the check and the plain loop import `model:SmallCNN` from there)."""
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="mltest-bench-example-"))
    for name in ("model.py", "data.py"):
        shutil.copy(common.REPO / "examples" / "image_classifier" / name, folder / name)
    return folder


def _seeds_ratio(quick: bool) -> dict[str, Any]:
    """The whole check (`run`) with 3 seeds against 1 seed, same epochs per seed."""
    from mltest.checks.memorization import run

    epochs = 3 if quick else 25
    contexts = {
        count: context(_speed_config(_SMALL_CNN, "cpu", epochs, seeds=range(count)), "memorization")
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
