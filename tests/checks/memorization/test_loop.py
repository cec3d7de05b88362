"""mltest's lean fit loop is Lightning's loop: the same hooks in the same order with the same
arguments and Trainer counters, the same weights, optimizer and scheduler state after every
epoch, on a table of what users do in real code (optimizers, schedulers, clipping,
accumulation, precision, skipped batches and steps, stops, callbacks, manual optimization),
both with hooks overridden (Lightning's own functions run them) and without (the fast paths);
and where it cannot be equal, Lightning's own loop runs and the reason is named."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from torch import nn

from mltest.checks.memorization.device_batches import DeviceBatches
from mltest.checks.memorization.loop import LeanLoop
from mltest.engine import FixedBatches, make_trainer, quiet
from mltest.seeding import isolated_global_state, seed_all


def _batches(count: int = 3, rows: int = 8) -> list:
    gen = torch.Generator().manual_seed(7)
    return [
        [torch.randn(rows, 4, generator=gen), torch.randint(0, 3, (rows,), generator=gen)]
        for _ in range(count)
    ]


class Net(pl.LightningModule):
    """A small classifier with batch norm and dropout; `options` switch on what a test needs."""

    def __init__(self, **options):
        super().__init__()
        self.options = options
        self.net = nn.Sequential(
            nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.3), nn.Linear(8, 3)
        )
        self.seen: list = []  # what hooks saw (the observed variants)

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        if self.options.get("epoch_scaled_loss"):
            loss = loss * (1 + 0.1 * self.current_epoch + 0.01 * self.global_step)
        if self.options.get("skip_step") == (self.current_epoch, batch_idx):
            return None
        if self.options.get("dict_output"):
            return {"loss": loss, "extra": loss.detach() * 2}
        return loss

    def configure_optimizers(self):
        kind = self.options.get("optimizer", "adam")
        if kind == "sgd":
            optimizer = torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9)
        else:
            optimizer = torch.optim.Adam(self.parameters(), lr=0.01)
        schedule = self.options.get("schedule")
        if schedule is None:
            return optimizer
        interval, frequency = schedule
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)
        return [optimizer], [{"scheduler": scheduler, "interval": interval, "frequency": frequency}]

    def configure_callbacks(self):
        return [Stopper(self.options["stop_at"])] if "stop_at" in self.options else []


class Observed(Net):
    """Every hook the loop drives is overridden and records what it saw (Lightning's own
    functions run them, not the fast paths)."""

    def _note(self, hook, *values):
        trainer = self.trainer
        lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else None
        batch_idx = trainer.fit_loop.epoch_loop.batch_idx
        self.seen.append(
            (hook, trainer.current_epoch, trainer.global_step, batch_idx, trainer.is_last_batch,
             lr, *[_plain(v) for v in values])
        )  # fmt: skip

    def on_train_epoch_start(self):
        self._note("on_train_epoch_start")

    def on_train_batch_start(self, batch, batch_idx):
        self._note("on_train_batch_start", batch, batch_idx)
        if self.options.get("skip_rest") == (self.current_epoch, batch_idx):
            return -1
        return None

    def on_before_batch_transfer(self, batch, dataloader_idx):
        self._note("on_before_batch_transfer", batch)
        return batch

    def on_after_batch_transfer(self, batch, dataloader_idx):
        x, y = batch
        return [x + 0.01 * torch.randn_like(x), y]  # augmentation drawing from torch's RNG

    def on_before_zero_grad(self, optimizer):
        self._note("on_before_zero_grad")

    def optimizer_zero_grad(self, epoch, batch_idx, optimizer):
        self._note("optimizer_zero_grad", epoch, batch_idx)
        optimizer.zero_grad()

    def on_before_backward(self, loss):
        self._note("on_before_backward", loss)

    def backward(self, loss, *args, **kwargs):
        self._note("backward", loss)
        loss.backward(*args, **kwargs)

    def on_after_backward(self):
        self._note("on_after_backward", _grad_norm(self))

    def on_before_optimizer_step(self, optimizer):
        self._note("on_before_optimizer_step", _grad_norm(self))

    def configure_gradient_clipping(
        self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None
    ):  # noqa: E501
        self._note("configure_gradient_clipping", gradient_clip_val, gradient_clip_algorithm)
        self.clip_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm)

    def optimizer_step(self, epoch, batch_idx, optimizer, optimizer_closure=None):
        self._note("optimizer_step", epoch, batch_idx)
        optimizer.step(closure=optimizer_closure)

    def lr_scheduler_step(self, scheduler, metric):
        self._note("lr_scheduler_step", metric)
        scheduler.step()

    def on_train_batch_end(self, outputs, batch, batch_idx):
        self._note("on_train_batch_end", outputs, batch_idx)

    def on_train_epoch_end(self):
        self._note("on_train_epoch_end", float(self.trainer.callback_metrics["train_loss"]))


class ManualGan(pl.LightningModule):
    """Two optimizers stepped by hand, a scheduler stepped by hand, RNG in training_step."""

    def __init__(self, observed: bool = False):
        super().__init__()
        self.automatic_optimization = False
        self.observed = observed
        self.g = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 4))
        self.d = nn.Sequential(nn.Linear(4, 8), nn.LeakyReLU(0.2), nn.Linear(8, 1))
        self.seen: list = []

    def training_step(self, batch, batch_idx):
        real, _ = batch
        opt_g, opt_d = self.optimizers()
        fake = self.g(torch.randn(len(real), 2))
        bce = nn.functional.binary_cross_entropy_with_logits
        d_loss = bce(self.d(real), torch.ones(len(real), 1)) + bce(
            self.d(fake.detach()), torch.zeros(len(real), 1)
        )
        opt_d.zero_grad()
        self.manual_backward(d_loss)
        opt_d.step()
        g_loss = bce(self.d(fake), torch.ones(len(real), 1))
        opt_g.zero_grad()
        self.manual_backward(g_loss)
        opt_g.step()
        self.lr_schedulers().step()
        self.log_dict({"d_loss": d_loss, "g_loss": g_loss})
        if self.observed:
            self.seen.append((self.current_epoch, self.global_step, batch_idx, g_loss.item()))
        return {"loss": g_loss, "d": d_loss.detach()}

    def on_train_batch_end(self, outputs, batch, batch_idx):
        if self.observed:
            self.seen.append(("end", _plain(outputs), self.global_step))

    def configure_optimizers(self):
        opt_g = torch.optim.Adam(self.g.parameters(), lr=0.01)
        opt_d = torch.optim.Adam(self.d.parameters(), lr=0.005)
        return [opt_g, opt_d], [torch.optim.lr_scheduler.StepLR(opt_g, 2, gamma=0.5)]


class Stopper(pl.Callback):
    """Asks the Trainer to stop at (epoch, batch_idx), mid-epoch when batch_idx says so."""

    def __init__(self, at):
        self.at = tuple(at)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if (trainer.current_epoch, batch_idx) == self.at:
            trainer.should_stop = True


class Watcher(pl.Callback):
    """What a callback sees, without overriding any hook the loop's fast paths depend on;
    written into the model's own list, so the order of callback and model hooks shows."""

    def __init__(self, seen: list):
        self.seen = seen

    def _note(self, trainer, hook, *values):
        optimizer = trainer.optimizers[0]
        self.seen.append(
            ("callback " + hook, trainer.current_epoch, trainer.global_step,
             trainer.fit_loop.epoch_loop.batch_idx, trainer.is_last_batch,
             optimizer.param_groups[0]["lr"], *[_plain(v) for v in values])
        )  # fmt: skip

    def on_train_epoch_start(self, trainer, pl_module):
        self._note(trainer, "on_train_epoch_start", _state(pl_module))

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._note(trainer, "on_train_batch_start", batch, batch_idx)

    # The loop's counters as a checkpoint saved here would keep them, and the weights.
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        loops = trainer.fit_loop.state_dict()
        self._note(trainer, "on_train_batch_end", outputs, batch_idx, loops, _state(pl_module))

    def on_train_epoch_end(self, trainer, pl_module):
        loops = trainer.fit_loop.state_dict()
        self._note(trainer, "on_train_epoch_end", loops, _state(pl_module))


