"""Section 3: the prediction checks against a plain batched `model(x)` loop, and golden compare.

Both sides predict the same tensors with the same model in eval mode under `torch.no_grad()`.
The regression check re-predicts its first batch (a rerun proves prediction is deterministic).
It is measured twice: with inputs from the data module (as the examples run it: the figure
includes the user's data module building and collating the inputs on every run; also given
against a plain loop that reads the same data module) and with the same inputs from a tensor
file (the check's own cost). Key examples are also given against the plain loop over their
own inputs (the user's row function and collate, then the model).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.common import alternate, best, context, paired_ratio, write_config

BATCH = 256
_IMAGES: dict[int, Any] = {}


def key_example_rows(rows: int = 10_000) -> list[dict[str, Any]]:
    """10,000 minimum-functionality rows; the input is a row index into the generated images."""
    _, labels = _images(10_000)
    return [
        {"id": f"ex{i}", "kind": "mft", "input": i, "expected": int(labels[i]), "tags": "bench"}
        for i in range(rows)
    ]


def collate_rows(indices: list[int]):
    """The user's collate: look the images up by index."""
    images, _ = _images(10_000)
    return images[indices]


def _images(rows: int):
    from bench.models import make_images

    if rows not in _IMAGES:
        _IMAGES[rows] = make_images(rows)
    return _IMAGES[rows]


def _plain(module, batches) -> None:
    import torch

    module.eval()
    with torch.no_grad():
        for x in batches:
            module(x)


def _plain_deterministic(module, batches) -> None:
    """The plain loop under the checks' default determinism mode (`trainer.deterministic`
    unset: warn-only deterministic algorithms), which both checks predict under: on the CPU
    it slows convolutions by a few percent, the mode's price rather than the checks'."""
    from mltest.seeding import DEFAULT_MODE, apply_determinism, isolated_global_state

    with isolated_global_state():
        apply_determinism(DEFAULT_MODE)
        _plain(module, batches)


def _plain_from_data_module(module, rows: int) -> None:
    """The loop a person writes to predict a data module's inputs: set it up, read its
    predict loader, call the model; what the data-module regression row compares with too."""
    from bench.models import BenchData

    data = BenchData(kind="images", rows=rows, batch_size=BATCH)
    data.setup("predict")
    _plain(module, (x for x, _ in data.predict_dataloader()))


def _plain_from_key_rows(module, rows: int) -> None:
    """The loop a person writes to predict the key examples: build the rows, collate their
    inputs a batch at a time, call the model; what the key-example row compares with too."""
    table = key_example_rows(rows)
    _plain(module, (collate_rows([r["input"] for r in table[i : i + BATCH]])
                    for i in range(0, rows, BATCH)))  # fmt: skip


