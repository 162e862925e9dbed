"""The choice of how many drafts a step gets (pure logic: step costs and acceptances are made up here)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from pollama.runner.draft_budget import KEPT, TRY_MOST, Acceptance, DraftBudget


def acceptance(rate: float, weight: float = 50.0) -> Acceptance:
    return Acceptance(rate * weight, weight)


def cost_line(base: float, per_draft: float) -> Callable[[int, int], float]:
    return lambda sequences, drafts: base * sequences + per_draft * drafts


def run(
    budget: DraftBudget, steps: int, rate: float, cost: Callable[[int, int], float], sequences: int = 1
) -> Counter[int]:
    """Steps of ``sequences`` sequences whose drafts hold with probability ``rate`` (in expectation)."""
    chosen: Counter[int] = Counter()
    for _ in range(steps):
        counts = budget.choose([(acceptance(rate), budget.most)] * sequences)
        chosen[counts[0]] += 1
        budget.record(sequences, sum(counts), cost(sequences, sum(counts)))
    return chosen


def test_the_cost_without_drafts_and_with_the_most_are_measured_first() -> None:
    budget = DraftBudget(8)
    assert budget.choose([(acceptance(0.9), 8)]) == [0]
    budget.record(1, 0, 0.020)
    assert budget.choose([(acceptance(0.9), 8)]) == [8]


def test_drafts_that_hold_on_cheap_checks_get_the_most() -> None:
    budget = DraftBudget(8)
    chosen = run(budget, 50, 0.95, cost_line(0.020, 0.002))
    assert chosen.most_common(1)[0][0] == 8


def test_drafts_that_rarely_hold_are_not_made() -> None:
    budget = DraftBudget(8)
    chosen = run(budget, 200, 0.2, cost_line(0.020, 0.004))
    assert chosen[0] > 180
    assert 0 < chosen[1] < 10  # a draft now and then, to see whether the text changed


def test_an_expensive_draft_model_is_not_used_even_when_right() -> None:
    # Each draft costs most of a step (a draft model not much cheaper than the model): no count pays.
    budget = DraftBudget(4)
    chosen = run(budget, 300, 0.75, cost_line(0.020, 0.016))
    assert chosen[0] > 280


def test_the_choice_weighs_the_counts_against_each_other() -> None:
    # Drafts right half the time, each adding a tenth of a step: one or two pay, eight do not.
    budget = DraftBudget(8)
    run(budget, 5, 0.5, cost_line(0.020, 0.002))
    (count,) = budget.choose([(acceptance(0.5), 8)])
    assert 1 <= count <= 3


def test_tries_while_drafting_does_not_pay_grow_rare() -> None:
    budget = DraftBudget(4)
    run(budget, 100, 0.1, cost_line(0.020, 0.010))
    later = run(budget, 4000, 0.1, cost_line(0.020, 0.010))
    assert 0 < later[1] <= 4000 // (TRY_MOST // 2) + 1


def test_a_sequence_whose_drafts_start_to_hold_gets_them() -> None:
    budget = DraftBudget(8)
    assert run(budget, 100, 0.1, cost_line(0.020, 0.004))[0] > 90
    assert budget.choose([(acceptance(0.95), 8)]) == [8]


def test_counts_never_exceed_what_each_sequence_can_have() -> None:
    budget = DraftBudget(8)
    run(budget, 10, 0.95, cost_line(0.020, 0.001), sequences=2)
    assert budget.choose([(acceptance(0.95), 8), (acceptance(0.95), 3)]) == [8, 3]
    assert budget.choose([(acceptance(0.95), 0), (acceptance(0.95), 2)]) == [0, 2]


def test_acceptance_counts_each_draft_given_the_ones_before() -> None:
    rate = Acceptance()
    assert rate.rate == 0.5  # nothing known
    rate.add(drafted=4, accepted=4)  # four right, none wrong
    assert rate.rate == 1.0
    rate.add(drafted=4, accepted=1)  # one right, then one wrong: the rest were never tried
    assert rate.right == 4 * KEPT + 1
    assert rate.tried == 4 * KEPT + 2
    rate.add(drafted=0, accepted=0)
    assert rate.tried == 4 * KEPT + 2


def test_a_new_sequence_starts_from_the_last_ones_acceptance() -> None:
    budget = DraftBudget(4)
    assert budget.start().rate == 0.5
    budget.finish(acceptance(0.9))
    assert abs(budget.start().rate - 0.9) < 1e-9


def test_an_unmeasured_budget_always_drafts_the_most() -> None:
    budget = DraftBudget(8, measured=False)
    assert run(budget, 40, 0.0, cost_line(0.02, 0.05)) == Counter({8: 40})
