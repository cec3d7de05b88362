"""Padding: adding padding must not move the outputs, and the padding row must not train.

Runs when the config says where the padding is (`checks.sanity.padding`: input key, pad value,
mask key). After the steps, in eval mode, `predict_step` runs on the first batch and on the
same batch with `extra` padding positions added to the input (and the mask padded alongside,
with the value it already holds at padding, else 0/False); every output, and per-position
outputs at the original positions, must stay the same. The padded batch never grows past the
length the model just took (learned positions, a fixed context): when the sequences are longer
than `extra`, their last `extra` positions are cut first (with every batch element of the
input's shape), and that shorter batch is compared with itself padded back to the length.
During the first step, the embedding layers that read the padded input are found by forward
hooks, with the gradient the padding positions send to the pad value's row: it must be zero
(`padding_idx` set to the pad value makes it so). The row's change over the steps is shown,
not judged: an output layer tied to the embedding moves it, rightly.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from mltest.checks.sanity.findings import Finding
from mltest.checks.sanity.obs import PaddingObs, PadRowObs
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
    """Which embedding layers read the padded input, the gradient its padding positions send
    to the pad row, and the pad rows before the steps."""

    def __init__(self, model: nn.Module, batch: Any, spec):
        self.spec = spec
        self.padded = _get(batch, spec.input_key)
        self.readers: dict[str, nn.Embedding] = {}
        self.before: dict[str, torch.Tensor] = {}
        self.gradients: dict[str, torch.Tensor] = {}  # on the device: read once, at the end
        self.shared: dict[str, list[str]] = {}
        self.handles = []
        for name, module in model.named_modules():
            embedding = isinstance(module, (nn.Embedding, nn.EmbeddingBag))
            if embedding and spec.pad_value < module.num_embeddings:
                self.before[name] = module.weight.detach()[spec.pad_value].clone()
                self.shared[name] = _holders(model, module.weight, name)
                self.handles.append(module.register_forward_hook(self._hook(name, module)))

    def _hook(self, name, module):
        def hook(mod, args, output):
            x = args[0] if args else None
            if not (isinstance(x, torch.Tensor) and isinstance(self.padded, torch.Tensor)):
                return
            same = x is self.padded or (
                x.shape == self.padded.shape and torch.equal(x, self.padded.to(x.device))
            )
            if not same:
                return
            self.readers[name] = module
            bag = isinstance(module, nn.EmbeddingBag)
            if not bag and isinstance(output, torch.Tensor) and output.requires_grad:
                at_pad = x == self.spec.pad_value
                output.register_hook(self._row_gradient(name, module, at_pad))

        return hook

    def _row_gradient(self, name: str, module, at_pad: torch.Tensor):
        def hook(grad):
            # what backward sends to the pad row: the sum over the padding positions
            if module.padding_idx == self.spec.pad_value:
                row = torch.zeros((), device=grad.device)  # the embedding drops it
            else:  # a masked sum, not a boolean index: no device sync inside backward
                picked = grad.detach().float() * at_pad.unsqueeze(-1)
                row = picked.sum(dim=tuple(range(at_pad.dim()))).abs().amax()
            seen = self.gradients.get(name)
            self.gradients[name] = row if seen is None else torch.maximum(seen, row)

        return hook

    def stop(self) -> None:
        """Remove the hooks (after the first step)."""
        for h in self.handles:
            h.remove()
        self.handles = []

    def rows(self) -> list[PadRowObs]:
        """The pad row of each reader, after the steps."""
        pad = self.spec.pad_value
        found = []
        for name, m in self.readers.items():
            gradient = self.gradients.get(name)
            found.append(
                PadRowObs(
                    name,
                    m.padding_idx,
                    float((m.weight.detach()[pad] - self.before[name]).abs().max()),
                    None if gradient is None else float(gradient),
                    self.shared[name],
                )
            )
        return found


def _holders(model: nn.Module, weight: torch.Tensor, owner: str) -> list[str]:
    """Modules other than `owner` that hold `weight` itself (weights tied to it)."""
    return [
        name
        for name, module in model.named_modules()
        if name != owner and any(p is weight for p in module._parameters.values())
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
    """Predict the batch with and without added padding; record how far outputs moved."""
    x = _get(batch, spec.input_key)
    if not isinstance(x, torch.Tensor) or x.dim() < 2:
        raise ProjectError(
            f"checks.sanity.padding.input_key {spec.input_key!r}: expected a (batch, length, ...) "
            f"tensor, got {tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}"
        )
    full = x.shape[1]
    obs.trimmed = spec.extra if full > spec.extra else 0
    length = full - obs.trimmed
    base = _trimmed(batch, x, length) if obs.trimmed else batch
    ids = _get(base, spec.input_key)
    padded = _replace(base, spec.input_key, _append(ids, spec.pad_value, spec.extra))
    if spec.mask_key is not None:
        mask = _get(base, spec.mask_key)
        at_pad = mask[ids == spec.pad_value] if mask.shape == ids.shape else mask[:0]
        fill = at_pad.flatten()[0].item() if at_pad.numel() else 0
        padded = _replace(padded, spec.mask_key, _append(mask, fill, spec.extra))
    if obs.trimmed:  # the other elements of the input's shape: back to their own values
        padded = _restored(padded, batch, x, spec)
    with torch.no_grad():
        before = _outputs(model.predict_step(base, 0))
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


def _elements(batch: Any) -> list:
    """The keys (or indices) of a dict, tuple or list batch."""
    return list(batch) if isinstance(batch, dict) else list(range(len(batch)))


def _shaped_like(value: Any, x: torch.Tensor) -> bool:
    return isinstance(value, torch.Tensor) and value.dim() >= 2 and value.shape[:2] == x.shape[:2]


def _trimmed(batch: Any, x: torch.Tensor, keep: int) -> Any:
    """The batch with every element of the input's (batch, length) shape cut to `keep`."""
    for key in _elements(batch):
        value = batch[key]
        if _shaped_like(value, x):
            batch = _replace(batch, key, value[:, :keep])
    return batch