def prediction_checks(quick: bool) -> dict[str, Any]:
    """regression and key_examples over N examples vs a plain loop over the same tensors."""
    from mltest.checks import key_examples, regression
    from mltest.checks.prediction import model_under_test, predict

    rows = 512 if quick else 10_000
    config = write_config(
        {
            "regression": {"inputs": {"dataloader": "predict", "examples": rows},
                           "batch_size": BATCH},
            "key_examples": {
                "examples": f"bench.prediction:key_example_rows{'_quick' if quick else ''}",
                "collate": "bench.prediction:collate_rows",
                "batch_size": BATCH,
            },
        },
        model={"class": "bench.models:MediumNet", "init_args": {"width": 16}},
        data={"class": "bench.models:BenchData",
              "init_args": {"kind": "images", "rows": rows, "batch_size": BATCH}},
    )
    # The same check reading its inputs from a tensor file: its own cost, without the user's
    # data module building 10,000 images on every run.
    from safetensors.torch import save_file

    # In a folder of its own: its golden outputs are recorded from its own inputs (sharing
    # the data-module config's baselines would time the "inputs changed" path instead).
    images, _ = _images(10_000)
    folder = config.parent / "file-inputs"
    folder.mkdir()
    save_file({"x": images[:rows].contiguous()}, str(folder / "inputs.safetensors"))
    file_config = folder / "mltest.yaml"
    text = config.read_text().replace(
        "inputs:\n      dataloader: predict", "inputs:\n      file: inputs.safetensors"
    )
    assert "inputs.safetensors" in text
    file_config.write_text(text)
    file_ctx, file_settings = context(file_config, "regression")
    file_ctx.update_baselines = True
    regression.run(file_ctx, file_settings)
    file_ctx.update_baselines = False
    reg_ctx, reg_settings = context(config, "regression")
    reg_ctx.update_baselines = True
    regression.run(reg_ctx, reg_settings)  # records the golden outputs (and warms up)
    reg_ctx.update_baselines = False
    key_ctx, key_settings = context(config, "key_examples")
    key_ctx.shared = reg_ctx.shared  # one model under test, as in a real run
    module = model_under_test(reg_ctx)
    images, _ = _images(10_000)
    tensors = [images[i : i + BATCH] for i in range(0, rows, BATCH)]
    device = next(module.parameters()).device
    tensors = [t.to(device) for t in tensors]

    fns = {
        "plain": lambda: _plain(module, tensors),
        "plain_deterministic": lambda: _plain_deterministic(module, tensors),
        "plain_data_module": lambda: _plain_from_data_module(module, rows),
        "plain_key_rows": lambda: _plain_from_key_rows(module, rows),
        "predict": lambda: predict(module, tensors),
        "regression": lambda: regression.run(reg_ctx, reg_settings),
        "regression_file_inputs": lambda: regression.run(file_ctx, file_settings),
        "key_examples": lambda: key_examples.run(key_ctx, key_settings),
    }
    for ctx, settings in ((reg_ctx, reg_settings), (file_ctx, file_settings)):
        result = regression.run(ctx, settings)
        assert result.status.value == "pass", result.summary
    times = alternate(fns, 1 if quick else 5)
    plain = best(times["plain"])
    out: dict[str, Any] = {"examples": rows, "batch_size": BATCH, "plain_s": plain}
    for name in ("predict", "regression", "regression_file_inputs", "key_examples"):
        out[name] = {
            "seconds": best(times[name]),
            "examples_per_s": rows / best(times[name]),
            # throughput ratio: plain time / check time (1.0 = as fast as plain PyTorch)
            "throughput_ratio": 1 / paired_ratio(times[name], times["plain"]),
            # the same against the plain loop under the checks' determinism mode
            "throughput_ratio_deterministic": 1
            / paired_ratio(times[name], times["plain_deterministic"]),
        }
    out["regression"]["throughput_ratio_data_module"] = 1 / paired_ratio(
        times["regression"], times["plain_data_module"]
    )
    out["key_examples"]["throughput_ratio_own_inputs"] = 1 / paired_ratio(
        times["key_examples"], times["plain_key_rows"]
    )
    out["plain_deterministic_s"] = best(times["plain_deterministic"])
    out["plain_data_module_s"] = best(times["plain_data_module"])
    out["plain_key_rows_s"] = best(times["plain_key_rows"])
    out["target_throughput_ratio"] = 0.8
    return out


def key_example_rows_quick() -> list[dict[str, Any]]:
    return key_example_rows(512)


def golden_compare(quick: bool) -> dict[str, Any]:
    """compare_outputs on 10 million float32 values: unchanged, and with 1% of them moved."""
    from mltest.checks.regression.compare import compare_outputs
    from mltest.checks.regression.diffs import Tolerance

    count = 1_000_000 if quick else 10_000_000
    rng = np.random.default_rng(0)
    golden = {"logits": rng.standard_normal((count // 10, 10), dtype=np.float32)}
    same = {"logits": golden["logits"] + np.float32(1e-7)}
    moved = {"logits": golden["logits"].copy()}
    flat = moved["logits"].reshape(-1)
    flat[rng.choice(count, count // 100, replace=False)] += 0.5
    fns = {
        "unchanged": lambda: compare_outputs(golden, same, default=Tolerance()),
        "one_percent_moved": lambda: compare_outputs(golden, moved, default=Tolerance()),
    }
    assert fns["unchanged"]().ok and not fns["one_percent_moved"]().ok
    times = alternate(fns, 1 if quick else 5)
    return {
        "floats": count,
        **{f"{name}_s": best(values) for name, values in times.items()},
        "target_s": 1.0,
    }
