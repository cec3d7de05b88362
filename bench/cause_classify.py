"""How a report on a bug variant is classified: caught, cause named, moved outputs only...

A *finding* is one unit of text a person reads in report.json for a check that failed or
errored: each failing case's message (the sanity check's aspects, a seed, an output), and the
check's summary together with its hint. A finding *names the cause* when it contains

1. one of the variant's own cause words (`Variant.words`: regular expressions, any of them,
   case-insensitive, written per variant so a finding about another problem does not count),
2. and a location (`LOCATION`): a module or parameter in backticks (`` `dec2.up` ``), a
   dotted parameter name (`generator.0.weight`), a file and line (`model.py:63`), a position
   (`position 0`), an optimizer by index (`optimizer 1`), or a method (`UpBlock.forward`,
   `predict_step`, `training_step`, `configure_optimizers`).

Both must be in the same sentence of that finding (a sentence ends at a line break or at a
full stop followed by a capital), and the sentence must not be one of the fixed lists of
possible causes a hint gives whatever the bug (`GENERIC`): such a list names every cause at
once, and so none. Outcomes, first match wins:

- harmless variant: `pass` when the verdict is pass, else `false alarm`;
- bug: `missed` (verdict pass), `named` (a finding names the cause), `moved outputs only` (the
  only failing checks are the prediction checks: regression, key_examples), `crashed` (no check
  failed, one errored: the model code raised), else `not named` (caught, but no finding names
  this cause with a location).
"""

from __future__ import annotations

import re
from typing import Any

from bench.cause_models.variants import Variant

LOCATION = re.compile(
    r"`[A-Za-z_<][\w.<>]*`"  # a module or parameter in backticks
    r"|\b[A-Za-z_]\w*(?:\.\w+)*\.(?:weight|bias)\b"  # a parameter
    r"|\b[\w/-]+\.py:\d+"  # file:line
    r"|\bpositions? \d+"
    r"|\boptimizer \d+"
    r"|\b[A-Z]\w*\.(?:forward|\w+_step)\b"  # a method of a class
    r"|\b(?:predict_step|training_step|validation_step|configure_optimizers)\b"
)
# Sentences that list candidate causes whatever the bug (the memorization hint's closing list).
GENERIC = (re.compile(r"^Check for a layer that is not wired in"),)
SENTENCE = re.compile(r"\n+|(?<=\.)\s+(?=[A-Z])")
PREDICTION_CHECKS = {"regression", "key_examples"}
FAILED = {"fail", "error"}


def findings(report: dict[str, Any]) -> list[tuple[str, str]]:
    """(check name, text) for every finding of the checks that failed or errored."""
    found = []
    for check in report.get("checks", []):
        if check["status"] not in FAILED:
            continue
        found.append((check["name"], f"{check['summary']}\n{check.get('hint', '')}"))
        for case in check.get("cases", []):
            if case["status"] in FAILED and case.get("message"):
                found.append((check["name"], f"{case['name']}: {case['message']}"))
    return found


def sentences(text: str) -> list[str]:
    return [s.strip() for s in SENTENCE.split(text) if s.strip()]


def names_cause(text: str, variant: Variant) -> str | None:
    """The sentence of `text` that names the variant's cause and a location, if one does (the
    module docstring's rule)."""
    for sentence in sentences(text):
        if any(g.search(sentence) for g in GENERIC) or not LOCATION.search(sentence):
            continue
        if any(re.search(w, sentence, re.IGNORECASE | re.DOTALL) for w in variant.words):
            return sentence
    return None


def classify(report: dict[str, Any], variant: Variant) -> dict[str, Any]:
    """The outcome of one variant's report, with the evidence for it."""
    statuses = {c["name"]: c["status"] for c in report.get("checks", [])}
    failing = sorted(n for n, s in statuses.items() if s == "fail")
    erroring = sorted(n for n, s in statuses.items() if s == "error")
    verdict = report.get("verdict")
    found = findings(report)
    naming = [(check, excerpt(s, variant)) for check, text in found
              if (s := names_cause(text, variant))]  # fmt: skip
    if variant.harmless:
        outcome = "pass" if verdict == "pass" else "false alarm"
    elif verdict == "pass":
        outcome = "missed"
    elif naming:
        outcome = "named"
    elif failing and set(failing) <= PREDICTION_CHECKS:
        outcome = "moved outputs only"
    elif erroring and not failing:
        outcome = "crashed"
    else:
        outcome = "not named"
    evidence = naming[0] if naming else (found[0] if found else ("", ""))
    return {
        "outcome": outcome,
        "verdict": verdict,
        "statuses": statuses,
        "failing": failing,
        "erroring": erroring,
        "named_by": evidence[0] if naming else None,
        "evidence": _one_line(evidence[1]),
        "report_errors": report.get("errors", []),
    }


def excerpt(sentence: str, variant: Variant, before: int = 120) -> str:
    """The sentence from a little before its first cause word (the part that names it)."""
    starts = [m.start() for w in variant.words
              if (m := re.search(w, sentence, re.IGNORECASE | re.DOTALL))]  # fmt: skip
    start = max(0, min(starts) - before) if starts else 0
    return ("…" if start else "") + sentence[start:]


def _one_line(text: str, limit: int = 400) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
