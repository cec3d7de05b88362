"""A GAN's two losses pulling against each other: labels swapped in the discriminator's loss,
or a generator trained toward "fake".

Roles come from what the code does, not from names. With several optimizers, each module
whose parameters all belong to one optimizer (the largest such module) is watched. A watched
module called, in a `training_step`, with a tensor that is another optimizer's module's output
(the same storage: `fake`, `fake.detach()`, a view; the same values; or the first or last rows
of a `torch.cat`) is the discriminator, and that other module the generator. The
discriminator's calls on a floating tensor of the batch (or rows of one) are its real samples.

What each loss asks of the discriminator's scores is read where it acts: the gradient that
backward sends to the discriminator's output, per sample, gathered until the next optimizer
step. Minus that gradient is the way the loss wants the score to move:

- before the discriminator's optimizer steps: real samples' scores up relative to generated
  ones (mean over real minus mean over generated), or down;
- before the generator's optimizer steps: the scores of its samples up, or down.

Reading the gradient at D's output, not the step's outcome, leaves out everything else in the
losses (an L1 or cycle term, a gradient penalty on interpolates) and the optimizer's own
dynamics, and re-runs nothing. Each loss may use its own convention (BCE with ones for real, a
WGAN critic, hinge, least squares: higher means real; a code base may score real low). Whatever
the convention, a correct GAN's two losses agree: the discriminator's separates real from
generated scores in the direction the generator's then moves its samples. When they disagree
one of them is wrong; which one is inferred from the near-universal convention, a higher score
means real, and the finding says so. Both losses reversed is a consistent convention: it passes.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning
import torch

from mltest.checks.sanity.findings import Finding
from mltest.checks.sanity.obs import GanObs, StepObs
from mltest.checks.sanity.tensors import float_tensors
from mltest.errors import is_user_file

ASPECT = "discriminator and generator agree on 'real'"
D_CAUSE = "discriminator trained to call real samples fake (labels swapped in its loss?)"
G_CAUSE = "generator trained toward 'fake'"


@dataclass(eq=False)  # compared by identity: its fields hold tensors
class _Call:
    """One call of a watched module in the current training_step."""

    name: str
    optimizer: int
    args: tuple
    kwargs: dict
    output: torch.Tensor | None
    where: str
    grad: torch.Tensor | None = None  # per sample: the gradient backward sent to the output
    uses: list | None = None  # what it read, once worked out


@dataclass
class _Use:
    """A discriminator call that read real or generated samples: which argument, which rows,
    and for generated ones the generator call that made them."""

    call: _Call
    key: int | str
    rows: slice
    source: _Call | None = None


class GanWatch(pytorch_lightning.Callback):
    """Records the watched modules' calls per training_step, and before each optimizer step
    what the losses asked of the discriminator's scores."""

    error = None  # it only reads; a failure of its own turns it off with a notice

    def __init__(self, obs: StepObs):
        self.obs = obs
        self.handles: list = []
        self.calls: list[_Call] = []
        self.batch: list[torch.Tensor] = []
        self.off = False
        self.one_score = False  # the discriminator gives one score per sample

    def on_train_start(self, trainer, pl_module):
        if len(trainer.optimizers) < 2:
            return
        owners: dict[int, set[int]] = {}
        for index, opt in enumerate(trainer.optimizers):
            for group in opt.param_groups:
                for p in group["params"]:
                    owners.setdefault(id(p), set()).add(index)
        for name, module, index in _owned_modules(pl_module, owners):
            self.handles.append(
                module.register_forward_hook(self._record(name, index), with_kwargs=True)
            )
        for index, opt in enumerate(trainer.optimizers):
            self.handles.append(opt.register_step_pre_hook(self._pre(index)))

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.calls = []
        self.batch = [t.detach() for t in float_tensors(_flat(batch))]

    def on_train_end(self, trainer, pl_module):
        for handle in self.handles:
            handle.remove()
        self.handles = []
        self.calls = []
        gan = self.obs.gan
        if gan is not None and self.one_score and not (gan.d_wants and gan.g_wants):
            missing = (
                "its step never had the gradient of both a real-sample and a generated-sample "
                "score (does it read the batch's tensors as they are, not a transformed copy?)"
                if not gan.d_wants
                else "the generator's step never had a gradient from the discriminator's score"
            )
            self.obs.skipped.append(
                f"GAN probe not judged: `{gan.discriminator}` reads `{gan.generator}`'s output, "
                f"but {missing}"
            )

    # -- recording ----------------------------------------------------------------------------
    def _guarded(self, measure):
        """A hook that never breaks the model's own step: a failure of the probe (a tensor it
        cannot read) turns it off with a notice."""

        def hook(*args):
            if self.off:
                return None
            try:
                return measure(*args)
            except Exception as exc:
                self.off = True
                self.obs.gan = None
                self.obs.skipped.append(
                    f"GAN probe skipped: reading the step raised {type(exc).__name__}: {exc}"
                )
                return None

        return hook

    def _record(self, name: str, index: int):
        @self._guarded
        def hook(module, args, kwargs, output):
            outs = float_tensors(output)
            call = _Call(
                name, index, tuple(_detach(a) for a in args),
                {k: _detach(v) for k, v in kwargs.items()},
                outs[0].detach() if outs else None, _caller(),
            )  # fmt: skip
            self.calls.append(call)
            if outs and outs[0].requires_grad:
                outs[0].register_hook(self._guarded(lambda grad: _gather(call, grad)))

        return hook

    def _roles(self) -> tuple[list[_Use], list[_Use]]:
        """The discriminator's calls on real and on generated samples so far in this step;
        sets the roles the first time a call reads another optimizer's module's output."""
        uses = [(call, kind, use) for call in self.calls for kind, use in self._uses(call)]
        if self.obs.gan is None:
            first = next(((call, use) for call, kind, use in uses if kind == "fake"), None)
            if first is None:
                return [], []
            call, use = first
            out = call.output  # one score per sample: a discriminator, not a decoder
            self.one_score = out is not None and out.dim() > 0 and out.numel() == len(out)
            self.obs.gan = GanObs(
                generator=use.source.name, discriminator=call.name,
                g_optimizer=use.source.optimizer, d_optimizer=call.optimizer,
            )  # fmt: skip
        gan = self.obs.gan
        mine = [(kind, use) for call, kind, use in uses if call.name == gan.discriminator]
        real = [use for kind, use in mine if kind == "real"]
        fake = [u for kind, u in mine if kind == "fake" and u.source.name == gan.generator]
        return real, fake

    def _uses(self, call: _Call) -> list[tuple[str, _Use]]:
        """What the call read: ("fake", rows another optimizer's earlier call made) and / or
        ("real", rows of a batch tensor); worked out once per call."""
        if call.uses is not None:
            return call.uses
        call.uses = []
        earlier = self.calls[: self.calls.index(call)]
        for key, x in _tensor_args(call):
            for source in earlier:
                if source.optimizer == call.optimizer or source.output is None:
                    continue
                rows = _match(x, [source.output])
                if rows is not None:
                    call.uses.append(("fake", _Use(call, key, rows, source)))
                    rest = _rest(x, rows)  # the other rows of a torch.cat([real, fake])
                    if rest is not None and _match(x[rest], self.batch) is not None:
                        call.uses.append(("real", _Use(call, key, rest)))
                    return call.uses
            rows = _match(x, self.batch)
            if rows is not None:
                call.uses.append(("real", _Use(call, key, rows)))
                return call.uses
        return call.uses

    # -- measuring ----------------------------------------------------------------------------
    def _pre(self, index: int):
        @self._guarded
        def hook(optimizer, args, kwargs):
            real, fake = self._roles()
            gan = self.obs.gan
            if gan is not None and index == gan.d_optimizer:
                up, down = _wants(real), _wants(fake)
                if up is not None and down is not None:
                    gan.d_wants.append((up, down))
                    gan.d_step_where = gan.d_step_where or _caller()
                    gan.d_loss_where = gan.d_loss_where or _read_at(real)
            elif gan is not None and index == gan.g_optimizer:
                up = _wants(fake)
                if up is not None:
                    gan.g_wants.append(up)
                    gan.g_step_where = gan.g_step_where or _caller()
                    gan.g_loss_where = gan.g_loss_where or _read_at(fake)
            for call in self.calls:  # what this step used is spent
                call.grad = None

        return hook