def _plain(value):
    """Tensors as exact Python values, containers recursively: comparable with ==."""
    if isinstance(value, torch.Tensor):
        return value.detach().double().tolist()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _grad_norm(module) -> float:
    grads = [p.grad.detach().flatten() for p in module.parameters() if p.grad is not None]
    return float(torch.cat(grads).double().norm()) if grads else 0.0


def _state(module) -> list:
    return [_plain(t) for t in module.state_dict().values()]


def _fit(model_factory, settings: dict, *, lean: bool, epochs: int = 4, batches=None):
    """One seeded fit of a fresh model; what the hooks saw, the final state, the loop used."""
    batches = batches if batches is not None else _batches()
    with isolated_global_state(), quiet():
        seed_all(0)
        model = model_factory()
        watcher = Watcher(model.seen)
        trainer = make_trainer(
            model, settings, max_epochs=epochs, limit_train_batches=len(batches),
            callbacks=[watcher],
        )  # fmt: skip
        loop = LeanLoop(trainer, batches, pl) if lean else None
        torch.set_num_threads(1)
        trainer.fit(model, train_dataloaders=FixedBatches(batches))
        optimizers = [_plain(o.state_dict()["state"]) for o in trainer.optimizers]
        schedulers = [c.scheduler.state_dict() for c in trainer.lr_scheduler_configs]
    return {
        "hooks_saw": model.seen,
        "state": _state(model),
        "optimizers": optimizers,
        "schedulers": schedulers,
        "loops": trainer.fit_loop.state_dict(),
        "global_step": trainer.global_step,
    }, loop


