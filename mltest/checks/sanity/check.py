"""Training sanity: a few optimisation steps of the user's own code, and what they must do.

From a seeded fresh init, `steps` steps (default 3) of `training_step` + `configure_optimizers`
on the first training batch (dataset order), run by Lightning. The first step is judged as
always: every trainable parameter has a gradient and has changed, every frozen one has not,
norm layers' running statistics moved, loss, outputs and gradients are finite, the loss is not
0, the optional output range and batch independence hold, the set of parameters that train is
the one in the baseline. The probes add a diagnosis where a bug hides from one step: gradients
that accumulate, skipped steps, a racing scheduler (`probes.steps`), a wrong backward
(`probes.gradcheck`), a loss at init far from ln C or the baseline (`probes.init_loss`),
padding that moves outputs or trains (`probes.padding`), dead or saturated units
(`probes.units`), non-determinism named as such (`probes.independence`), a loss that explodes
over the steps (`probes.loss_growth`), probabilities or a wrong axis fed to a log-softmax loss
(`probes.loss_inputs`), an optimizer stepping more or fewer times than in the baseline
(`probes.step_count`), a GAN's discriminator and generator losses that disagree on which way
is real (labels swapped, a generator trained toward "fake": `probes.gan`), an output that sees
later positions (`probes.causal`, opt-in).
"""

from __future__ import annotations

from mltest.checks.base import CheckContext
from mltest.checks.sanity import baseline as base
from mltest.checks.sanity.details import details
from mltest.checks.sanity.findings import Finding, judge_step
from mltest.checks.sanity.obs import StepObs, matches
from mltest.checks.sanity.settings import KIND, Settings
from mltest.errors import ConfigError
from mltest.report import Case, CheckResult, Status

ASPECTS = (
    "finite values",
    "loss does not explode",
    "loss is not zero",
    "what the loss receives",
    "discriminator and generator agree on 'real'",
    "optimizer steps per training_step",
    "gradients are cleared between steps",
    "gradient matches finite differences",
    "shared parameters",  # before the loss at init: untying changes it
    "loss at init",
    "each optimizer steps its own parameters",
    "what each optimizer's step changes",
    "trainable parameters change",
    "frozen parameters stay",
    "running statistics move",
    "optimizer steps every step",
    "scheduler steps once per step",
    "padding embedding row",
    "padding invariance",
    "no output sees later positions",
    "dead and saturated units",
    "output range",
    "batch independence",
    "baseline",
)


