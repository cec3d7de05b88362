"""The evaluation verdict: from the cells, gaps and the restore test to a status, the sentence
a person reads, what to do next, and notices. Pure; nothing here trains or reads files.

A quality drop is never presented as something to record: the hint says where to look. Under
`mltest baseline update` a result is recorded unless an absolute limit fails (a floor, the
trivial predictor, a gap: config values that recording must not paper over); drops against the
previous result are then what the update is for, and the pinned reference still holds the line.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mltest.checks.base import record_hint
from mltest.checks.evaluation.cells import (
    Cell,
    GapResult,
    Outcome,
    bound_text,
    comparison_text,
    gap_text,
    shown,
)
from mltest.report import Status

NOTICES = 6  # not-significant findings named one by one; the table has them all
QUALITY_HINT = (
    "Find what this change does to the failing slice (its hardest examples are in the "
    "details): preprocessing, label handling, class balance, augmentation, a model or loss "
    "change. The pinned reference moves only when a maintainer re-pins it on purpose, so "
    "re-recording the previous result does not make a drop against it pass."
)
RESTORE_HINT = (
    "Register tensors the model needs at prediction as buffers (`self.register_buffer`), keep "
    "other training state in `on_save_checkpoint` / `on_load_checkpoint`, and give custom "
    "schedulers and optimizers `state_dict` / `load_state_dict`."
)


@dataclass
class Verdict:
    status: Status
    summary: str
    hint: str = ""
    notices: list[str] = field(default_factory=list)


def findings(cells: list[Cell], gaps: list[GapResult], level: float,
             outcome: Outcome) -> list[tuple[str, str]]:  # fmt: skip
    """(kind, sentence) of every limit with `outcome`: absolute ones (`bound`, `trivial`,
    `gap`) first, then the pinned reference, then the previous result; within a kind, the
    furthest past its limit first."""
    found = []
    for kind in ("bound", "trivial", "gap", "pinned", "previous"):
        if kind == "gap":
            found += [("gap", gap_text(g, level)) for g in gaps if g.outcome is outcome]
            continue
        for c in sorted(cells, key=lambda c: -c.severity):
            if kind == "bound":
                if c.bound is not None and c.bound.outcome is outcome:
                    found.append(("bound", bound_text(c, level)))
                continue
            comp = c.against(kind)
            if comp is not None and comp.outcome is outcome:
                found.append((kind, comparison_text(c, comp, level)))
    return found


def decide(cells: list[Cell], gaps: list[GapResult], restore_problems: list[str], *,
           level: float, env: str, has_previous: bool, has_pinned: bool, updating: bool,
           pinning: bool, update_command: str) -> Verdict:  # fmt: skip
    """The verdict of a run (compare) or of a recording (`updating`)."""
    failures = findings(cells, gaps, level, Outcome.FAIL)
    quiet = findings(cells, gaps, level, Outcome.NOT_SIGNIFICANT)
    notices = [f"{text}" for _, text in quiet[:NOTICES]]
    if len(quiet) > NOTICES:
        notices.append(f"{len(quiet) - NOTICES} more limit(s) passed by a drop that is not "
                       "significant; see the table")  # fmt: skip
    if restore_problems:
        return Verdict(Status.FAIL, f"{restore_problems[0]}" + _more(restore_problems[1:]),
                       RESTORE_HINT, notices)  # fmt: skip
    absolute = [f for f in failures if f[0] in ("bound", "trivial", "gap")]
    if updating:
        if absolute:
            return Verdict(Status.FAIL, f"not recorded: {absolute[0][1]}" + _more(absolute[1:]),
                           "Fix the model, or change the limit in the config on purpose (the "
                           "change shows in review).", notices)  # fmt: skip
        drops = [text for kind, text in failures if kind in ("previous", "pinned")]
        notices = [f"recorded although {text}" for text in drops[:NOTICES]] + notices
        pinned = "; pinned as the reference" if pinning or not has_pinned else ""
        return Verdict(Status.PASS, f"recorded for {env}: {_headline(cells)}{pinned}", "",
                       notices)  # fmt: skip
    if failures:
        kind, text = failures[0]
        hint = QUALITY_HINT if kind != "gap" else (
            "One slice is served much worse than another: look at the worse slice's data "
            "(its size and labels in training, its preprocessing) and its hardest examples."
        )
        return Verdict(Status.FAIL, text + _more(failures[1:]), hint, notices)
    if not has_previous:
        return Verdict(
            Status.FAIL,
            f"evaluated ({_headline(cells)}), but no previous result is recorded for {env}",
            record_hint(f"{update_command} --check evaluation", env),
            notices,
        )
    if not has_pinned:
        notices.append(
            f"no pinned reference for {env}: small drops could add up from PR to PR unnoticed; "
            f"pin one with `{update_command} --check evaluation --pin`"
        )
    passing = sum(c.outcome is not Outcome.FAIL for c in cells)
    return Verdict(Status.PASS, f"{passing} metric x slice cell(s) within their limits; "
                                f"{_headline(cells)}", "", notices)  # fmt: skip


def _headline(cells: list[Cell]) -> str:
    """`accuracy 0.912 on val / all (previous 0.905, pinned 0.899)` for the first cell."""
    if not cells:
        return "no cells"
    c = cells[0]
    refs = [
        f"{name} {shown(comp.reference, c.bounded)}"
        for name in ("previous", "pinned")
        if (comp := c.against(name)) is not None
    ]
    extra = f" ({', '.join(refs)})" if refs else ""
    return f"{c.metric} {shown(c.value, c.bounded)} on {c.where}{extra}"


def _more(rest: list) -> str:
    return f" (and {len(rest)} more)" if rest else ""
