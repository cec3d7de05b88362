"""The key-examples verdict: failure rates per tag against the allowed ones and the baseline."""

from __future__ import annotations

from dataclasses import dataclass

from mltest.checks.base import record_hint
from mltest.checks.key_examples.judging import Outcome
from mltest.checks.key_examples.settings import Settings
from mltest.report import Status

UNTAGGED = "(untagged)"


@dataclass
class TagStat:
    tag: str
    cases: int
    failures: int
    allowed: float

    @property
    def rate(self) -> float:
        return self.failures / self.cases if self.cases else 0.0

    @property
    def ok(self) -> bool:
        return self.rate <= self.allowed + 1e-12


def new_in(tag: str, outcomes: list[Outcome]) -> int:
    """How many of a tag's failures passed in the baseline (for the report's chart)."""
    return sum(o.new_failure and tag in (o.example.tags or (UNTAGGED,)) for o in outcomes)


def tag_stats(outcomes: list[Outcome], settings: Settings) -> list[TagStat]:
    """Cases and failures per tag (sorted), untagged examples last, then all examples."""
    counts: dict[str, list[int]] = {}
    for o in outcomes:
        if not o.tested:
            continue
        for tag in o.example.tags or (UNTAGGED,):
            pair = counts.setdefault(tag, [0, 0])
            pair[0] += 1
            pair[1] += not o.passed
    order = sorted(t for t in counts if t != UNTAGGED) + ([UNTAGGED] if UNTAGGED in counts else [])
    rate = settings.tag_failure_rates
    return [TagStat(t, *counts[t], rate.get(t, settings.allowed_failure_rate)) for t in order]


def decide(
    outcomes: list[Outcome],
    stats: list[TagStat],
    baseline: dict | None,
    baseline_key: str | None,
    env_key: str,
    settings: Settings,
    update_command: str,
) -> tuple[Status, str, str, list[str]]:
    """The verdict, the sentence a person reads, what to do next, and notices."""
    tested = [o for o in outcomes if o.tested]
    failed = [o for o in tested if not o.passed]
    new = [o for o in failed if o.new_failure]
    over = [s for s in stats if not s.ok]
    notices: list[str] = []
    if baseline is None:
        notices.append(
            f"no baseline of passing examples is recorded for {env_key}, so new failures "
            f"cannot be told from old ones; record one with `{update_command}`"
        )
    elif baseline_key != env_key:
        notices.append(f"compared with the baseline recorded for {baseline_key} (none for "
                       f"{env_key})")
    if baseline is not None:
        before = set(baseline.get("passing", []))
        fixed = [o.example.id for o in tested if o.passed and o.example.id not in before]
        if fixed:
            notices.append(
                f"{len(fixed)} example(s) pass now that did not in the baseline "
                f"({_ids(fixed)}): check they pass for the right reason (not a leak of the "
                "expected output or a loosened expectation) before `"
                f"{update_command}` records them as passing"
            )
        if new and not over:
            notices.append(
                f"{len(new)} example(s) that passed in the baseline fail now, within the "
                f"allowed failure rates: {_ids([o.example.id for o in new])}"
            )
    head = f"{len(tested) - len(failed)}/{len(tested)} key examples pass"
    if over:
        worst = ", ".join(
            f"`{s.tag}` {s.failures}/{s.cases} ({s.rate:.0%} > {s.allowed:.0%})" for s in over[:4]
        )
        news = f"; {len(new)} passed in the baseline" if new else ""
        return (
            Status.FAIL,
            f"{head}; over the allowed failure rate: {worst}{news}",
            "Look at the failing examples in the details (new failures first): a wrong "
            "label map, a changed normalisation or tokenisation in collate, or a feature "
            "the model no longer uses. Only if the new behaviour is right: fix the "
            "expectation in the examples table, or allow it per tag (tag_failure_rates) and run "
            f"`{update_command}`, which records the current passes as correct.",
            notices,
        )
    if baseline is None and settings.require_baseline:
        return (
            Status.FAIL,
            f"{head}, but no baseline is recorded for {env_key} (require_baseline is on)",
            record_hint(update_command, env_key),
            notices,
        )
    within = f" ({len(failed)} failure(s) within allowed rates)" if failed else ""
    return Status.PASS, f"{head} across {len(stats)} tag(s){within}", "", notices


def _ids(ids: list[str], limit: int = 8) -> str:
    shown = ", ".join(f"`{i}`" for i in ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")

