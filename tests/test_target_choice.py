"""Targets from learning curves (`mltest.target_choice`): a round level every seed reaches with
margin within a third of the budget, never a level at a plateau (the knife edge)."""

from __future__ import annotations

import math

import pytest

from mltest.target_choice import best, count, propose


def falling(start: float, floor: float, rate: float, epochs: int = 300) -> list[float]:
    """A loss falling from `start` towards `floor` (init first, then one value per epoch)."""
    return [floor + (start - floor) * math.exp(-rate * e) for e in range(epochs + 1)]


def test_count_is_the_first_of_hold_judgements_after_training_began():
    curve = [1.0, 0.5, 0.2, 0.6, 0.2, 0.1, 0.05]
    assert count(curve, 0.3, True) == 2
    assert count(curve, 0.3, True, hold=3) == 4
    assert count(curve, 0.01, True) is None
    assert count([0.1, 0.2], 0.3, True) == 1  # met at init does not count as epoch 0


def test_best_is_the_first_epoch_of_the_best_value():
    assert best([1.0, 0.4, 0.2, 0.2, 0.3], True) == (0.2, 2)
    assert best([0.0, 0.5, 0.9, 0.9], False) == (0.9, 2)
    assert best([1.0, math.nan], True) is None


def test_a_plateau_just_above_a_level_is_not_proposed():
    # The autoencoder's knife edge: every seed settles near 0.0555, never 0.05 with margin.
    curves = {s: falling(0.18, 0.0555 - 0.001 * s, 0.05) for s in range(3)}
    proposal = propose(curves, lower_is_better=True, budget=300)
    assert proposal is not None and not proposal.missed
    assert proposal.value == 0.12  # the lowest round level each goes past by a factor of 2
    assert proposal.slowest <= 100


def test_the_lowest_level_reached_within_a_third_of_the_budget_is_proposed():
    curves = {0: falling(1.1, 0.0, 0.03), 1: falling(1.1, 0.0, 0.02), 2: falling(1.1, 0.0, 0.04)}
    proposal = propose(curves, lower_is_better=True, budget=300)
    assert proposal.value == 0.15
    assert proposal.slowest == 100
    assert count(curves[1], 0.12, True) > 100  # the next lower level takes the slowest longer


def test_one_stuck_seed_gives_a_majority_proposal_naming_it():
    curves = {0: falling(1.0, 0.0, 0.05), 1: [1.0] * 301, 2: falling(1.0, 0.0, 0.06)}
    proposal = propose(curves, lower_is_better=True, budget=300)
    assert proposal.missed == (1,)
    assert proposal.counts[1] is None
    assert "seed(s) 1 do not" in proposal.describe()


def test_no_level_when_most_seeds_do_not_learn():
    curves = {0: falling(1.0, 0.0, 0.05), 1: [1.0] * 301, 2: [1.0] * 301}
    assert propose(curves, lower_is_better=True, budget=300) is None


def test_an_oscillating_metric_is_counted_with_hold():
    wave = [1.0] + [0.3 + 0.25 * math.sin(e) * math.exp(-e / 60) for e in range(1, 301)]
    one = propose({0: wave}, lower_is_better=True, budget=300, hold=1)
    three = propose({0: wave}, lower_is_better=True, budget=300, hold=3)
    assert one is not None and three is not None
    assert three.counts[0] >= one.counts[0] or three.value > one.value


@pytest.mark.parametrize(
    "curves, value", [({0: [0.1, 0.5, 0.9, 1.0]}, 0.9), ({0: [0.2, 0.6, 0.957, 0.99]}, 0.95)]
)
def test_scores_get_the_highest_level_held_within_a_third_of_the_budget(curves, value):
    proposal = propose(curves, lower_is_better=False, budget=6)
    assert proposal is not None and not proposal.lower_is_better
    assert proposal.value == pytest.approx(value)
