"""Tokenizing a long text in bounded pieces, and only as much of it as a caller keeps.

A text of up to ``PIECE_BYTES`` is tokenized whole, exactly as llama.cpp does. A longer one is cut into
pieces at the start of a whitespace run (where byte-level BPE begins a new pre-token anyway, so tokens
barely change at a cut), and each piece is tokenized on its own: the work and memory of one call stay
bounded whatever the text's length. A caller that keeps only a text's first and last tokens (a prompt
longer than the context, an embedding input cut to its limit, a count up to a bound) gets those from
pieces at the two ends, and the middle of the text is never tokenized.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Protocol

__all__ = ["PIECE_BYTES", "Tokenizer", "bounded_tokens", "pieces_backward", "pieces_forward"]

PIECE_BYTES = 1 << 20  # the most text tokenized at once
_SMALLEST_PIECE = 64 << 10  # where only a few tokens are wanted, pieces start this small
_PIECE_BYTES_PER_TOKEN = 16  # bytes of a piece per token still wanted: well above any text's average
_WHITESPACE = b" \t\n\r"
_RUN_START = re.compile(rb"(?<![ \t\n\r])[ \t\n\r]")


class Tokenizer(Protocol):
    """What ``bounded_tokens`` needs of a model (``model.LoadedModel``)."""

    special_prefix: list[int]  # what tokenizing with add_special puts before the text (BOS, BERT's [CLS])
    special_suffix: list[int]  # and after it (BERT's [SEP])

    def tokenize(self, text: str | bytes, *, add_special: bool = True) -> list[int]: ...

    def without_doubled_bos(self, tokens: list[int]) -> list[int]: ...


def bounded_tokens(
    tokenizer: Tokenizer, text: str, *, head: int | None = None, tail: int = 0, add_special: bool = True
) -> list[int]:
    """The text's tokens; with ``head``, from a text of more tokens, only enough to stand in for them.

    Fewer than ``head`` tokens (or no ``head``): all of them. Otherwise a list of at least ``head`` tokens
    that begins with the text's first ``head`` tokens and ends with its last ``tail`` ones, so that
    cutting out its middle gives what cutting the whole list would.
    """
    data = text.encode()
    if len(data) <= PIECE_BYTES:
        return tokenizer.tokenize(data, add_special=add_special)
    prefix, suffix = (tokenizer.special_prefix, tokenizer.special_suffix) if add_special else ([], [])
    first = list(prefix)
    covered = 0
    for start, end in pieces_forward(data, _piece_size(head)):
        first += tokenizer.tokenize(data[start:end], add_special=False)
        covered = end
        if head is not None and len(first) >= head:
            break
    last: list[list[int]] = []
    wanted = tail
    if tail > 0:
        for start, end in pieces_backward(data, covered, _piece_size(tail)):
            last.append(tokenizer.tokenize(data[start:end], add_special=False))
            wanted -= len(last[-1])
            if wanted <= 0:
                break
    return tokenizer.without_doubled_bos(first + [token for piece in reversed(last) for token in piece] + suffix)


def _piece_size(wanted_tokens: int | None) -> int:
    """Pieces big enough that one usually gives the tokens wanted, and never bigger than needs be."""
    if wanted_tokens is None:
        return PIECE_BYTES
    return min(PIECE_BYTES, max(_SMALLEST_PIECE, wanted_tokens * _PIECE_BYTES_PER_TOKEN))


def pieces_forward(data: bytes, size: int) -> Iterator[tuple[int, int]]:
    """``(start, end)`` of consecutive pieces from the start, each at most ``size`` bytes."""
    start = 0
    while start < len(data):
        end = _cut_before(data, start, start + size)
        yield start, end
        start = end


def pieces_backward(data: bytes, floor: int, size: int) -> Iterator[tuple[int, int]]:
    """``(start, end)`` of consecutive pieces from the end back to ``floor``, each at most ``size`` bytes."""
    end = len(data)
    while end > floor:
        lowest = end - size
        start = _cut_after(data, lowest, end) if lowest > floor else floor
        yield start, end
        end = start


def _cut_before(data: bytes, start: int, limit: int) -> int:
    """Where a piece from ``start`` ends: at the last whitespace run starting in (start, limit], else near limit."""
    if limit >= len(data):
        return len(data)
    window = data[start : limit + 1]
    last_space = max(window.rfind(byte) for byte in (b" ", b"\t", b"\n", b"\r"))
    run_start = len(window[: last_space + 1].rstrip(_WHITESPACE)) if last_space >= 0 else 0
    return start + run_start if run_start > 0 else _character_start(data, limit, -1)


def _cut_after(data: bytes, lowest: int, end: int) -> int:
    """Where a piece ending at ``end`` starts: the first whitespace run starting in [lowest, end), else near lowest."""
    match = _RUN_START.search(data, lowest, end)
    return match.start() if match else _character_start(data, lowest, 1)


def _character_start(data: bytes, position: int, step: int) -> int:
    """``position``, moved by ``step`` (1 or -1) out of the middle of a UTF-8 character it may be in."""
    while 0 < position < len(data) and data[position] & 0xC0 == 0x80:
        position += step
    return position