def _restored(padded: Any, original: Any, x: torch.Tensor, spec) -> Any:
    """Elements of the input's shape other than the input and mask, as the batch held them."""
    for key in _elements(original):
        if key not in (spec.input_key, spec.mask_key) and _shaped_like(original[key], x):
            padded = _replace(padded, key, original[key])
    return padded


def judge(obs: PaddingObs | None) -> list[Finding]:
    """The pad row training first (it explains moving outputs), then moving outputs."""
    if obs is None:
        return []
    found: list[Finding] = []
    trained = [row for row in obs.embeddings if _trains(row, obs.pad_value)]
    for row in trained:
        setting = (
            "it has no padding_idx"
            if row.padding_idx is None
            else f"its padding_idx is {row.padding_idx}, not the pad value {obs.pad_value}"
        )
        how = (
            f"gets gradient from the padding positions (up to {row.gradient:.3g}) and changed "
            f"by {row.change:.3g} over the steps"
            if row.gradient is not None
            else f"changed by {row.change:.3g} over the steps"
        )
        found.append(
            Finding(
                "padding embedding row",
                f"the padding embedding row trains: `{row.module}.weight[{obs.pad_value}]` (the "
                f"pad value's row) {how}; {setting}",
                f"Build the embedding with `padding_idx={obs.pad_value}` (the token the data "
                "pads with), so its row gets no gradient from the padding; or leave the padding "
                "positions out of the loss and mask them wherever positions are combined.",
                [f"{row.module}.weight"],
                cause="padding not ignored",
            )
        )
    limit = RTOL * max(obs.scale, 1.0)
    if obs.moved is not None and obs.moved > limit:
        explained = " (the padding row above explains it)" if trained else ""
        found.append(
            Finding(
                "padding invariance",
                f"adding {obs.extra} padding positions (value {obs.pad_value}) moves the "
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


def _trains(row: PadRowObs, pad_value: int) -> bool:
    """Whether the padding itself trains the row: gradient from the padding positions where
    it was measured; else (an EmbeddingBag) a change of an untied row without padding_idx."""
    if row.gradient is not None:
        return row.gradient > 0
    return row.change > 0 and not row.shared and row.padding_idx != pad_value