def _owned_modules(root: torch.nn.Module, owners: dict[int, set[int]]):
    """(name, module, optimizer) for the largest submodules whose parameters all belong to
    one and the same optimizer."""
    taken: list[str] = []
    for name, module in root.named_modules():
        if not name or any(name.startswith(t + ".") for t in taken):
            continue
        if isinstance(module, (torch.nn.ModuleList, torch.nn.ModuleDict)):
            continue  # a container is never called: its members are (two discriminators)
        held = [owners.get(id(p), set()) for p in module.parameters()]
        if held and all(len(h) == 1 for h in held) and len({min(h) for h in held}) == 1:
            taken.append(name)
            yield name, module, min(held[0])


def _flat(batch: Any) -> list:
    if isinstance(batch, dict):
        return [x for v in batch.values() for x in _flat(v)]
    if isinstance(batch, (list, tuple)):
        return [x for v in batch for x in _flat(v)]
    return [batch]


def _detach(value: Any) -> Any:
    """A tensor argument without its graph (the call is only read, never re-run)."""
    return value.detach() if isinstance(value, torch.Tensor) else value


def _tensor_args(call: _Call):
    for key, value in [*enumerate(call.args), *call.kwargs.items()]:
        if isinstance(value, torch.Tensor) and value.is_floating_point() and value.dim() >= 1:
            yield key, value


