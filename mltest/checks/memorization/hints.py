"""What each kind of memorization failure asks a person to check: the facts the run measured
first, then the candidates in the order worth ruling them out. Pure: values in, words out.

No hint offers the baseline update as the fix. Where a change may be intended (slower, much
faster), the hint ends by saying what the update does: it records the current behaviour as
correct, and the reviewer sees the new count in the baseline's diff.
"""

from __future__ import annotations

from enum import Enum


class Failure(Enum):
    """The kind of memorization failure; each has its own hint."""

    MET_AT_INIT = "target met at init"
    NONFINITE = "non-finite values"
    NOT_REACHED = "not reached"
    SEEDS_MISSING = "seeds missing"
    SLOWER = "slower"
    MUCH_FASTER = "much faster"
    NO_BASELINE = "no baseline"


def accept_wording(update_command: str, what: str) -> str:
    """The closing sentence of a hint whose change may be intended."""
    return (
        f"Only once the cause is found and {what} is intended: `{update_command}` records "
        "the current counts as correct, and the reviewer sees the new count in the baseline "
        "file's diff."
    )


def measured(facts: list[str]) -> str:
    """`Measured: a; b. ` or '' when nothing was measured."""
    facts = [f for f in facts if f]
    return f"Measured: {'; '.join(facts)}. " if facts else ""


def hint(failure: Failure, facts: list[str], update_command: str, *, base: float = 0) -> str:
    """The hint for a failure of this kind, with the measured facts.

    Args:
        failure: what went wrong.
        facts: sentences the run measured (learning rate against the baseline's, idle
            normalisation layers, a leak probe's finding); empty ones are skipped.
        update_command: the baseline update command, named only where a change may be intended.
        base: the baseline's median count, for the kinds that compare with it.
    """
    seen = measured(facts)
    if failure is Failure.MET_AT_INIT:
        return (
            "Check the loss: e.g. cross-entropy over a single output is always 0, or the loss "
            "is computed on detached or constant tensors."
        )
    if failure is Failure.NONFINITE:
        return (
            f"{seen}Look for a learning rate that is far too high, a log/sqrt/division of zero "
            "(add a small epsilon or clamp), or mixed precision overflow (a loss computed in "
            "fp16 without autocast)."
        )
    if failure is Failure.NOT_REACHED:
        return (
            f"It memorized when the baseline was recorded (median {base:g} epochs), so this "
            f"change stops it learning. {seen}Check for a layer that is not wired in (the input "
            "or a branch never reaches the loss), a detached tensor (`.detach()`, `.item()`, "
            "`torch.no_grad()` in forward), an optimizer over the wrong parameters "
            "(configure_optimizers given a submodule), or a learning rate or schedule that "
            "leaves no room to learn."
        )
    if failure is Failure.SEEDS_MISSING:
        return (
            "Seeds that reached the target when the baseline was recorded no longer do: the "
            f"model now learns from some initialisations only. {seen}Check for a changed "
            "initialisation (a std, gain or a layer left at PyTorch's default), a learning "
            "rate at the edge of stability (a curve that jumps between epochs, in the charts), "
            "or removed gradient clipping or warm-up."
        )
    if failure is Failure.SLOWER:
        return (
            f"Something makes learning slower. {seen}Check for a learning-rate or scheduler "
            "change (warm-up, decay over max_epochs), a normalisation layer in eval mode or "
            "frozen, a layer that no longer trains (the sanity check names it), or a loss "
            "scaled down (a mean over a larger axis, a changed reduction). "
            + accept_wording(update_command, "the slowdown")
        )
    if failure is Failure.MUCH_FASTER:
        return (
            f"A count this much below the baseline is a finding to explain, not a gain. "
            f"{seen}Rule out, in this order: a label leak (the target or something computed "
            "from it reaching the input: a feature derived from the label, the label "
            "concatenated in collate or training_step); a raised learning rate (it memorizes "
            "faster and generalises worse); normalisation layers frozen or in eval mode; a "
            "loss that became easier (a changed target, a mask that drops most positions); "
            "fewer examples in the memorized batch. "
            + accept_wording(update_command, "the speed-up")
        )
    raise ValueError(f"no hint for {failure}")
