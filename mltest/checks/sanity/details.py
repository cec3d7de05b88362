"""The details a person opens: every finding, every parameter and buffer, the probes' figures."""

from __future__ import annotations

from mltest.checks.sanity.findings import Finding
from mltest.checks.sanity.obs import StepObs


def details(obs: StepObs, findings: list[Finding], baseline: dict | None) -> str:
    loss = f"{obs.loss:.6g}" if obs.loss is not None else "not reported"
    lrs = ", ".join(f"{x:g}" for x in obs.learning_rates) or "—"
    lines = [
        f"One step of `{obs.model_name}` from seed {obs.seed} on the first training batch: "
        f"loss {loss}, learning rate(s) {lrs}, {obs.seconds:.2f} s.",
        "",
    ]
    if findings:
        lines += [f"- **{f.aspect}**: {f.message}" for f in findings] + [""]
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
