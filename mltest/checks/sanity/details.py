"""The details a person opens: every finding, every parameter and buffer, the probes' figures."""

from __future__ import annotations

import math

from mltest.checks.sanity.findings import Finding
from mltest.checks.sanity.obs import StepObs


def details(obs: StepObs, findings: list[Finding], baseline: dict | None) -> str:
    """Markdown: the findings (with their likely cause), the tables, the probes' figures."""
    loss = f"{obs.loss:.6g}" if obs.loss is not None else "not reported"
    lrs = ", ".join(f"{x:g}" for x in obs.learning_rates) or "—"
    lines = [
        f"{len(obs.steps) or 1} step(s) of `{obs.model_name}` from seed {obs.seed} on the first "
        f"training batch: first loss {loss}, learning rate(s) {lrs}, {obs.seconds:.2f} s.",
        "",
    ]
    if findings:
        lines += [
            f"- **{f.aspect}**: {f.message}" + (f" *(likely cause: {f.cause})*" if f.cause else "")
            for f in findings
        ] + [""]
    if obs.optimizer_steps:
        from mltest.checks.sanity.baseline import describe_steps
        from mltest.render.safe import inline

        steps = inline(describe_steps(obs.optimizer_steps))
        lines += [f"Optimizer steps of the judged training_step: {steps}.", ""]
    lines += _probes(obs)
    flagged = {n for f in findings for n in f.names}
    rows = [p for p in obs.params if p.name in flagged] or obs.params
    if len(obs.params) <= 60:
        rows = obs.params
    lines += [
        "| parameter | shape | requires_grad | in optimizer | max abs grad | max change |",
        "|---|---|---|---|---|---|",
    ]
    for p in rows:
        grad = f"{p.grad_max:.3g}" if p.grad_max is not None else "none"
        mark = " ⚠" if p.name in flagged else ""
        lines.append(
            f"| `{p.name}`{mark} | {tuple(p.shape)} | {p.requires_grad} | "
            f"{p.in_optimizer} | {grad} | {p.change:.3g} |"
        )
    if len(rows) < len(obs.params):
        lines.append(f"\n{len(obs.params) - len(rows)} more parameters trained as expected.")
    if obs.buffers:
        lines += ["", "| buffer | module ran in | moved |", "|---|---|---|"]
        lines += [f"| `{b.name}` | {b.mode} | {b.moved} |" for b in obs.buffers]
    if obs.output_min is not None:
        lines += [
            "",
            f"Output range: [{obs.output_min:.4g}, {obs.output_max:.4g}] ({obs.output_source}).",
        ]
    if baseline is not None and any(f.aspect == "baseline" for f in findings):
        then = [r.rsplit(" ", 2)[0] for r in baseline["parameters"] if r.endswith(" trains")]
        now = [p.name for p in obs.params if p.moved]
        lines += [
            "",
            f"Trained in the baseline ({len(then)}): {', '.join(then) or '—'}",
            "",
            f"Train now ({len(now)}): {', '.join(now) or '—'}",
        ]
    return "\n".join(lines)


def _probes(obs: StepObs) -> list[str]:
    """The per-step trace and each probe's figures, so a pass can be read as well as a fail."""
    lines: list[str] = []
    if len(obs.steps) > 1:
        lines += [
            "| step | loss | gradient norm | learning rates | moved | stale gradients |",
            "|---|---|---|---|---|---|",
        ]
        for s in obs.steps:
            loss = f"{s.loss:.4g}" if s.loss is not None else "—"
            norm = f"{s.grad_norm:.3g}" if s.grad_norm is not None else "—"
            rates = ", ".join(f"{x:.3g}" for x in s.learning_rates) or "—"
            lines.append(
                f"| {s.index} | {loss} | {norm} | {rates} | {s.changed} | {len(s.stale)} |"
            )
        lines.append("")
    if obs.gradcheck is not None:
        errors = ", ".join(f"{e:.2g}" for e in obs.gradcheck.errors)
        lines += [
            f"Gradient check (float64, finite differences): relative errors {errors} "
            f"({obs.gradcheck.seconds:.2f} s).",
            "",
        ]
    if obs.init is not None and obs.init.classes:
        lines += [
            f"Loss at init {obs.init.loss:.4g}; ln {obs.init.classes} = "
            f"{math.log(obs.init.classes):.4g}"
            + (
                f", labels' entropy {obs.init.label_entropy:.4g}"
                if obs.init.label_entropy is not None
                else ""
            )
            + ".",
            "",
        ]
    if obs.units:
        lines += ["| activation module | type | dead / saturated share | of |", "|---|---|---|---|"]
        lines += [
            f"| `{u.module}` | {u.type} | {u.kind} {u.share:.2f} | {u.units} |" for u in obs.units
        ]
        lines.append("")
    if obs.padding is not None and obs.padding.moved is not None:
        pad = obs.padding
        rows = "; ".join(_pad_row(row) for row in pad.embeddings) or "no embedding reads it"
        cut = (
            f" (to the batch cut by its last {pad.trimmed} positions, to stay within its length)"
            if pad.trimmed
            else ""
        )
        lines += [
            f"Padding: {pad.extra} positions added{cut} moved outputs by {pad.moved:.3g}; {rows}.",
            "",
        ]
    gan = obs.gan
    if gan is not None and gan.d_wants and gan.g_wants:
        d = "; ".join(f"real {r:+.3g}, generated {f:+.3g}" for r, f in gan.d_wants)
        g = ", ".join(f"{x:+.3g}" for x in gan.g_wants)
        lines += [
            f"GAN: `{gan.discriminator}` (optimizer {gan.d_optimizer}) reads the output of "
            f"`{gan.generator}` (optimizer {gan.g_optimizer}). How each loss wants its scores "
            f"to move (minus the mean gradient at its output), per step: its own loss {d}; "
            f"the generator's loss, on its samples, {g}.",
            "",
        ]
    from mltest.checks.sanity.probes import causal, loss_inputs

    return lines + loss_inputs.details(obs.loss_inputs) + causal.details(obs.causal)


def _pad_row(row) -> str:
    """`tokens` padding_idx 0, pad row gradient 0, change 0.01 (tied with `head`)."""
    gradient = "" if row.gradient is None else f"gradient from padding {row.gradient:.3g}, "
    tied = f" (tied with {', '.join(f'`{m}`' for m in row.shared)})" if row.shared else ""
    return (
        f"`{row.module}` padding_idx {row.padding_idx}, pad row {gradient}change "
        f"{row.change:.3g}{tied}"
    )
