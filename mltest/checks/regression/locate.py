"""Where moved outputs come from: the golden's module trace against this run's, call by call.

Calls pair up by qualified name (and class); the rest by their order among calls of the same
class, so a renamed submodule keeps its partner ("renamed from ..."), and what is left is new
or gone. Then the events (a call starting with its inputs, ending with its outputs) are read
in the order they happened; the first whose tensors moved says where the change is:
- a call's input moved while everything before matched: the code of its caller (the call
  around it) before it, or predict_step before the model when nothing is around it;
- a call's output moved on an unchanged input: the module itself: its settings, its initial
  weights, or (a module with submodules) its own forward code between them;
- only predict_step's outputs moved: predict_step or the post-processing;
- nothing moved in a trace of the fresh init: the forward pass is the same, the change is in
  training.
Pure: traces in, words out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from difflib import SequenceMatcher
from typing import Any

from mltest.checks.regression.fingerprints import PREDICT, Call, Stats, Trace

SAME_ENVIRONMENT = 1e-3  # moved: beyond this share of the recorded spread
CROSS_ENVIRONMENT = 1e-2  # against another device's trace: float noise is larger there


@dataclass
class Localisation:
    """What the traces say: a clause for the summary, the hint, a details section, metrics."""

    summary: str
    hint: str
    details: str
    metrics: dict[str, Any] = field(default_factory=dict)


def pair_calls(golden: tuple[Call, ...], now: tuple[Call, ...]) -> dict[int, int]:
    """Index in `now` -> index of its partner in `golden`: same name and class first, then
    the leftovers by their order among calls of the same class."""
    by_name = {c.name: i for i, c in enumerate(golden)}
    pairs = {}
    for j, call in enumerate(now):
        i = by_name.get(call.name)
        if i is not None and golden[i].cls == call.cls:
            pairs[j] = i
    taken = set(pairs.values())
    left_g = [i for i in range(len(golden)) if i not in taken]
    left_n = [j for j in range(len(now)) if j not in pairs]
    matcher = SequenceMatcher(
        None, [golden[i].cls for i in left_g], [now[j].cls for j in left_n], autojunk=False
    )
    for a, b, size in matcher.get_matching_blocks():
        for k in range(size):
            pairs[left_n[b + k]] = left_g[a + k]
    return pairs


def stats_change(
    golden: tuple[Stats, ...], now: tuple[Stats, ...], tolerance: float, *, batch: bool = True
) -> str:
    """How tensors moved, in words; "" when they match. `batch=False` skips the first axis
    of shapes (another inference batch size)."""
    if len(golden) != len(now):
        return f"{len(golden)} tensor(s) → {len(now)}"
    for index, (a, b) in enumerate(zip(golden, now, strict=True)):
        label = f"tensor {index}: " if len(golden) > 1 else ""
        if (a.shape if batch else a.shape[1:]) != (b.shape if batch else b.shape[1:]):
            return f"{label}shape {list(a.shape)} → {list(b.shape)}"
        if a.dtype != b.dtype:
            return f"{label}dtype {a.dtype} → {b.dtype}"
        if a.nonfinite != b.nonfinite:
            return f"{label}non-finite values {a.nonfinite} → {b.nonfinite}"
        scale = a.std or a.absmax or 1.0
        delta = max(abs(a.mean - b.mean), abs(a.std - b.std), abs(a.absmax - b.absmax),
                    abs(a.proj - b.proj))
        if delta > tolerance * scale + 1e-12:
            if b.std <= 1e-6 * a.std:  # the running sums leave a constant a tiny spread
                return f"{label}became constant ({b.mean:.4g} everywhere; std was {a.std:.3g})"
            return (
                f"{label}values moved by {delta / scale:.3g}× the recorded spread (mean "
                f"{a.mean:.4g} → {b.mean:.4g}, std {a.std:.4g} → {b.std:.4g})"
            )
    return ""


def locate(golden: Trace, now: Trace, *, tolerance: float = SAME_ENVIRONMENT) -> Localisation:
    """Where the forward pass first differs from the golden's, and what to check first."""
    pairs = pair_calls(golden.calls, now.calls)
    partner = {j: golden.calls[i] for j, i in pairs.items()}
    calls = now.calls
    new = [c for j, c in enumerate(calls) if j not in pairs]
    gone = [golden.calls[i] for i in sorted(set(range(len(golden.calls))) - set(pairs.values()))]
    renamed = [(partner[j].name, c.name) for j, c in enumerate(calls)
               if j in partner and partner[j].name != c.name]
    same_batch = golden.batch == now.batch
    events = sorted([(c.start, "in", j) for j, c in enumerate(calls)]
                    + [(c.end, "out", j) for j, c in enumerate(calls)])
    recent_new: Call | _Removed | None = None
    last_clock = 0  # the golden clock of the last event that matched
    found = None
    for _, kind, j in events:
        if j not in partner:
            recent_new = recent_new or calls[j]
            continue
        g, c = partner[j], calls[j]
        clock = g.start if kind == "in" else g.end
        what = stats_change(
            g.inputs if kind == "in" else g.outputs,
            c.inputs if kind == "in" else c.outputs,
            tolerance,
            batch=same_batch,
        )
        if what:
            # A call that is gone and ran between the last match and here moved it.
            removed = [x for x in gone if last_clock < x.start < clock and x.name != PREDICT]
            recent_new = recent_new or (_Removed(removed[0]) if removed else None)
            found = (kind, j, what)
            break
        recent_new, last_clock = None, clock
    init = now.reference.startswith("fresh init")
    if found is None:
        summary, hint = _nothing_moved(init, now.truncated or golden.truncated)
        moved_at = None
    else:
        kind, j, what = found
        summary, hint = _moved(kind, calls[j], partner[j], what, calls, recent_new, init,
                               tolerance)
        moved_at = calls[j].name
    changes = _structure(new, gone, renamed)
    if changes:
        summary += f"; {changes}"
    return Localisation(
        summary=summary,
        hint=hint,
        details=_details(now, calls, partner, found, tolerance, same_batch, new, gone, renamed),
        metrics={
            "traced": now.reference,
            "first_moved": moved_at,
            "how": found[2] if found else None,
            "new_modules": [c.name for c in new],
            "gone_modules": [c.name for c in gone],
            "renamed_modules": [list(r) for r in renamed],
        },
    )


