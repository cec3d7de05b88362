"""How a regression comparison reads: the decision and its reasons, the sentences of the
summary, the details table and the metrics. Pure: values in, text and numbers out."""

from __future__ import annotations

from typing import Any

from mltest.report import Status


def decide(
    comparison: Any,
    *,
    inputs_changed: bool,
    env_now: dict[str, Any],
    env_golden: dict[str, Any],
    update_command: str,
    spec_change: str = "",
    golden_key: str | None = None,
) -> tuple[Status, str, str, list[str]]:
    """The verdict, the sentence a person reads, what to do next, and notices.

    Args:
        comparison: golden vs this run (`compare.Comparison`).
        inputs_changed: the fixed inputs' hash differs from the one recorded with the golden.
        env_now, env_golden: device, torch and lightning versions of this run and the golden.
        update_command: the command that rewrites the golden outputs.
        spec_change: how `model_under_test` differs from the golden's, in words, or "".
        golden_key: the environment the golden belongs to; another than `env_now["key"]`
            means no golden exists here and only decisions were compared.
    """
    intended = (
        "Only once the cause is found and the new outputs are intended: "
        f"`{update_command}` records them as correct, and the reviewer sees the golden files "
        "change in the diff."
    )
    env_key = env_now.get("key")
    cross = golden_key is not None and golden_key != env_key
    moved = moved_sentence(comparison)
    if inputs_changed:
        outcome = (
            f"and {moved}"
            if not comparison.ok
            else "although the outputs still match within tolerance"
        )
        return (
            Status.FAIL,
            "the fixed inputs changed (their hash differs from the golden file's): the data "
            f"path no longer produces the same inputs, {outcome}",
            "The data path changed: look for a changed normalisation constant, resize, "
            f"tokenizer, collate function or input file (input statistics are in the details). "
            f"{intended}",
            [],
        )
    if comparison.problems:
        return (
            Status.FAIL,
            f"the outputs no longer have the golden layout: {'; '.join(comparison.problems)}",
            "predict_step or the post-processing now returns different outputs (names, shapes "
            f"or types). {intended}",
            [],
        )
    if not comparison.ok:
        why = (
            f"model_under_test changed since the golden outputs were recorded ({spec_change})"
            if spec_change
            else "the model, its weights or the post-processing changed"
        )
        if cross:
            return (
                Status.FAIL,
                f"{moved} on unchanged inputs, compared with the {golden_key} golden (none is "
                f"recorded for {env_key}): more than float noise between environments; {why}",
                "Only decisions (predicted labels, exact outputs, values within the "
                "cross-environment tolerance) were compared, so this is a real change: a "
                "shifted label map, changed post-processing or a changed model. "
                f"{intended}",
                [],
            )
        return (
            Status.FAIL,
            f"{moved} on unchanged inputs: {why}",
            "Look at the worst examples in the details: a shifted label map or changed "
            f"post-processing moves every example, a model change moves values. {intended}",
            [],
        )
    if cross:
        return (
            Status.PASS,
            cross_summary(comparison, golden_key),
            "",
            [
                f"no golden outputs are recorded for {env_key}: compared decisions with the "
                f"{golden_key} golden; record this environment's with `{update_command}` and "
                "commit the files"
            ],
        )
    notices = []
    differs = [
        f"{key} {env_golden.get(key)} → {env_now.get(key)}"
        for key in ("device", "torch")
        if env_golden.get(key) and env_golden.get(key) != env_now.get(key)
    ]
    if differs:
        notices.append(
            f"golden outputs were recorded in another environment ({', '.join(differs)}); "
            "the tolerances hold"
        )
    worst = max((d.max_abs for d in comparison.outputs), default=0.0)
    return (
        Status.PASS,
        f"{comparison.total} output values match the golden outputs (max abs diff {worst:.3g})",
        "",
        notices,
    )


def cross_summary(comparison: Any, golden_key: str) -> str:
    """What matched another environment's golden: labels, exact outputs, loose values."""
    labels = [d for d in comparison.outputs if d.judged_on == "labels"]
    parts = []
    if labels:
        ties = sum(d.ties for d in labels)
        tie_note = f" ({ties} near-tie(s) flipped, within float noise)" if ties else ""
        parts.append(f"predicted labels of {labelled(labels)[0]} match{tie_note}")
    exact = [d for d in comparison.outputs if d.exact]
    if exact:
        parts.append(f"{sum(d.total for d in exact)} exact output values match")
    loose = [d for d in comparison.outputs if d.judged_on == "values" and not d.exact]
    if loose:
        parts.append(f"{sum(d.total for d in loose)} values within the cross-environment tolerance")
    return f"{'; '.join(parts) or 'outputs match'} (compared with the {golden_key} golden)"