def run(ctx: CheckContext, settings: Settings) -> CheckResult:
    """Observe the steps, judge them, compare with the baseline (or record it)."""
    seed = settings.seed if settings.seed is not None else ctx.seeds[0]
    from mltest.checks.sanity.probes import (
        causal,
        gan,
        gradcheck,
        independence,
        init_loss,
        loss_growth,
        loss_inputs,
        padding,
        step_count,
        steps,
        tying,
        units,
    )
    from mltest.checks.sanity.step import observe_step  # torch: only where checks run
    from mltest.seeding import nondeterminism_notice

    obs = observe_step(ctx, settings, seed)
    _validate_patterns(obs, settings)
    notices = _notices(obs, settings)
    unstable = nondeterminism_notice(obs.nondeterministic)
    notices += [unstable] if unstable else []
    entry, entry_key = base.lookup(ctx, obs.env_key)
    reference = None if ctx.update_baselines or entry is None else entry
    findings = judge_step(obs, settings)
    findings += steps.judge(obs, settings.lr_drop_limit)
    findings += loss_growth.judge(obs, settings.loss_growth_limit)
    findings += loss_inputs.judge(obs.loss_inputs)
    findings += gan.judge(obs.gan)
    # A parameter with no gradient at all is already named, with its reason (a detach); the
    # gradient check adds a finding only for gradients that exist and are wrong.
    untrained = {n for f in findings if f.aspect == "trainable parameters change" for n in f.names}
    for finding in gradcheck.judge(obs.gradcheck):
        if not finding.names or not set(finding.names) <= untrained:
            findings.append(finding)
    if settings.init_loss:
        findings += init_loss.judge(obs.init, (reference or {}).get("init_loss"))
    findings += padding.judge(obs.padding)
    findings += causal.judge(obs.causal, obs.model_name)
    findings += causal.judge_targets(obs.loss_inputs) if settings.causal else []
    if settings.causal is None:
        from mltest.checks.task import task_of

        task = task_of(ctx)
        if any(call.per_position for call in obs.loss_inputs):  # not a flat bag of words
            notices += [n for n in [causal.suggestion(task.kind, task.source)] if n]
    unit_found, unit_notices = units.judge(
        obs.units, (reference or {}).get("activations"), ctx.update_command
    )
    findings += unit_found
    findings += independence.judge(obs)
    if ctx.update_baselines:
        rows = [units.row(u) for u in obs.units]
        status, summary, hint, recorded = base.record(ctx, obs, _ordered(findings), entry, rows)
        notices += recorded
    else:
        if entry_key and entry_key != obs.env_key:
            notices.append(
                f"no baseline for {obs.env_key}; compared with the one recorded for "
                f"{entry_key} (which parameters train does not depend on the device)"
            )
        found, notice = base.compare_baseline(obs.params, entry, obs.env_key, ctx.update_command)
        findings += found
        notices += [notice] if notice else []
        findings += step_count.judge(obs, entry, ctx.update_command)
        found, untied = tying.judge(obs, entry, ctx.update_command)
        findings, notices = findings + found, notices + untied
        found, notice = base.compare_optimizer_steps(obs, entry, ctx.update_command)
        findings += found
        notices += [notice] if notice else []
        notices += unit_notices
        if entry is not None and (
            ("init_loss" not in entry and obs.init is not None)
            or ("activations" not in entry and obs.units)
        ):
            notices.append(
                "the baseline predates the loss-at-init and activation probes; record it again "
                f"with `{ctx.update_command} --check {ctx.name}` to compare them too"
            )
        findings = _ordered(findings)
        status, summary, hint = summarize(obs, findings)
    return CheckResult(
        name=ctx.name,
        kind=KIND,
        status=status,
        summary=summary,
        hint=hint,
        notices=notices,
        details=details(obs, findings, entry),
        metrics=_metrics(obs, findings),
        cases=[
            Case(aspect, Status.FAIL, " ".join(f.message for f in findings if f.aspect == aspect))
            if any(f.aspect == aspect for f in findings)
            else Case(aspect, Status.PASS)
            for aspect in _aspects(obs, settings, ctx.update_baselines, findings)
        ],
    )


def _ordered(findings: list[Finding]) -> list[Finding]:
    """Most fundamental first: a NaN or a stale gradient explains what follows it."""
    return sorted(findings, key=lambda f: ASPECTS.index(f.aspect))


def summarize(obs: StepObs, findings: list[Finding]) -> tuple[Status, str, str]:
    """The verdict, the sentence a person reads (the root-cause finding first), the hint."""
    if not findings:
        trained = sum(p.moved for p in obs.params)
        losses = [s.loss for s in obs.steps if s.loss is not None]
        if len(losses) > 1:
            loss = "loss " + " → ".join(f"{x:.4g}" for x in losses)
        else:
            loss = f"loss {obs.loss:.4g}" if obs.loss is not None else "loss not reported"
        first = "one step" if len(obs.steps) <= 1 else f"the first of {len(obs.steps)} steps"
        if obs.zero_lr_steps:  # a warm-up from lr 0: the judged step is a later one
            first = f"step {obs.judged_step} of {len(obs.steps)} (the first at a non-zero lr)"
        return (
            Status.PASS,
            f"{first} trained {trained} of {len(obs.params)} parameters as expected; {loss}",
            "",
        )
    first = findings[0]
    more = f" (+{len(findings) - 1} more problem(s), see details)" if len(findings) > 1 else ""
    return Status.FAIL, first.message + more, first.hint


def _metrics(obs: StepObs, findings: list[Finding]) -> dict:
    return {
        "environment": obs.env_key,
        "seed": obs.seed,
        "loss": obs.loss,
        "learning_rates": obs.learning_rates,
        "judged_step": obs.judged_step,
        "parameters": len(obs.params),
        "trained": [p.name for p in obs.params if p.moved],
        "optimizer_steps": base.step_rows(obs),
        "problems": {f.aspect: f.names for f in findings},
        "causes": list(dict.fromkeys(f.cause for f in findings if f.cause)),
        "output_min": obs.output_min,
        "output_max": obs.output_max,
        "steps": len(obs.steps),
        "losses": [s.loss for s in obs.steps],
        "grad_norms": [s.grad_norm for s in obs.steps],
        "classes": obs.init.classes if obs.init else None,
        "gradient_check_errors": obs.gradcheck.errors if obs.gradcheck else None,
        "gradient_check_seconds": round(obs.gradcheck.seconds, 3) if obs.gradcheck else None,
        "units": {u.module: {"kind": u.kind, "share": u.share} for u in obs.units},
        "padding_moved": obs.padding.moved if obs.padding else None,
        "step_seconds": round(obs.seconds, 3),
    }


