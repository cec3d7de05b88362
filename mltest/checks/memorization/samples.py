"""The built-in judgement for generative models trained with manual optimization (a GAN with no
`validation_step`): how far samples generated from a fixed latent batch are from the real batch.

`judge: samples` (what `judge: auto` picks for such a model) calls the model's `forward` on
fixed latent vectors (standard normal, drawn from a generator of their own seeded with 0, so
every judgement sees the same latents and the global random state is untouched), in eval mode
with no grad, and compares the samples with the batch element of the same shape:

    sample_gap = (mean_f |mean(fake_f) - mean(real_f)| + mean_f |std(fake_f) - std(real_f)|)
                 / std(real)

over every feature f (a pixel, a coordinate), with means and standard deviations taken over
the examples: 0 when the generated batch matches the real batch's per-feature mean and spread,
in units of the real data's spread. It needs the latent shape: `checks.memorization.latent_shape`,
else the model's `example_input_array` (Lightning's own attribute, e.g. `torch.zeros(2, 100)`),
else an integer hyperparameter `latent_dim`. A `validation_step` that logs a metric of the
model's own choosing stays the precise option (`judge: validation_step`).
"""

from __future__ import annotations

from typing import Any

from mltest.errors import ConfigError, ProjectError

METRIC = "sample_gap"
LATENT_SEED = 0


def latent_shape(model: Any, configured: tuple[int, ...] | None) -> tuple[int, ...]:
    """The shape of one latent vector (without the batch axis).

    Raises:
        ConfigError: when neither the setting nor the model tells it.
    """
    if configured:
        return tuple(configured)
    example = getattr(model, "example_input_array", None)
    if isinstance(example, (list, tuple)) and example:
        example = example[0]
    shape = getattr(example, "shape", None)
    if shape is not None and len(shape) >= 2:
        return tuple(int(n) for n in shape[1:])
    hparams = getattr(model, "hparams", {}) or {}
    latent = hparams.get("latent_dim") if hasattr(hparams, "get") else None
    latent = latent if isinstance(latent, int) else getattr(model, "latent_dim", None)
    if isinstance(latent, int) and not isinstance(latent, bool) and latent > 0:
        return (latent,)
    raise ConfigError(
        f"checks.memorization: judging {type(model).__name__} by its samples needs the shape "
        "of one latent vector; set `checks.memorization.latent_shape: [100]`, or give the "
        "model Lightning's `self.example_input_array = torch.zeros(2, 100)` (a batch of "
        "latents its forward takes), or a `latent_dim` hyperparameter"
    )


class SampleJudge:
    """Measures `sample_gap` on a batch; `bind(module)` gives the step-like callable that
    memorization's judging loop calls as `step(batch, batch_idx)`."""

    def __init__(self, shape: tuple[int, ...]):
        self.shape = shape
        self._latents: dict[tuple[int, int], Any] = {}

    def bind(self, module: Any) -> _Bound:
        return _Bound(self, module)

    def gap(self, module: Any, batch: Any, index: int):
        import torch

        device = next(module.parameters(), torch.empty(0)).device
        fake = module(self._fixed_latents(batch_length(batch), index).to(device))
        if not isinstance(fake, torch.Tensor):
            raise ProjectError(
                f"judge `samples`: {type(module).__name__}.forward(latents) returned "
                f"{type(fake).__name__}, not a tensor of samples; set `judge: validation_step` "
                "and log a metric of your own"
            )
        real = real_element(batch, fake)
        fake = fake.reshape(len(fake), -1).float()
        real = real.reshape(len(real), -1).float()
        spread = real.std().clamp_min(1e-8)
        means = (fake.mean(0) - real.mean(0)).abs().mean()
        stds = (fake.std(0) - real.std(0)).abs().mean()
        return (means + stds) / spread

    def _fixed_latents(self, count: int, index: int):
        import torch

        key = (count, index)
        if key not in self._latents:
            generator = torch.Generator().manual_seed(LATENT_SEED + index)
            self._latents[key] = torch.randn((count, *self.shape), generator=generator)
        return self._latents[key]


class _Bound:
    """`judge(batch, batch_idx) -> {"sample_gap": value}` for one model; named in messages."""

    def __init__(self, judge: SampleJudge, module: Any):
        self.judge, self.module = judge, module

    def __call__(self, batch: Any, index: int) -> dict[str, Any]:
        return {METRIC: self.judge.gap(self.module, batch, index)}

    def __str__(self) -> str:
        return "the samples judgement"


def batch_length(batch: Any) -> int:
    """Examples in the batch (the first axis of its first tensor); at least 2 are needed."""
    for tensor in _tensors(batch):
        if tensor.dim() and len(tensor) >= 2:
            return len(tensor)
    raise ProjectError(
        "judge `samples` needs batches of 2 or more examples (a spread is compared); raise "
        "the data module's batch size"
    )


def real_element(batch: Any, fake: Any):
    """The batch element holding real examples: the first tensor whose examples have as many
    values as a generated sample."""
    per_sample = fake[0].numel()
    for tensor in _tensors(batch):
        shaped = tensor.dim() and len(tensor) == len(fake) and tensor[0].numel() == per_sample
        if shaped and tensor.is_floating_point():
            return tensor
    raise ProjectError(
        f"judge `samples`: no element of the training batch is shaped like the generated "
        f"samples ({list(fake.shape[1:])} per example); set `judge: validation_step` and log "
        "a metric of your own"
    )


def _tensors(batch: Any):
    import torch

    if isinstance(batch, torch.Tensor):
        yield batch
        return
    values = batch.values() if isinstance(batch, dict) else batch
    if isinstance(values, (list, tuple, type({}.values()))):
        for value in values:
            if isinstance(value, torch.Tensor):
                yield value