def _match(x: torch.Tensor, candidates: list[torch.Tensor]) -> slice | None:
    """The rows of `x` that are one of `candidates`: all of them (the same storage and size,
    or the same values in any shape), or the first or last rows (a `torch.cat` of real and
    generated samples)."""
    for c in candidates:
        strided = c.layout == x.layout == torch.strided  # a sparse tensor has no storage
        if c.device != x.device or c.numel() == 0 or not strided:
            continue
        same_storage = x.untyped_storage().data_ptr() == c.untyped_storage().data_ptr()
        if x.numel() == c.numel() and (same_storage or torch.equal(x.reshape(-1), c.reshape(-1))):
            return slice(0, len(x))
        n = len(c) if c.dim() else 0
        if c.dim() == x.dim() and c.shape[1:] == x.shape[1:] and 0 < n < len(x):
            if torch.equal(x[:n], c):
                return slice(0, n)
            if torch.equal(x[len(x) - n :], c):
                return slice(len(x) - n, len(x))
    return None


def _rest(x: torch.Tensor, rows: slice) -> slice | None:
    if rows.start > 0:
        return slice(0, rows.start)
    if rows.stop < len(x):
        return slice(rows.stop, len(x))
    return None


def _gather(call: _Call, grad: torch.Tensor) -> None:
    """Add the gradient backward sent to a call's output, summed per sample."""
    grad = grad.detach().float()
    rows = grad.reshape(len(grad), -1).sum(1) if grad.dim() else grad.reshape(1)
    call.grad = rows if call.grad is None else call.grad + rows


def _wants(uses: list[_Use]) -> float | None:
    """How the losses since the last step want the scores of these samples to move: minus
    the mean gradient at the discriminator's output over their rows (None: none reached)."""
    rows = []
    for use in uses:
        grad = use.call.grad
        if grad is None:
            continue
        x = use.call.args[use.key] if isinstance(use.key, int) else use.call.kwargs[use.key]
        if len(grad) == len(x):
            rows.append(grad[use.rows])
        elif use.rows == slice(0, len(x)):  # one score for the whole batch
            rows.append(grad)
    if not rows:
        return None
    return -float(torch.cat(rows).mean())


