"""How many drafts a step pays for: from what steps cost on this machine and how often this text's drafts hold.

Speculative decoding wins only where checking several tokens costs the model about what one does and the
drafts are cheap and often right. A CPU can break the first (SmolLM2 in F16 checks 5 tokens in twice the
time of one on two cores) and a draft model the second, and then drafts make decoding slower where a GPU
would gain. So the budget keeps two measures apart:

- what a step costs, by the number of sequences and of drafts in it, timed (between timed numbers of
  drafts, interpolated): a property of the machine and the models that changes slowly. Not a line: a
  draft model's first draft costs a decode of its own, the next ones less;
- how often a sequence's drafts are right (each draft, given the ones before it were): a property of the
  text, kept per sequence, that changes from one answer to the next (a list to copy, then a story).

Each step gets the count with the most expected tokens per second. While drafting does not pay, a single
draft is tried now and then (ever more rarely while that changes nothing) to see whether the text has
changed. Pure bookkeeping: the engine times its steps and counts what it accepted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["Acceptance", "DraftBudget"]

SMOOTHING = 0.25  # weight of the newest timing in the running cost of a step of its shape
KEPT = 0.8  # weight of a sequence's earlier drafts in its acceptance, a step at a time
PRIOR = 2.0  # a new sequence starts from the last sequence's acceptance, weighted as this many drafts
# While drafting does not pay, a one-draft try comes this many steps after the last one; the interval
# doubles, up to TRY_MOST, each time the try changes nothing.
TRY_EVERY = 16
TRY_MOST = 512


@dataclass
class Acceptance:
    """How often a sequence's drafts are right, each given the ones before it were."""

    right: float = 0.0
    tried: float = 0.0

    @property
    def rate(self) -> float:
        return self.right / self.tried if self.tried else 0.5

    def add(self, drafted: int, accepted: int) -> None:
        """A step decoded ``drafted`` drafts and the model agreed with the first ``accepted`` of them."""
        if drafted <= 0:
            return
        self.right = KEPT * self.right + accepted
        self.tried = KEPT * self.tried + accepted + (1 if accepted < drafted else 0)


@dataclass
class DraftBudget:
    most: int
    measured: bool = True  # False: always ``most`` (tests that need drafts whatever they cost)
    _costs: dict[tuple[int, int], float] = field(default_factory=dict, init=False)  # (sequences, drafts) -> s
    _last_rate: float = field(default=0.5, init=False)
    _steps: int = field(default=0, init=False)
    _interval: int = field(default=TRY_EVERY, init=False)
    _next_try: int = field(default=TRY_EVERY, init=False)

    def start(self) -> Acceptance:
        """The acceptance of a new sequence: the last one's, as if seen on ``PRIOR`` drafts."""
        return Acceptance(self._last_rate * PRIOR, PRIOR)

    def choose(self, sequences: Sequence[tuple[Acceptance, int]]) -> list[int]:
        """The drafts each sequence gets this step, given its acceptance and the drafts it could have."""
        self._steps += 1
        counts = self._choose([acceptance.rate for acceptance, _ in sequences], [most for _, most in sequences])
        return [min(counts, available) for _, available in sequences]

    def _choose(self, rates: list[float], available: list[int]) -> int:
        if not self.measured:
            return self.most
        shape = len(rates)
        measured = sorted(drafts for size, drafts in self._costs if size == shape)
        if 0 not in measured:
            return 0  # what a step costs without drafts comes first
        if len(measured) < 2:
            return self.most
        costs = {drafts: self._costs[(shape, drafts)] for drafts in measured}
        best, best_rate = 0, 0.0
        for count in range(self.most + 1):
            drafts = sum(min(count, most) for most in available)
            tokens = sum(_expected(rate, min(count, most)) for rate, most in zip(rates, available, strict=True))
            speed = tokens / max(_interpolated(costs, drafts), 1e-9)
            if speed > best_rate:
                best, best_rate = count, speed
        if best > 0:
            self._interval = TRY_EVERY
            self._next_try = self._steps + TRY_EVERY
        elif self._steps >= self._next_try and any(available):
            # Drafting does not pay now: one draft, so that the sequences' acceptance stays current.
            self._next_try = self._steps + self._interval
            self._interval = min(2 * self._interval, TRY_MOST)
            return 1
        return best

    def record(self, sequences: int, drafts: int, seconds: float) -> None:
        """A step of ``sequences`` generating sequences and ``drafts`` drafts in all took ``seconds``."""
        key = (sequences, drafts)
        previous = self._costs.get(key)
        self._costs[key] = seconds if previous is None else previous + SMOOTHING * (seconds - previous)

    def finish(self, acceptance: Acceptance) -> None:
        """A sequence ended: the next one starts from its acceptance."""
        if acceptance.tried:
            self._last_rate = acceptance.rate


def _interpolated(costs: dict[int, float], drafts: int) -> float:
    """The cost of a step with ``drafts`` drafts, from the timed ones (sorted keys, 0 among them) around it."""
    if drafts in costs:
        return costs[drafts]
    below = max(known for known in costs if known < drafts)
    above = [known for known in costs if known > drafts]
    if above:
        high = min(above)
        return costs[below] + (costs[high] - costs[below]) * (drafts - below) / (high - below)
    lower = max((known for known in costs if known < below), default=None)
    if lower is None:
        return costs[below]
    slope = max((costs[below] - costs[lower]) / (below - lower), 0.0)
    return costs[below] + slope * (drafts - below)


def _expected(rate: float, drafts: int) -> float:
    """Tokens a step gives a sequence with ``drafts`` drafts each right with probability ``rate``."""
    return sum(rate**index for index in range(drafts + 1))