def _moved(kind, call, before, what, calls, recent_new, init, tolerance) -> tuple[str, str]:
    shown = _shown(call, before)
    where = "in the forward pass at the seeded fresh init" if init else "in the forward pass"
    if call.name == PREDICT:
        return (
            f"every module call of the model matches the golden trace, but predict_step's "
            f"outputs moved ({what}): the change is after the model's forward",
            "Check predict_step and the post-processing first: the label map (class order), a "
            "threshold, a scaling, or a softmax or argmax over another axis.",
        )
    if kind == "in" and isinstance(recent_new, _Removed):
        return (
            f"first moved {where}: the input of {shown}, right where {recent_new.call.shown} "
            f"ran before, which is gone ({what}): removing it changed what follows",
            f"Check why {recent_new.call.shown} was removed first: what it computed reached "
            "the outputs. Then the preprocessing and the label map.",
        )
    if kind == "in" and recent_new is not None:
        return (
            f"first moved {where}: the input of {shown}, right after {recent_new.shown}, which "
            f"did not exist before ({what}): the new module changed it",
            f"Check {recent_new.shown} first: it is new since the golden outputs, and what it "
            "computes reaches the outputs. Then the preprocessing and the label map.",
        )
    if kind == "in":
        caller = _caller(call, calls)
        if caller is None:
            return (
                f"first moved {where}: the input of {shown}, before any module ran "
                f"({what}): predict_step prepares the model's input differently",
                "Check predict_step first, where it prepares the model's input (normalisation, "
                "resizing, channel order, dtype), then the data module's preprocessing.",
            )
        child = call.name.rsplit(".", 1)[-1]
        owner = f"`{caller.name}`" if caller.name else "the model"
        return (
            f"first moved {where}: the input of {shown}, while every call before it "
            f"matches ({what}): the change is in {caller.cls}.forward ({owner}) before it "
            f"calls `{child}`",
            f"Check {caller.cls}.forward first, where it builds the input of `{child}`: a skip "
            "connection or concatenation with the wrong tensor, a changed reshape, slice, "
            "padding or order of operations. Then the preprocessing and the label map.",
        )
    inside = any(call.start < c.start and c.end <= call.end for c in calls)
    if inside:
        return (
            f"first moved {where}: the output of {shown}, although its input and every "
            f"submodule call inside it match ({what}): the change is in {call.cls}.forward's "
            "own code",
            f"Check {call.cls}.forward first: the code between or after its submodules (an "
            "activation, a residual sum, a reshape, a scaling, which tensor it returns).",
        )
    if _params_differ(before.params, call.params, tolerance):
        weights = "initial weights" if init else "weights"
        return (
            f"first moved {where}: the output of {shown} on an unchanged input ({what}); its "
            f"own {weights} differ ({before.params[0]} values, norm {before.params[1]:.4g} → "
            f"{call.params[0]} values, norm {call.params[1]:.4g})",
            f"Check how `{call.name}` is built first: its size arguments, its initialisation, "
            "or modules created before it in __init__ (they shift the seeded initial weights). "
            "Then the preprocessing and the label map."
            if init
            else f"Check the weights loaded into `{call.name}` first (which checkpoint, which "
            "keys), then how the module is built.",
        )
    return (
        f"first moved {where}: the output of {shown} on an unchanged input with the same "
        f"parameters ({what}): its settings or its forward changed",
        f"Check how `{call.name}` is built first: its arguments ({_typical(call.cls)}), or a "
        "replaced class. Then the preprocessing and the label map.",
    )


