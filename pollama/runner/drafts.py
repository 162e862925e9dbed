"""Draft tokens for speculative decoding, looked up in the sequence's own tokens (n-gram "prompt lookup").

When the last ``n`` tokens of a sequence occurred before, the tokens that followed them then are a guess at
what follows now: answers that quote their prompt, edit code or repeat a structure continue that way for
long stretches. The engine decodes the guess together with the next token and keeps the part that the
model, sampling as usual, agrees with; a wrong guess costs a wider batch, never a different answer.
Pure bookkeeping; engine.py does the llama.cpp calls.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["NgramDrafter"]


class NgramDrafter:
    """An index of where each ``n``-gram of a growing token sequence was last followed by another token."""

    def __init__(self, n: int = 3):
        self.n = n
        self.tokens: list[int] = []
        self._next: dict[tuple[int, ...], int] = {}  # an n-gram -> where the token after its latest occurrence is

    def extend(self, tokens: Sequence[int]) -> None:
        for token in tokens:
            if len(self.tokens) >= self.n:
                self._next[tuple(self.tokens[-self.n :])] = len(self.tokens)
            self.tokens.append(token)

    def propose(self, limit: int) -> list[int]:
        """Up to ``limit`` tokens that followed the latest earlier occurrence of the last ``n`` tokens."""
        if limit <= 0 or len(self.tokens) < self.n:
            return []
        start = self._next.get(tuple(self.tokens[-self.n :]))
        if start is None:
            return []
        return self.tokens[start : start + limit]