def _validate_patterns(obs: StepObs, settings: Settings) -> None:
    """A `frozen` pattern that matches nothing is a stale claim (a renamed module): say so."""
    names = [p.name for p in obs.params]
    for pattern in settings.frozen:
        if not any(matches(n, [pattern]) for n in names):
            raise ConfigError(
                f"checks.sanity.frozen: pattern {pattern!r} matches no parameter of "
                f"{obs.model_name}; parameters are named like {', '.join(names[:4])}; "
                "fix the pattern (globs, e.g. `backbone.*`)"
            )


def _notices(obs: StepObs, settings: Settings) -> list[str]:
    notices = list(obs.skipped)
    if obs.loss is None:
        notices.append("training_step gave no loss to check (manual optimisation?)")
    names = [p.name for p in obs.params]
    for pattern in settings.allow_unchanged:
        if not any(matches(n, [pattern]) for n in names):
            notices.append(f"checks.sanity.allow_unchanged: {pattern!r} matches no parameter")
    independent = settings.batch_independence and obs.eval_unstable is None
    if independent and (obs.batch_size or 0) < 2:
        notices.append("batch independence not checked: the first batch holds one sample")
    if obs.padding is not None and not obs.padding.embeddings:
        notices.append(
            "padding embedding row not checked: no nn.Embedding read the padded input "
            f"(checks.sanity.padding.input_key {settings.padding.input_key!r}) as it is"
        )
    if obs.zero_lr_steps:
        lrs = ", ".join(f"{x:.3g}" for x in obs.learning_rates)
        notices.append(
            f"judged step {obs.judged_step} (learning rate {lrs}): the {obs.zero_lr_steps} "
            "step(s) before it ran at learning rate 0, a warm-up from 0, and could not move "
            "anything"
            + (
                f"; checks.sanity.zero_lr_steps ({settings.zero_lr_steps}) passes over no more"
                if obs.zero_lr_steps >= settings.zero_lr_steps and lrs and not any(
                    obs.learning_rates)
                else ""
            )
        )
    skipped = [s.index for s in obs.steps[1:] if not s.changed and s.grad_norm]
    if skipped and obs.precision.startswith("16"):
        notices.append(
            f"the optimizer skipped step(s) {', '.join(map(str, skipped))}: with precision "
            f"{obs.precision} the gradient scaler skips steps whose gradients overflow"
        )
    return notices


def _aspects(obs: StepObs, settings: Settings, updating: bool, findings: list) -> list[str]:
    skip = set()
    if not (obs.tying and obs.tying.shared):  # a model that ties nothing: no case to list
        skip.add("shared parameters")
    if settings.output_range is None:
        skip.add("output range")
    if not settings.batch_independence:
        skip.add("batch independence")
    if len(obs.steps) < 2:
        skip |= {
            "loss does not explode",
            "gradients are cleared between steps",
            "optimizer steps every step",
            "scheduler steps once per step",
        }
    if obs.gradcheck is None:
        skip.add("gradient matches finite differences")
    if not settings.init_loss:
        skip.add("loss at init")
    if obs.padding is None:
        skip |= {"padding embedding row", "padding invariance"}
    if not settings.causal:
        skip.add("no output sees later positions")
    if not obs.loss_inputs:
        skip.add("what the loss receives")
    if obs.gan is None or not (obs.gan.d_wants and obs.gan.g_wants):
        skip.add("discriminator and generator agree on 'real'")
    if not settings.units:
        skip.add("dead and saturated units")
    if len(obs.optimizer_params) < 2:
        skip |= {
            "each optimizer steps its own parameters",
            "optimizer steps per training_step",
            "what each optimizer's step changes",
        }
    if updating:
        skip |= {
            "baseline",
            "optimizer steps per training_step",
            "what each optimizer's step changes",
        }
    return [a for a in ASPECTS if a not in skip - {f.aspect for f in findings}]
