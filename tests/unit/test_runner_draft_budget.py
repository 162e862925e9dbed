"""The choice of how many drafts a step gets, from timed steps (pure logic: the timings are made up here)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest

from pollama.runner.draft_budget import EXPLORE_EVERY, EXPLORE_MOST, TRIALS, DraftBudget, draft_counts


@pytest.mark.parametrize(
    ("most", "counts"),
    [(0, [0]), (1, [0, 1]), (3, [0, 1, 2, 3]), (4, [0, 1, 2, 4]), (8, [0, 1, 2, 4, 8]), (32, [0, 1, 2, 4, 8, 16, 32])],
)
def test_the_counts_tried_double_up_to_the_most(most: int, counts: list[int]) -> None:
    assert draft_counts(most) == counts


def run(budget: DraftBudget, steps: int, seconds_per_token: Callable[[int], float]) -> Counter[int]:
    chosen: Counter[int] = Counter()
    for _ in range(steps):
        count = budget.choose()
        chosen[count] += 1
        budget.record(seconds_per_token(count) * 3, 3)
    return chosen


def test_every_count_is_timed_then_the_cheapest_is_kept() -> None:
    budget = DraftBudget(8)
    first = [budget.choose() for _ in range(1)]
    budget.record(0.05, 1)
    assert first == [0]
    costs = {0: 0.020, 1: 0.016, 2: 0.012, 4: 0.014, 8: 0.019}
    chosen = run(budget, 160, costs.__getitem__)
    assert budget.best == 2
    assert all(chosen[count] >= TRIALS for count in costs)  # each was timed
    explored = sum(chosen.values()) - chosen[2]
    # Each count timed after an untimed step, then tries of two steps each, ever more rarely: the rest went
    # to the best.
    assert explored <= len(costs) * (TRIALS + 1) + 2 * (160 // EXPLORE_EVERY)
    later = run(budget, 4000, costs.__getitem__)
    tries = sum(later.values()) - later[2]
    assert 0 < tries <= 2 * (1 + 4000 // (EXPLORE_MOST // 2))  # still tried, but seldom


def test_the_step_that_changes_the_count_is_not_timed() -> None:
    budget = DraftBudget(1)
    assert budget.choose() == 0  # from 1: a change
    budget.record(9.0, 1)  # a draft model catching up on what it missed would cost this much
    assert budget.choose() == 0
    budget.record(0.02, 1)
    assert budget._cost == {0: 0.02}


def test_when_drafts_stop_paying_the_budget_drops_them() -> None:
    budget = DraftBudget(4)
    run(budget, 64, {0: 0.020, 1: 0.015, 2: 0.010, 4: 0.008}.__getitem__)
    assert budget.best == 4
    # The text changes: drafts are wrong now, and each one only widens the batch.
    run(budget, 400, {0: 0.020, 1: 0.024, 2: 0.028, 4: 0.036}.__getitem__)
    assert budget.best == 0
    assert budget.choose() in (0, 1, 2, 4)


def test_a_step_without_tokens_is_not_counted() -> None:
    budget = DraftBudget(2)
    assert budget.choose() == 0
    budget.record(1.0, 0)
    assert budget.choose() == 0  # still untimed: tried again


def test_an_unmeasured_budget_always_drafts_the_most() -> None:
    budget = DraftBudget(8, measured=False)
    assert run(budget, 40, {0: 0.01, 1: 0.02, 2: 0.03, 4: 0.04, 8: 0.05}.__getitem__) == Counter({8: 40})