def _read_at(uses: list[_Use]) -> str:
    """Where the discriminator call that a loss reached was made (its loss's line)."""
    return next((u.call.where for u in uses if u.call.grad is not None), "")


def _caller() -> str:
    """`model.py:42 in training_step`: the line of `training_step` running now (a helper it
    called, `self.discriminator_loss(...)`, is named only where no training_step is)."""
    frame, first = sys._getframe(2), ""
    while frame is not None:
        if is_user_file(frame.f_code.co_filename):
            name = Path(frame.f_code.co_filename).name
            where = f"{name}:{frame.f_lineno} in {frame.f_code.co_name}"
            if frame.f_code.co_name == "training_step":
                return where
            first = first or where
        frame = frame.f_back
    return first


# --- judging -------------------------------------------------------------------------------


def judge(gan: GanObs | None) -> list[Finding]:
    """Whether the discriminator's and the generator's losses agree on which way is real."""
    if gan is None or not gan.d_wants or not gan.g_wants:
        return []
    real = sum(r for r, _ in gan.d_wants) / len(gan.d_wants)
    generated = sum(f for _, f in gan.d_wants) / len(gan.d_wants)
    separate, fool = real - generated, sum(gan.g_wants) / len(gan.g_wants)
    scale = abs(real) + abs(generated) + abs(fool)
    if min(abs(separate), abs(fool)) <= 1e-6 * scale or (separate > 0) == (fool > 0):
        return []  # they agree, whatever the convention (or one asks for nothing)
    d_at = f", stepped at {gan.d_step_where}" if gan.d_step_where else ""
    g_at = f", stepped at {gan.g_step_where}" if gan.g_step_where else ""
    measured = (
        f"the {gan.discriminator}'s loss (optimizer {gan.d_optimizer}{d_at}) pushes its "
        f"scores on the real batch {_way(separate)} relative to generated samples (real "
        f"{real:+.3g}, generated {generated:+.3g}: minus the mean gradient at its output, over "
        f"{len(gan.d_wants)} step(s)), while the {gan.generator}'s loss (optimizer "
        f"{gan.g_optimizer}{g_at}) pushes them {_way(fool)} on its samples ({fool:+.3g}). The "
        "two disagree on which way is 'real'; with the usual convention (a higher score means "
        "real: BCE with ones for real, a critic, hinge, least squares)"
    )
    turn = (
        "If your discriminator scores real samples low on purpose, the {} loss is the one to turn."
    )
    if separate < 0:
        return [
            Finding(
                ASPECT,
                f"{D_CAUSE}: {measured} the {gan.discriminator} is the one trained the wrong "
                "way, to score real samples below generated ones",
                "In the discriminator's loss, give the real samples the 'real' target and the "
                "generated ones the 'fake' target: `bce(D(real), ones) + bce(D(fake.detach()), "
                "zeros)` (a critic: `D(fake).mean() - D(real).mean()`; hinge: `relu(1 - "
                f"D(real)) + relu(1 + D(fake))`){_at(gan.d_loss_where)}. "
                + turn.format("generator's"),
                [gan.discriminator],
                cause=D_CAUSE,
            )
        ]
    return [
        Finding(
            ASPECT,
            f"{G_CAUSE}: {measured} the {gan.generator} is the one trained the wrong way, "
            "toward samples the discriminator scores as fake",
            "Give the generator's loss the 'real' target on its own samples: `bce(D(G(z)), "
            "ones)` (not zeros), or `-D(G(z)).mean()` for a critic or hinge loss"
            f"{_at(gan.g_loss_where)}. " + turn.format("discriminator's"),
            [gan.generator],
            cause=G_CAUSE,
        )
    ]


def _at(where: str) -> str:
    return f"; the loss is computed at {where}" if where else ""


def _way(value: float) -> str:
    return "up" if value > 0 else "down"
