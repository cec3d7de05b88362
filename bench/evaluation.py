"""Section 8: the evaluation gate against a plain evaluation loop on the same data and metrics.

Both sides evaluate the same trained TinyNet (a checkpoint, so no training is timed; the
recorded references are another seed's model, so every comparison is computed) on the
same N examples: the plain loop predicts in eval mode under `torch.no_grad()` and computes
accuracy and macro F1 with torchmetrics on the whole set and on each of 4 slices, once. The
gate does the same through `predict_step`, plus what makes it a gate: a bootstrap interval
for every cell, paired differences against a recorded previous result and a pinned
reference (both recorded before timing), the trivial predictor, the hardest examples. It is
timed with 200 and 1000 resamples (the default), and McNemar's exact test for accuracy. The
restore / resume test is timed on its own, against one plain training step of the model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.common import alternate, best, context, paired_ratio, write_config

SLICES = ("x0<-1", "x0 in [-1,0)", "x0 in [0,1)", "x0>=1")


def band(example) -> str:
    """The slicing function both sides use: the band of the first feature."""
    x0 = float(example[0][0])
    return SLICES[0] if x0 < -1 else SLICES[1] if x0 < 0 else SLICES[2] if x0 < 1 else SLICES[3]


def _trained(rows: int, directory: Path, seed: int = 0, steps: int = 3) -> Path:
    """A TinyNet trained a few steps on the bench table (short of perfect, so models differ
    example by example), saved as a state dict."""
    import pytorch_lightning as pl
    import torch

    from bench.models import BenchData, TinyNet
    from mltest.engine import quiet

    torch.manual_seed(seed)
    model, data = TinyNet(), BenchData("table", rows=rows, batch_size=256)
    trainer = pl.Trainer(max_epochs=1, limit_train_batches=steps, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)  # fmt: skip
    with quiet():
        trainer.fit(model, data)
    path = directory / "candidate.pt"
    torch.save(model.state_dict(), path)
    return path


def _plain(ctx) -> None:
    """What a team would write by hand: predict, then the metrics per slice, once."""
    import torch
    from torchmetrics.functional.classification import multiclass_accuracy, multiclass_f1_score

    from bench.models import CLASSES

    model = ctx.shared["bench.model"]
    data = ctx.shared["bench.data"]
    model.eval()
    preds, targets, slices = [], [], []
    with torch.no_grad():
        for x, y in data.predict_dataloader():
            preds.append(model(x).argmax(dim=1))
            targets.append(y)
            slices += [band((row,)) for row in x]
    p, t = torch.cat(preds), torch.cat(targets)
    for name in ("all", *SLICES):
        rows = torch.tensor([i for i, s in enumerate(slices) if name in ("all", s)])
        multiclass_accuracy(p[rows], t[rows], num_classes=CLASSES, average="micro")
        multiclass_f1_score(p[rows], t[rows], num_classes=CLASSES, average="macro")


def evaluation_gate(quick: bool) -> dict[str, Any]:
    import time

    from bench.models import BenchData, TinyNet
    from mltest.checks import evaluation
    from mltest.checks.evaluation.restore import restore_test

    rows = 512 if quick else 10_000
    repeats = 1 if quick else 3
    gate = {
        "task": "multiclass",
        "candidate": {"source": "checkpoint", "checkpoint": "candidate.pt"},
        "datasets": [{"name": "bench", "loader": "predict"}],
        "slices": [{"function": "bench.evaluation:band"}],
        "metrics": ["accuracy", "f1"],
        "restore": {"enabled": False, "steps": 2},
        "confidence": {"resamples": 1000},
    }
    configs = {}
    for name, confidence in (("resamples_200", {"resamples": 200}),
                             ("resamples_1000", {"resamples": 1000}),
                             ("mcnemar", {"method": "mcnemar", "resamples": 1000})):  # fmt: skip
        configs[name] = write_config(
            {"evaluation": {**gate, "confidence": confidence}},
            model={"class": "bench.models:TinyNet"},
            data={"class": "bench.models:BenchData",
                  "init_args": {"kind": "table", "rows": rows, "batch_size": 256}},
        )  # fmt: skip
    contexts = {}
    for name, config in configs.items():
        ctx, settings = context(config, "evaluation")
        # The previous result and the pinned reference come from another model (another seed),
        # as after a pull request that changed the model: every comparison is bootstrapped.
        _trained(rows, config.parent, seed=1, steps=2)
        ctx.update_baselines = True
        evaluation.validate(ctx, settings)
        evaluation.run(ctx, settings)
        ctx.update_baselines = False
        _trained(rows, config.parent, seed=0)
        contexts[name] = (ctx, settings)
    plain_ctx = contexts["resamples_200"][0]
    import torch

    model = TinyNet()
    model.load_state_dict(torch.load(configs["resamples_200"].parent / "candidate.pt"))
    data = BenchData("table", rows=rows, batch_size=256)
    data.setup()
    plain_ctx.shared.update({"bench.model": model, "bench.data": data})

    def run_gate(name):
        ctx, settings = contexts[name]
        return lambda: evaluation.run(ctx, settings)

    fns = {"plain": lambda: _plain(plain_ctx), **{n: run_gate(n) for n in contexts}}
    times = alternate(fns, repeats)
    out: dict[str, Any] = {"examples": rows, "slices": len(SLICES) + 1, "metrics": 2,
                           "plain_s": best(times["plain"])}  # fmt: skip
    for name in contexts:
        out[name] = {"seconds": best(times[name]),
                     "ratio": paired_ratio(times[name], times["plain"])}  # fmt: skip
    ctx, settings = contexts["resamples_200"]
    settings = settings.model_copy(update={"restore": settings.restore.model_copy(
        update={"enabled": True})})  # fmt: skip
    started = time.perf_counter()
    restore_test(ctx, settings)
    out["restore_s"] = time.perf_counter() - started
    out["target"] = "the 200-resample gate within 10x a plain loop; reported, not enforced"
    return out


def table_rows(r: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The rows `bench.run` prints for this section."""
    head = f"evaluation gate, {r['examples']} examples x {r['slices']} slices x 2 metrics"
    rows = [(f"{head}: plain loop", f"{r['plain_s']:.3f} s", "")]
    for name in ("resamples_200", "resamples_1000", "mcnemar"):
        rows.append((f"{head}: gate, {name.replace('_', ' ')}",
                     f"{r[name]['seconds']:.3f} s (x{r[name]['ratio']:.1f})",
                     "<= x10" if name == "resamples_200" else ""))  # fmt: skip
    rows.append(("evaluation gate: restore / resume test (3 fits of 2-3 steps)",
                 f"{r['restore_s']:.2f} s", ""))  # fmt: skip
    return rows
