"""Turning generated token bytes into text that is safe to stream.

Two things make this more than ``bytes.decode``: a multi-byte UTF-8 character may be split
across tokens (never emit half of it), and a stop sequence may be split across tokens (never
emit any of it, and hold back only what could still turn into one).
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["TextStream", "Emission", "partial_stop_length"]


@dataclass(frozen=True, slots=True)
class Emission:
    text: str
    stopped: bool = False


def partial_stop_length(text: str, stops: Sequence[str]) -> int:
    """The length of the longest suffix of ``text`` that is a proper prefix of a stop sequence."""
    longest = 0
    for stop in stops:
        for length in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:length]):
                longest = length
                break
    return longest


class TextStream:
    """Accumulates token bytes and releases text as soon as it can no longer change."""

    def __init__(self, stops: Sequence[str] = ()) -> None:
        self._stops = [stop for stop in stops if stop]
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._held = ""

    def push(self, piece: bytes) -> Emission:
        """Add a token's bytes; return the text that is now final, and whether a stop matched."""
        self._held += self._decoder.decode(piece)
        matches = [index for stop in self._stops if (index := self._held.find(stop)) >= 0]
        if matches:
            text, self._held = self._held[: min(matches)], ""
            self._decoder.reset()  # bytes after the stop are never shown, not even as U+FFFD
            return Emission(text, stopped=True)
        keep = partial_stop_length(self._held, self._stops)
        ready = self._held[: len(self._held) - keep]
        self._held = self._held[len(ready) :]
        return Emission(ready)

    def flush(self) -> str:
        """Everything still held back, once no more tokens will come."""
        rest = self._held + self._decoder.decode(b"", final=True)
        self._held = ""
        return rest