@dataclass(frozen=True)
class _Removed:
    """A golden call that is gone, found just before the first moved input."""

    call: Call


def _nothing_moved(init: bool, truncated: bool) -> tuple[str, str]:
    if init:
        return (
            "the forward pass at the seeded fresh init matches the golden trace call by call, "
            "and so do predict_step's outputs: the outputs moved through training",
            "The model computes the same function at initialisation, so check what it learns "
            "first: the loss and its reduction, the optimizer, learning rate and scheduler, the "
            "training data, its preprocessing, labels and order.",
        )
    cut = " (within the traced calls)" if truncated else ""
    return (
        f"every module call matches the golden trace{cut}: the moved outputs are not traced "
        "to a module",
        "Check the preprocessing and the label map first, then what changed in predict_step.",
    )


def _shown(call: Call, before: Call) -> str:
    if before.name != call.name:
        return f"`{call.name}` ({call.cls}, renamed from `{before.name}`)"
    return call.shown


def _caller(call: Call, calls: tuple[Call, ...]) -> Call | None:
    """The innermost call running around `call` (its caller), or None."""
    around = [c for c in calls if c.start < call.start and call.end <= c.end and c.name != PREDICT]
    return max(around, key=lambda c: c.start, default=None)


def _params_differ(a: tuple[int, float], b: tuple[int, float], tolerance: float) -> bool:
    return a[0] != b[0] or abs(a[1] - b[1]) > tolerance * max(a[1], 1e-12) * 1e-2


def _typical(cls: str) -> str:
    lowered = cls.lower()
    if "conv" in lowered or "pool" in lowered:
        return "stride, padding, kernel size, dilation, groups"
    if "norm" in lowered:
        return "normalised shape or axis, eps, affine, running statistics"
    if "attention" in lowered:
        return "heads, mask, scaling, batch_first"
    return "sizes, dims, mode, activation"


def _structure(new: list[Call], gone: list[Call], renamed: list[tuple[str, str]]) -> str:
    parts = []
    for label, items in (("new since the golden", new), ("gone since the golden", gone)):
        items = [c for c in items if c.name != PREDICT]
        if items:
            more = f" and {len(items) - 1} more" if len(items) > 1 else ""
            parts.append(f"first {label}: {items[0].shown}{more}")
    if renamed:
        more = f" and {len(renamed) - 1} more" if len(renamed) > 1 else ""
        parts.append(f"renamed: `{renamed[0][0]}` → `{renamed[0][1]}`{more}")
    return "; ".join(parts)


def _details(trace, calls, partner, found, tolerance, same_batch, new, gone, renamed) -> str:
    """A few calls around the first moved one, golden against now."""
    lines = [f"**Module trace** ({trace.reference}, on the fixed inputs; golden → now):", ""]
    at = found[1] if found else len(calls)
    rows = range(max(0, at - 3), min(len(calls), at + 4))
    if rows:
        lines += ["| call | module | class | input | output |", "|---|---|---|---|---|"]
    for j in rows:
        c = calls[j]
        g = partner.get(j)
        if g is None:
            cells = ["new", "new"]
        else:
            cells = [
                stats_change(g.inputs, c.inputs, tolerance, batch=same_batch) or "matches",
                stats_change(g.outputs, c.outputs, tolerance, batch=same_batch) or "matches",
            ]
        name = c.name or "(the model)"
        if g is not None and g.name != c.name:
            name += f" (was {g.name})"
        mark = " ⟵ first moved" if found and j == at else ""
        lines.append(f"| {j + 1} | `{name}`{mark} | {c.cls or '—'} | {cells[0]} | {cells[1]} |")
    listed = [
        ("New", [c.name for c in new if c.name != PREDICT]),
        ("Gone", [c.name for c in gone if c.name != PREDICT]),
        ("Renamed", [f"{a} → {b}" for a, b in renamed]),
    ]
    lines.append("")
    for label, names in listed:
        if names:
            shown = ", ".join(f"`{n}`" for n in names[:8])
            lines.append(f"{label} modules: {shown}{' ...' if len(names) > 8 else ''}")
    return "\n".join(lines).rstrip() + "\n"
