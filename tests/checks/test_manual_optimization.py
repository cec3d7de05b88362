"""Manual optimization, first-class: memorization judges a two-optimizer GAN with its
validation_step (training_step steps the optimizers, so it cannot judge), an oscillating
metric must hold `hold` judgements in a row, messages name the target's metric, and sanity
compares which parameters each optimizer's step changed with the baseline."""

from __future__ import annotations

import pytest

import mltest.checks.memorization as memorization
from bench.common import context
from mltest.checks import sanity
from mltest.checks.memorization import Target
from mltest.checks.memorization.fit import train_seed
from mltest.errors import ConfigError
from mltest.report import Status
from tests.suites import edited_example, forget_project_modules


def _gan(tmp_path, check, edits=(), yaml_edits=()):
    config = edited_example("gan", tmp_path, edits, yaml_edits)
    forget_project_modules(config.parent)
    return context(config, check)


def test_training_step_cannot_judge_a_manual_optimization_model(tmp_path):
    # Before: the eval-mode judgement ran training_step, which steps the optimizers (and
    # whose manual_backward fails under no_grad): refused now, before anything trains.
    ctx, settings = _gan(tmp_path, "memorization")
    forced = settings.model_copy(update={"judge": "training_step"})
    with pytest.raises(ConfigError, match="manual optimization .* set `judge: validation_step`"):
        memorization.validate(ctx, forced)
    memorization.validate(ctx, settings)  # auto: validation_step, accepted


def test_without_validation_step_auto_picks_the_built_in_samples_judgement(tmp_path):
    ctx, settings = _gan(tmp_path, "memorization", [("def validation_step", "def _unused")])
    # The example's target is validation_step's own `gap`, which the samples do not measure.
    with pytest.raises(ConfigError, match="is judged by its samples .* `target: {metric: sample_"):
        memorization.validate(ctx, settings)
    samples = settings.model_copy(update={"target": Target(metric="sample_gap", at_most=0.3)})
    memorization.validate(ctx, samples)
    run, _ = train_seed(ctx, samples, 1)
    assert run.judge == "samples" and run.epochs is not None
    assert run.initial_value > 0.6 and run.metric_values[run.epochs - 1] <= 0.3
    forced = settings.model_copy(update={"judge": "validation_step"})
    with pytest.raises(ConfigError, match="judged by validation_step, which it does not define"):
        memorization.validate(ctx, forced)


def test_the_samples_judgement_needs_a_latent_shape(tmp_path):
    ctx, settings = _gan(
        tmp_path, "memorization", [("self.example_input_array = torch.zeros(2, LATENT)", "")]
    )
    samples = settings.model_copy(
        update={"judge": "samples", "target": Target(metric="sample_gap", at_most=0.3)}
    )
    with pytest.raises(ConfigError, match="set `checks.memorization.latent_shape: \\[100\\]`"):
        memorization.validate(ctx, samples)
    memorization.validate(ctx, samples.model_copy(update={"latent_shape": (4,)}))


def test_the_gan_memorizes_judged_by_its_validation_metric(tmp_path):
    ctx, settings = _gan(tmp_path, "memorization")
    run, _ = train_seed(ctx, settings, 0)
    assert run.judge == "validation_step" and run.epochs is not None
    assert run.initial_value > 1.0 and run.metric_values[run.epochs - 1] <= 0.4
    assert run.losses == []  # validation_step returns no loss: nothing loss-like is shown


def test_hold_counts_from_the_first_of_the_judgements_in_a_row(tmp_path):
    # Seed 1's gap dips under 0.4 at epoch 23 and rises again: a chance crossing.
    ctx, settings = _gan(tmp_path, "memorization")
    once = train_seed(ctx, settings.model_copy(update={"hold": 1}), 1)[0]
    held = train_seed(ctx, settings, 1)[0]
    assert (once.epochs, held.epochs) == (23, 55)
    values = held.metric_values
    assert all(v <= 0.4 for v in values[held.epochs - 1 : held.epochs + 2])
    assert values[once.epochs - 1] <= 0.4 < max(values[once.epochs : once.epochs + 2])


def test_messages_show_the_targets_metric_not_the_generator_loss(tmp_path):
    # Constant latent noise: every fake point is the same, the spread never matches.
    ctx, settings = _gan(
        tmp_path, "memorization",
        [("fake = self.generator(torch.randn(n, LATENT))",
          "fake = self.generator(torch.zeros(n, LATENT))"),
         ("self.generator(self.fixed_z[: len(real)])",
          "self.generator(torch.zeros_like(self.fixed_z[: len(real)]))")],
        [("max_epochs: 400", "max_epochs: 60"), ("seeds: [0, 1, 2, 3, 4]", "seeds: [0]")],
    )  # fmt: skip
    result = memorization.run(ctx, settings)
    assert result.status is Status.FAIL
    assert "seed 0: best gap " in result.summary and "target gap <= 0.4, held 3" in result.summary
    assert "loss" not in result.summary
    assert "| seed | epochs | gap at init | best gap (epoch) | last gap | seconds |" in (
        result.details
    )
    assert "judged by validation_step" in result.details
    assert result.metrics["target_quantity"] == "gap" and result.metrics["target_value"] == 0.4


PHASE = """        opt_g.zero_grad()
        self.manual_backward(g_loss)
        opt_g.step()
"""


D_TWICE = "The discriminator's optimizer (optimizer 1) stepped twice in one training_step, once " \
    "in the baseline"


@pytest.mark.parametrize(
    "bug, expected",
    [
        (None, None),
        # D stepped again on the generator loss's gradients, inside the generator phase: the
        # optimizers share no parameter; the extra step is named, before the gradients it
        # piled up (read as gradients nothing cleared).
        (PHASE + "        opt_d.step()\n", D_TWICE),
        # the generator phase steps D's optimizer instead of G's
        (PHASE.replace("opt_g.step()", "opt_d.step()"),
         D_TWICE + "; the generator's optimizer (optimizer 0) did not step in one "
         "training_step, once in the baseline"),
    ],
    ids=["as-recorded", "d-stepped-in-g-phase", "g-phase-steps-d"],
)  # fmt: skip
def test_sanity_compares_what_each_optimizer_step_changed_with_the_baseline(
    tmp_path, bug, expected
):
    ctx, settings = _gan(tmp_path, "sanity")
    ctx.update_baselines = True
    assert sanity.run(ctx, settings).status is Status.PASS
    ctx, settings = _gan(tmp_path / "pr", "sanity", [(PHASE, bug)] if bug else ())
    ctx.baselines = context(tmp_path / "gan" / "mltest.yaml", "sanity")[0].baselines
    result = sanity.run(ctx, settings)
    if expected is None:
        assert result.status is Status.PASS, result.summary
        steps = "optimizer 1 → discriminator (4), then optimizer 0 → generator (4)"
        assert steps in result.details
        return
    assert result.status is Status.FAIL
    assert result.summary.startswith(expected), result.summary  # the headline, not zero_grad
    finding = next(c for c in result.cases if c.name == "optimizer steps per training_step")
    assert finding.status is Status.FAIL and expected in finding.message, finding.message
    assert "in the baseline optimizer 1 → discriminator (4), then optimizer 0 → generator (4)" in (
        finding.message
    )
    # the optimizers share no parameter, and no step changed another network's parameters
    signature = next(c for c in result.cases if c.name == "what each optimizer's step changes")
    assert signature.status is Status.PASS, signature.message
    assert "optimizers sharing parameters" not in result.details
