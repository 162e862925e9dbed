"""Tokenizing long texts in bounded pieces (pieces.py), with a stand-in tokenizer that records its work.

The stand-in splits text the way byte-level BPE pre-tokenizes it (a word takes the whitespace before it),
so a text cut at the start of a whitespace run tokenizes to exactly the tokens of the whole.
"""

from __future__ import annotations

import random
import re

import pytest

from pollama.runner.pieces import PIECE_BYTES, bounded_tokens, pieces_backward, pieces_forward
from pollama.runner.slots import truncate_prompt

BOS, EOS = 1, 2
WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "naïve", "東京"]
SEPARATORS = [" ", " ", " ", "  ", "\n", "\n\n", " \t"]
_PRE_TOKEN = re.compile(rb"\s*\S+|\s+")


class WordTokenizer:
    special_prefix = [BOS]
    special_suffix = [EOS]

    def __init__(self) -> None:
        self.ids: dict[bytes, int] = {}
        self.calls: list[int] = []  # bytes tokenized per call

    def tokenize(self, text: str | bytes, *, add_special: bool = True) -> list[int]:
        data = text.encode() if isinstance(text, str) else text
        data.decode()  # a piece cut inside a character would fail here
        self.calls.append(len(data))
        tokens = [self.ids.setdefault(word, len(self.ids) + 10) for word in _PRE_TOKEN.findall(data)]
        return [BOS, *tokens, EOS] if add_special else tokens

    def without_doubled_bos(self, tokens: list[int]) -> list[int]:
        return tokens


def words(count: int, seed: int = 1) -> str:
    rng = random.Random(seed)
    return "".join(rng.choice(WORDS) + rng.choice(SEPARATORS) for _ in range(count))


@pytest.fixture
def tokenizer() -> WordTokenizer:
    return WordTokenizer()


LONG = words(800_000)  # about 5 MiB


def test_a_text_up_to_a_piece_is_tokenized_whole(tokenizer: WordTokenizer) -> None:
    text = words(1000)
    assert bounded_tokens(tokenizer, text) == tokenizer.tokenize(text)
    assert tokenizer.calls == [len(text.encode())] * 2
    assert bounded_tokens(tokenizer, text, head=3, tail=2) == tokenizer.tokenize(text)


def test_a_long_text_is_tokenized_in_bounded_pieces_to_the_same_tokens(tokenizer: WordTokenizer) -> None:
    assert len(LONG.encode()) > 4 * PIECE_BYTES
    tokens = bounded_tokens(tokenizer, LONG, add_special=True)
    pieces = tokenizer.calls
    assert len(pieces) >= 5 and max(pieces) <= PIECE_BYTES
    assert tokens == tokenizer.tokenize(LONG)  # specials once, around the whole
    assert bounded_tokens(tokenizer, LONG, add_special=False) == tokenizer.tokenize(LONG, add_special=False)


@pytest.mark.parametrize("n_ctx", [256, 4096, 40_000])
def test_a_long_prompt_stands_in_for_its_tokens_as_truncate_prompt_cuts_them(
    tokenizer: WordTokenizer, n_ctx: int
) -> None:
    whole = tokenizer.tokenize(LONG)
    tokenizer.calls.clear()
    stand_in = bounded_tokens(tokenizer, LONG, head=n_ctx, tail=n_ctx)
    assert n_ctx <= len(stand_in) < len(whole)
    assert stand_in[:n_ctx] == whole[:n_ctx] and stand_in[-n_ctx:] == whole[-n_ctx:]
    for num_keep in (-1, 0, 4, 100):
        assert truncate_prompt(stand_in, n_ctx, num_keep, True) == truncate_prompt(whole, n_ctx, num_keep, True)
    # Only the two ends were tokenized, in pieces sized to what was still wanted.
    assert sum(tokenizer.calls) < len(LONG.encode()) // 2
    assert max(tokenizer.calls) <= PIECE_BYTES


def test_the_work_for_a_head_and_tail_does_not_grow_with_the_text(tokenizer: WordTokenizer) -> None:
    bounded_tokens(tokenizer, LONG, head=512, tail=512)
    work = sum(tokenizer.calls)
    tokenizer.calls.clear()
    bounded_tokens(tokenizer, LONG * 8, head=512, tail=512)
    assert sum(tokenizer.calls) == work


def test_a_head_only_keeps_the_first_tokens_and_the_suffix(tokenizer: WordTokenizer) -> None:
    whole = tokenizer.tokenize(LONG)
    tokenizer.calls.clear()
    counted = bounded_tokens(tokenizer, LONG, head=1000)
    assert len(counted) > 1000
    assert counted[:1000] == whole[:1000] and counted[-1] == EOS
    assert len(tokenizer.calls) == 1  # the end of the text is never tokenized


def test_ends_that_meet_give_every_token(tokenizer: WordTokenizer) -> None:
    text = words(200_000, seed=3)  # a little over a piece
    assert PIECE_BYTES < len(text.encode()) < 2 * PIECE_BYTES
    whole = tokenizer.tokenize(text)
    assert bounded_tokens(tokenizer, text, head=10, tail=len(whole)) == whole
    assert bounded_tokens(tokenizer, text, head=len(whole) + 1, tail=5) == whole


def run_starts_only(data: bytes, cuts: list[int]) -> bool:
    return all(data[cut : cut + 1].isspace() and not data[cut - 1 : cut].isspace() for cut in cuts)


def test_forward_pieces_cover_the_text_and_cut_before_whitespace_runs() -> None:
    data = LONG.encode()
    pieces = list(pieces_forward(data, 100_000))
    assert pieces[0][0] == 0 and pieces[-1][1] == len(data)
    assert all(end == start for (_, end), (start, _) in zip(pieces, pieces[1:], strict=False))
    assert all(0 < end - start <= 100_000 for start, end in pieces)
    assert run_starts_only(data, [end for _, end in pieces[:-1]])


def test_backward_pieces_cover_down_to_the_floor_and_cut_before_whitespace_runs() -> None:
    data = LONG.encode()
    floor = 1_234_567
    pieces = list(pieces_backward(data, floor, 100_000))
    assert pieces[0][1] == len(data) and pieces[-1][0] == floor
    assert all(start == end for (start, _), (_, end) in zip(pieces, pieces[1:], strict=False))
    assert all(0 < end - start <= 100_000 for start, end in pieces)
    assert run_starts_only(data, [start for start, _ in pieces[:-1]])


@pytest.mark.parametrize("backward", [False, True])
def test_text_without_whitespace_is_cut_between_characters(backward: bool) -> None:
    data = ("東京🙂é" * 50_000).encode()
    pieces = list(pieces_backward(data, 0, 4097) if backward else pieces_forward(data, 4097))
    ordered = sorted(pieces)
    assert ordered[0][0] == 0 and ordered[-1][1] == len(data)
    assert all(end == start for (_, end), (start, _) in zip(ordered, ordered[1:], strict=False))
    assert all(0 < end - start <= 4097 for start, end in pieces)
    for start, end in pieces:
        data[start:end].decode()


def test_a_long_whitespace_run_is_cut_inside_it() -> None:
    data = b"a" + b" " * 300_000 + b"b"
    pieces = list(pieces_forward(data, 65_536))
    assert all(0 < end - start <= 65_536 for start, end in pieces) and pieces[-1][1] == len(data)
