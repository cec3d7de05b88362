"""Padding: appending padding must not move the outputs, and the padding row must not train.

Runs when the config says where the padding is (`checks.sanity.padding`: input key, pad value,
mask key). After the steps, in eval mode, the first batch goes through `predict_step` as it is
and with `extra` padding positions appended to the input (and the mask padded alongside, with
the value it already holds at padding, else 0/False); every output, and per-position outputs
at the original positions, must stay the same. During the steps, the embedding layers that
read the padded input are found by forward hooks, and the row of the pad value must not change
(`padding_idx` set to the pad value keeps it at zero and untrained).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from mltest.checks.sanity.findings import Finding
from mltest.checks.sanity.obs import PaddingObs
from mltest.errors import ProjectError

RTOL = 1e-4  # outputs may move by this share of their largest value (float sums)


def _get(batch: Any, key) -> Any:
    try:
        return batch[key]
    except (KeyError, IndexError, TypeError) as exc:
        raise ProjectError(
            f"checks.sanity.padding: key {key!r} is not in the batch ({type(batch).__name__})"
        ) from exc


def _replace(batch: Any, key, value) -> Any:
    if isinstance(batch, dict):
        return {**batch, key: value}
    items = list(batch)
    items[key] = value
    return type(batch)(*items) if hasattr(batch, "_fields") else type(batch)(items)


class EmbeddingWatch:
    """Which embedding layers read the padded input, and their pad rows before the steps."""

    def __init__(self, model: nn.Module, batch: Any, spec):
        self.spec = spec
        self.padded = _get(batch, spec.input_key)
        self.readers: dict[str, nn.Embedding] = {}
        self.before: dict[str, torch.Tensor] = {}
        self.handles = []
        for name, module in model.named_modules():
            embedding = isinstance(module, (nn.Embedding, nn.EmbeddingBag))
            if embedding and spec.pad_value < module.num_embeddings:
                self.before[name] = module.weight.detach()[spec.pad_value].clone()
                self.handles.append(module.register_forward_pre_hook(self._hook(name, module)))

    def _hook(self, name, module):
        def hook(mod, args):
            x = args[0] if args else None
            if isinstance(x, torch.Tensor) and isinstance(self.padded, torch.Tensor):
                same = x is self.padded or (
                    x.shape == self.padded.shape and torch.equal(x, self.padded.to(x.device))
                )
                if same:
                    self.readers[name] = module

        return hook

    def stop(self) -> None:
        """Remove the hooks (after the first step)."""
        for h in self.handles:
            h.remove()
        self.handles = []

    def rows(self) -> list[tuple[str, int | None, float]]:
        """(module, padding_idx, change of the pad row) for each reader, after the steps."""
        pad = self.spec.pad_value
        return [
            (name, m.padding_idx, float((m.weight.detach()[pad] - self.before[name]).abs().max()))
            for name, m in self.readers.items()
        ]


def _outputs(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value] if value.is_floating_point() else []
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _outputs(v)]
    return []


def invariance(model, batch: Any, spec, obs: PaddingObs) -> None:
    """Predict the batch with and without appended padding; record how far outputs moved."""
    x = _get(batch, spec.input_key)
    if not isinstance(x, torch.Tensor) or x.dim() < 2:
        raise ProjectError(
            f"checks.sanity.padding.input_key {spec.input_key!r}: expected a (batch, length, ...) "
            f"tensor, got {tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}"
        )
    length = x.shape[1]
    padded = _replace(batch, spec.input_key, _append(x, spec.pad_value, spec.extra))
    if spec.mask_key is not None:
        mask = _get(batch, spec.mask_key)
        at_pad = mask[x == spec.pad_value] if mask.shape == x.shape else mask[:0]
        fill = at_pad.flatten()[0].item() if at_pad.numel() else 0
        padded = _replace(padded, spec.mask_key, _append(mask, fill, spec.extra))
    with torch.no_grad():
        before = _outputs(model.predict_step(batch, 0))
        after = _outputs(model.predict_step(padded, 0))
    moved, scale, where = 0.0, 0.0, ""
    for index, (a, b) in enumerate(zip(before, after, strict=False)):
        if b.shape != a.shape:
            if a.dim() >= 2 and b.shape[1] == length + spec.extra:
                b = b[:, :length]
            else:
                continue
        diff = float((a.float() - b.float()).abs().max()) if a.numel() else 0.0
        scale = max(scale, float(a.float().abs().max()) if a.numel() else 0.0)
        if diff > moved:
            moved, where = diff, f"output {index}"
    obs.moved, obs.scale, obs.where = moved, scale, where


def _append(t: torch.Tensor, value, count: int) -> torch.Tensor:
    shape = list(t.shape)
    shape[1] = count
    return torch.cat([t, torch.full(shape, value, dtype=t.dtype, device=t.device)], dim=1)


def judge(obs: PaddingObs | None) -> list[Finding]:
    """The pad row training first (it explains moving outputs), then moving outputs."""
    if obs is None:
        return []
    found: list[Finding] = []
    trained = [(m, idx, change) for m, idx, change in obs.embeddings if change > 0]
    for module, idx, change in trained:
        setting = (
            "it has no padding_idx"
            if idx is None
            else f"its padding_idx is {idx}, not the pad value {obs.pad_value}"
        )
        found.append(
            Finding(
                "padding embedding row",
                f"the padding embedding row trains: `{module}.weight[{obs.pad_value}]` (the pad "
                f"value's row) changed by {change:.3g} over the steps; {setting}",
                f"Build the embedding with `padding_idx={obs.pad_value}` (the token the data "
                "pads with), so its row stays zero and gets no gradient.",
                [f"{module}.weight"],
                cause="padding not ignored",
            )
        )
    limit = RTOL * max(obs.scale, 1.0)
    if obs.moved is not None and obs.moved > limit:
        explained = " (the padding row above explains it)" if trained else ""
        found.append(
            Finding(
                "padding invariance",
                f"appending {obs.extra} padding positions (value {obs.pad_value}) moves the "
                f"outputs by up to {obs.moved:.3g} ({obs.where}; largest output "
                f"{obs.scale:.3g}){explained}: padding is not masked out",
                "Mask the padding wherever positions are combined: pooling (masked mean, or "
                "masked_fill(-inf) before a softmax), attention (key_padding_mask), recurrent "
                "layers (pack_padded_sequence or the output at each sequence's last real "
                "position).",
                cause="padding not ignored",
            )
        )
    return found