def moved_sentence(comparison: Any) -> str:
    if comparison.problems:
        return f"the outputs changed layout ({'; '.join(comparison.problems)})"
    by_labels = [d for d in comparison.outputs if d.judged_on == "labels" and not d.ok]
    if by_labels:
        flips = sum(d.real_flips for d in by_labels)
        text = f"{flips} predicted label(s) of {labelled(by_labels)[0]} flipped"
        others = [d for d in comparison.moved_outputs if d.judged_on == "values"]
        if others:
            moved = sum(d.moved for d in others)
            text += f" and {moved} other output value(s) moved beyond tolerance"
        return text
    text = (
        f"{comparison.moved} of {comparison.total} output values "
        f"({pct(comparison.moved, comparison.total)}) moved beyond tolerance"
    )
    # Lead with the output that moved most, by share: a label map off by one moves every
    # label, which an overall share of values (diluted by unmoved scores) would hide.
    worst = max(comparison.moved_outputs, key=lambda d: d.moved / max(d.total, 1), default=None)
    flipped = comparison.flipped
    if flipped:
        shown, count = labelled([d for d in comparison.outputs if d.flipped is not None])
        lead = f"{flipped} predicted label(s) of {shown} flipped ({pct(flipped, count)})"
        return f"{lead}; {text}"
    if worst is not None and len(comparison.outputs) > 1 and worst.moved < comparison.total:
        noun = "labels" if worst.exact else "values"
        lead = (
            f"`{worst.name}`: {worst.moved} of {worst.total} {noun} "
            f"({pct(worst.moved, worst.total)}) changed"
        )
        return f"{lead}; {text}"
    return text


def labelled(diffs: list) -> tuple[str, int]:
    """(`24 examples`, 24), or (`24,576 per-pixel labels of 24 examples`, 24576) when the
    classes sit on another axis than the last of `[B, C]` (segmentation, sequences)."""
    examples = max(d.examples for d in diffs)
    labels = max(d.labels or d.examples for d in diffs)
    if labels > examples:
        return f"{labels:,} per-position labels in {examples} examples", labels
    return f"{examples} examples", examples


def pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.3g}%" if whole else "0%"


def case_message(diff: Any) -> str:
    if diff.problem:
        return diff.problem
    if diff.moved:
        return f"{diff.moved} of {diff.total} values moved (max abs diff {diff.max_abs:.3g})"
    return ""


def output_metrics(comparison: Any) -> dict[str, Any]:
    return {
        "values": comparison.total,
        "moved": comparison.moved,
        "flipped": comparison.flipped,
        "outputs": {
            d.name: {
                "problem": d.problem,
                "total": d.total,
                "moved": d.moved,
                "max_abs": d.max_abs,
                "mean_abs": d.mean_abs,
                "max_rel": d.max_rel,
                "mean_rel": d.mean_rel,
                "flipped": d.flipped,
                "ties": d.ties,
                "judged_on": d.judged_on,
                "histogram": d.histogram,
            }
            for d in comparison.outputs
        },
    }


def details_markdown(description: str, comparison: Any, left: str, right: str) -> str:
    lines = [f"Inputs: {description}.", ""]
    for problem in comparison.problems:
        lines.append(f"- {problem}")
    if comparison.problems:
        lines.append("")  # a table right after a list item would not render as a table
    rows = [d for d in comparison.outputs if not d.problem]
    if rows:
        lines += [
            "| output | values | moved | max abs | mean abs | max rel | mean rel "
            "| labels flipped |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for d in rows:
            if d.exact:
                stats = "exact | — | — | —"
            else:
                stats = f"{d.max_abs:.3g} | {d.mean_abs:.3g} | {d.max_rel:.3g} | {d.mean_rel:.3g}"
            flipped = "—" if d.flipped is None else f"{d.flipped} of {d.labels or d.examples}"
            lines.append(
                f"| `{d.name}` | {d.total} | {d.moved} ({pct(d.moved, d.total)}) | {stats} "
                f"| {flipped} |"
            )
    worst = [(d.name, w) for d in comparison.outputs for w in d.worst]
    if worst:
        lines += [
            "",
            "Worst values (index = example, then position):",
            "",
            f"| output | index | {left} | {right} | abs diff |",
            "|---|---|---|---|---|",
        ]
        for name, w in worst:
            diff = "—" if w.abs_diff is None else f"{w.abs_diff:.3g}"
            index = ", ".join(map(str, w.index))
            lines.append(f"| `{name}` | [{index}] | {cell(w.golden)} | {cell(w.got)} | {diff} |")
    return "\n".join(lines)


def cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value).replace("|", "\\|")[:60]


def input_table(golden: dict[str, Any], now: dict[str, Any]) -> str:
    lines = [
        "**The inputs changed.** Statistics of each input array, golden → now:",
        "",
        "| input | shape | mean | std | min | max |",
        "|---|---|---|---|---|---|",
    ]
    for name in sorted(set(golden) | set(now)):
        g, n = golden.get(name, {}), now.get(name, {})

        def pair(key: str, g=g, n=n) -> str:
            a, b = g.get(key, "—"), n.get(key, "—")
            a = f"{a:.4g}" if isinstance(a, float) else a
            b = f"{b:.4g}" if isinstance(b, float) else b
            return str(a) if a == b else f"{a} → {b}"

        lines.append(
            f"| `{name}` | {pair('shape')} | {pair('mean')} | {pair('std')} | {pair('min')} "
            f"| {pair('max')} |"
        )
    return "\n".join(lines) + "\n\n"