CASES = {
    "Adam": ({}, {}),
    "SGD with momentum, per-epoch schedule": ({"optimizer": "sgd", "schedule": ("epoch", 1)}, {}),
    "per-step schedule every 2 steps": ({"schedule": ("step", 2)}, {}),
    "gradient clipping by norm": ({"optimizer": "sgd"}, {"gradient_clip_val": 0.05}),
    "gradient clipping by value": (
        {}, {"gradient_clip_val": 0.01, "gradient_clip_algorithm": "value"}),
    "gradient accumulation over 2 batches of 3": (
        {"schedule": ("step", 1)}, {"accumulate_grad_batches": 2}),
    "bf16 mixed precision": ({}, {"precision": "bf16-mixed"}),
    "float64 precision": ({}, {"precision": "64-true"}),
    "a dict output with extra values": ({"dict_output": True}, {}),
    "a skipped step (training_step returns None)": ({"skip_step": (1, 1)}, {}),
    "a loss built from current_epoch and global_step": ({"epoch_scaled_loss": True}, {}),
    "a callback stops mid-epoch": ({"stop_at": (1, 0)}, {}),
    "a stop before min_epochs is held off": ({"stop_at": (0, 2)}, {"min_epochs": 3}),
    "max_steps ends the fit mid-epoch": ({}, {"max_steps": 5}),
}  # fmt: skip


@pytest.mark.parametrize("observed", [False, True], ids=["fast paths", "hooks overridden"])
@pytest.mark.parametrize("case", list(CASES))
def test_the_lean_loop_trains_exactly_as_lightnings_loop(case, observed):
    options, settings = CASES[case]
    cls = Observed if observed else Net
    lean, loop = _fit(lambda: cls(**options), settings, lean=True)
    lightning, _ = _fit(lambda: cls(**options), settings, lean=False)
    assert loop.reason == ""  # mltest's loop ran
    assert lean == lightning
    assert lean["global_step"] > 0 and len(lean["hooks_saw"]) > 10
    float32 = "precision" not in settings
    assert loop.plain_batches == loop.plain_backward == (float32 and not observed)
    clipped = "gradient_clip_val" in settings
    assert loop.plain_optimizer_step == (float32 and not observed and not clipped)


