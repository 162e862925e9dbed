"""How many drafts a step pays for: measured on this machine and this text, not assumed.

Speculative decoding wins only where checking several tokens costs the model about what one does and the
drafts are cheap and often right. A CPU can break the first (SmolLM2 in F16 checks 5 tokens in twice the
time of one on two cores) and a draft model the second, and then drafts make decoding slower (0.93 x
measured for that pair) where a GPU would gain. So the engine tries each draft count it may use, keeps the
one with the least time per generated token, and now and then tries another, as the text changes what
drafts are worth. The first step after a change is not timed: a draft model that sat out steps catches up
on them then, a cost of switching rather than of the count. Pure bookkeeping: the engine times its steps.
"""

from __future__ import annotations

__all__ = ["DraftBudget", "draft_counts"]

TRIALS = 3  # steps each count is timed before the best is chosen
# Another count is timed again (one step, after one untimed) this many steps after the last such try; the
# interval doubles, up to EXPLORE_MOST, each time the try changes nothing: trying a count that does not pay
# costs steps, and a draft model that sat out catches up, so settled choices are checked ever more rarely.
EXPLORE_EVERY = 16
EXPLORE_MOST = 512
SMOOTHING = 0.25  # weight of the newest timing in a count's running cost


def draft_counts(most: int) -> list[int]:
    """The counts tried: none, then doubling up to ``most``."""
    counts = [0]
    count = 1
    while count < most:
        counts.append(count)
        count *= 2
    return counts + [most] if most > 0 else counts


class DraftBudget:
    def __init__(self, most: int, *, measured: bool = True):
        self.measured = measured  # False: always ``most`` (tests that need drafts whatever they cost)
        self.counts = draft_counts(most)
        self._cost: dict[int, float] = {}  # a count -> seconds per generated token, smoothed
        self._trials = dict.fromkeys(self.counts, 0)
        self._steps = 0
        self._explored = 0
        self._interval = EXPLORE_EVERY
        self._next_try = EXPLORE_EVERY
        self._best_before_try: int | None = None
        self._held = 0  # steps the current count keeps before the choice is made again
        self._settling = False  # the count changed at this step: its time is not the count's own
        self.current = most

    @property
    def best(self) -> int:
        return min(self._cost, key=lambda count: (self._cost[count], count)) if self._cost else self.current

    def choose(self) -> int:
        """The draft count for the next step."""
        self._steps += 1
        if not self.measured:
            return self.current
        if self._held:
            self._held -= 1
            return self.current
        if untried := [count for count in self.counts if self._trials[count] < TRIALS]:
            chosen = untried[0]
        elif self._steps >= self._next_try and len(self.counts) > 1:
            self._best_before_try = self.best
            others = [count for count in self.counts if count != self._best_before_try]
            chosen = others[self._explored % len(others)]
            self._explored += 1
            self._held = 1
            self._next_try = self._steps + self._interval  # set again when the try ends
        else:
            chosen = self.best
            if self._best_before_try is not None:  # a try just ended
                changed = chosen != self._best_before_try
                self._interval = EXPLORE_EVERY if changed else min(2 * self._interval, EXPLORE_MOST)
                self._next_try = self._steps + self._interval
                self._best_before_try = None
        self._settling = chosen != self.current
        self.current = chosen
        return chosen

    def record(self, seconds: float, tokens: int) -> None:
        """A step with the current count took ``seconds`` and gave ``tokens`` tokens."""
        if self._settling or tokens <= 0:
            self._settling = False
            return
        cost = seconds / tokens
        previous = self._cost.get(self.current)
        self._cost[self.current] = cost if previous is None else previous + SMOOTHING * (cost - previous)
        self._trials[self.current] += 1
