"""The rule every failure's advice keeps: what to check comes before the baseline update, and
the update is named for what it does (it records the current behaviour as correct)."""

from __future__ import annotations

UPDATE = "mltest baseline update"


def assert_protects_baseline(hint: str, command: str = UPDATE) -> None:
    """Fail when `hint` leads with updating the baseline, or names the update without saying
    that it records the current behaviour as correct."""
    at = hint.find(command)
    if at < 0:
        return
    before = hint[:at]
    assert before.count(".") + before.count(":") >= 1 and len(before) > 60, (
        f"the advice starts with updating the baseline: {hint!r}"
    )
    assert "as correct" in hint or "as passing" in hint, (
        f"the advice names the update without saying it records the current behaviour: {hint!r}"
    )
    assert "gain to lock in" not in hint and "lock the gain" not in hint, hint