def test_the_rest_of_an_epoch_is_skipped_as_lightning_skips_it():
    def model():
        return Observed(skip_rest=(1, 1), schedule=("epoch", 1))

    lean, loop = _fit(model, {}, lean=True)
    assert loop.reason == "" and lean == _fit(model, {}, lean=False)[0]
    epoch_1 = [seen for seen in lean["hooks_saw"] if seen[1] == 1]
    assert [s[0] for s in epoch_1 if s[0] in ("on_train_batch_start", "optimizer_step")] == [
        "on_train_batch_start", "optimizer_step", "on_train_batch_start"
    ]  # fmt: skip


@pytest.mark.parametrize("observed", [False, True])
def test_manual_optimization_trains_exactly_as_lightnings_loop(observed):
    lean, loop = _fit(lambda: ManualGan(observed), {}, lean=True)
    assert loop.reason == "" and lean == _fit(lambda: ManualGan(observed), {}, lean=False)[0]
    assert lean["global_step"] == 4 * 3 * 2  # two optimizer steps per batch


def test_a_batch_modified_in_place_is_moved_again_as_lightning_moves_it():
    class InPlace(Net):
        def training_step(self, batch, batch_idx):
            batch[0].mul_(1.5)  # the user's code scales the batch in place
            return super().training_step(batch, batch_idx)

    lean, _ = _fit(InPlace, {}, lean=True, batches=_batches())
    assert lean == _fit(InPlace, {}, lean=False, batches=_batches())[0]


def test_a_device_copy_is_reused_only_while_nothing_modified_it_or_its_source():
    moved = []

    def move(data, device):  # a copy to another device, as `.to("cuda")` makes one
        moved.append(data)
        return data.clone() if isinstance(data, torch.Tensor) else data

    cache = DeviceBatches("elsewhere", move)
    x, y = torch.ones(3), torch.zeros(3)
    first = cache.get([x, {"y": y, "name": "a"}])
    again = cache.get([x, {"y": y, "name": "a"}])
    assert again[0] is first[0] and again[1]["y"] is first[1]["y"] and again is not first
    assert moved == [x, y, "a", "a"]  # tensors once; other values each time, as Lightning does
    again[0].mul_(2)  # the training step scales its batch in place
    copy = cache.get([x, {"y": y, "name": "a"}])[0]
    assert copy is not again[0] and torch.equal(copy, x)
    x.add_(1)  # the data itself changed
    assert torch.equal(cache.get([x, {"y": y, "name": "a"}])[0], x)


class _Plateau(Net):
    def configure_optimizers(self):
        optimizer = torch.optim.Adam(self.parameters(), lr=0.01)
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, patience=0)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": plateau, "monitor": "train_loss"},
        }  # noqa: E501


class _EarlyStopped(Net):
    def configure_callbacks(self):
        return [pl.callbacks.EarlyStopping(monitor="train_loss", patience=1)]


@pytest.mark.parametrize(
    ("model", "settings", "reason"),
    [
        (_Plateau, {}, "a learning-rate scheduler monitors `train_loss`"),
        (_EarlyStopped, {}, "the EarlyStopping callback monitors logged values"),
        (Net, {"profiler": "simple"}, "a profiler is set"),
        (Net, {"reload_dataloaders_every_n_epochs": 1}, "reload_dataloaders_every_n_epochs"),
    ],
)
def test_what_the_lean_loop_cannot_equal_runs_in_lightnings_loop_with_the_reason(
    model, settings, reason
):
    lean, loop = _fit(model, settings, lean=True)
    assert reason in loop.reason
    assert lean == _fit(model, settings, lean=False)[0]


@pytest.mark.gpu
@pytest.mark.parametrize("case", ["Adam", "bf16 mixed precision", "gradient clipping by norm"])
def test_on_a_gpu_the_lean_loop_trains_exactly_as_lightnings_loop(case):
    options, settings = CASES[case]
    settings = {**settings, "accelerator": "gpu", "devices": 1}
    lean, loop = _fit(lambda: Observed(**options), settings, lean=True)
    assert loop.reason == "" and lean == _fit(lambda: Observed(**options), settings, lean=False)[0]
