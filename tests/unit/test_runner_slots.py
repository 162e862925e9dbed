"""Slot bookkeeping: prefix reuse, slot choice, prompt truncation and context-shift amounts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pollama.runner.slots import Slot, choose_slot, common_prefix_length, longest_prefix, shift_amount, truncate_prompt

# --- common_prefix_length -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ([], [], 0),
        ([], [1, 2], 0),
        ([1, 2, 3], [1, 2, 3], 3),
        ([1, 2, 3], [1, 2], 2),
        ([1, 2], [1, 2, 3], 2),
        ([1, 2, 3], [1, 9, 3], 1),
        ([7], [8], 0),
    ],
)
def test_common_prefix_length(a: list[int], b: list[int], expected: int) -> None:
    assert common_prefix_length(a, b) == expected
    assert common_prefix_length(b, a) == expected


@given(st.lists(st.integers(0, 3)), st.lists(st.integers(0, 3)))
def test_common_prefix_length_property(a: list[int], b: list[int]) -> None:
    n = common_prefix_length(a, b)
    assert a[:n] == b[:n]
    assert n == min(len(a), len(b)) or a[n] != b[n]


# --- choose_slot ----------------------------------------------------------------------------------


def test_longest_prefix_wins() -> None:
    slots = [Slot(0, [1, 2], last_used=1), Slot(1, [1, 2, 3, 4], last_used=5), Slot(2, [], last_used=0)]
    assert choose_slot(slots, [1, 2, 3, 9]) == (slots[1], 3)


def test_reuse_is_capped_by_the_prompt() -> None:
    slots = [Slot(0, [1, 2, 3, 4, 5])]
    assert choose_slot(slots, [1, 2, 3]) == (slots[0], 3)


def test_least_recently_used_breaks_ties() -> None:
    slots = [Slot(0, [5], last_used=7), Slot(1, [6], last_used=2), Slot(2, [7], last_used=4)]
    assert choose_slot(slots, [1, 2]) == (slots[1], 0)


def test_lru_tie_break_among_equal_prefixes() -> None:
    slots = [Slot(0, [1, 2, 8], last_used=9), Slot(1, [1, 2, 9], last_used=3)]
    assert choose_slot(slots, [1, 2, 3]) == (slots[1], 2)


def test_longer_prefix_beats_lru() -> None:
    slots = [Slot(0, [1], last_used=0), Slot(1, [1, 2], last_used=100)]
    assert choose_slot(slots, [1, 2, 3]) == (slots[1], 2)


def test_first_slot_on_a_complete_tie() -> None:
    slots = [Slot(0), Slot(1), Slot(2)]
    assert choose_slot(slots, [1]) == (slots[0], 0)


def test_busy_slots_are_skipped() -> None:
    slots = [Slot(0, [1, 2, 3], busy=True), Slot(1, [1], last_used=5), Slot(2, [], last_used=9)]
    assert choose_slot(slots, [1, 2, 3]) == (slots[1], 1)


def test_none_when_all_slots_are_busy() -> None:
    slots = [Slot(0, [1], busy=True), Slot(1, busy=True)]
    assert choose_slot(slots, [1]) is None
    assert choose_slot([], [1]) is None


def test_empty_prompt_still_gets_a_slot() -> None:
    slots = [Slot(0, [1], last_used=3), Slot(1, [2], last_used=1)]
    assert choose_slot(slots, []) == (slots[1], 0)


# --- truncate_prompt ------------------------------------------------------------------------------


def test_prompt_that_fits_is_unchanged() -> None:
    prompt = list(range(100))
    result = truncate_prompt(prompt, 512, 4, True)
    assert result == prompt
    assert result is not prompt  # a copy
    assert truncate_prompt(list(range(511)), 512, 4, True) == list(range(511))


def test_prompt_exactly_the_context_is_truncated() -> None:
    # A prompt filling the whole context leaves no room for an answer.
    result = truncate_prompt(list(range(512)), 512, 4, True)
    assert len(result) < 512


@pytest.mark.parametrize("length", [512, 513, 600, 700, 763, 764, 1000, 1500, 2000, 5000])
@pytest.mark.parametrize(("num_keep", "has_bos"), [(4, True), (4, False), (0, True), (0, False), (30, True)])
def test_truncation_keeps_head_and_tail(length: int, num_keep: int, has_bos: bool) -> None:
    n_ctx = 512
    prompt = list(range(length))
    result = truncate_prompt(prompt, n_ctx, num_keep, has_bos)
    keep = num_keep + int(has_bos)
    assert len(result) < n_ctx
    assert result[:keep] == prompt[:keep]
    tail = len(result) - keep
    assert result[keep:] == prompt[length - tail :]  # a contiguous block is dropped right after the head
    assert tail > 0


def test_truncation_keeps_the_head_and_half_the_rest() -> None:
    n_ctx, num_keep = 512, 4
    # n_keep = 5 with BOS; the most recent (512 - 5) // 2 = 253 tokens follow it.
    assert truncate_prompt(list(range(512)), n_ctx, num_keep, True) == list(range(5)) + list(range(259, 512))
    assert len(truncate_prompt(list(range(764)), n_ctx, num_keep, True)) == 258


@pytest.mark.parametrize("length", [700, 763, 1000])
def test_truncation_always_leaves_about_half_free(length: int) -> None:
    n_ctx, keep = 512, 5
    result = truncate_prompt(list(range(length)), n_ctx, 4, True)
    free = n_ctx - len(result)
    assert free >= (n_ctx - keep) // 2 - 1


def test_num_keep_minus_one_keeps_the_whole_prompt_up_to_half_the_context() -> None:
    prompt = list(range(600))
    result = truncate_prompt(prompt, 512, -1, True)
    assert len(result) < 512
    assert result[:256] == prompt[:256]
    assert result[256:] == prompt[600 - (len(result) - 256) :]


def test_num_keep_larger_than_half_the_context_is_capped() -> None:
    prompt = list(range(1000))
    result = truncate_prompt(prompt, 512, 400, True)
    assert len(result) < 512
    assert result[:256] == prompt[:256]


def test_num_keep_zero_without_bos_keeps_no_head() -> None:
    prompt = list(range(1000))
    result = truncate_prompt(prompt, 512, 0, False)
    assert len(result) < 512
    assert result == prompt[len(prompt) - len(result) :]


@given(
    n_ctx=st.integers(4, 300),
    extra=st.integers(0, 1000),
    num_keep=st.integers(-1, 50),
    has_bos=st.booleans(),
)
def test_truncation_property(n_ctx: int, extra: int, num_keep: int, has_bos: bool) -> None:
    prompt = list(range(n_ctx + extra))
    result = truncate_prompt(prompt, n_ctx, num_keep, has_bos)
    assert 0 < len(result) < n_ctx
    keep = len(prompt) if num_keep < 0 else num_keep + int(has_bos)
    keep = min(keep, n_ctx // 2)
    assert result[:keep] == prompt[:keep]
    assert result[keep:] == prompt[len(prompt) - (len(result) - keep) :]


# --- shift_amount ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n_past", "num_keep", "has_bos", "expected"),
    [
        (512, 4, True, (5, 253)),  # llama.cpp: n_discard = (n_past - n_keep) / 2
        (512, 4, False, (4, 254)),
        (512, 0, False, (0, 256)),
        (512, -1, True, (256, 128)),  # "keep everything" is capped at half
        (512, 1000, True, (256, 128)),
        (2, 4, True, (1, 1)),  # always discards at least one token
        (1, 0, False, (0, 1)),
    ],
)
def test_shift_amount(n_past: int, num_keep: int, has_bos: bool, expected: tuple[int, int]) -> None:
    assert shift_amount(n_past, num_keep, has_bos) == expected


@given(n_past=st.integers(2, 100_000), num_keep=st.integers(-1, 200), has_bos=st.booleans())
def test_shift_amount_property(n_past: int, num_keep: int, has_bos: bool) -> None:
    keep, discard = shift_amount(n_past, num_keep, has_bos)
    assert 0 <= keep <= n_past // 2
    assert discard >= 1
    assert keep + discard <= n_past  # the shift never runs past the cached tokens


def test_longest_prefix_looks_at_busy_slots_too() -> None:
    idle = Slot(0, cached=[1, 2, 9])
    busy = Slot(1, cached=[1, 2, 3, 4, 5], busy=True)
    empty = Slot(2)
    assert longest_prefix([idle, busy, empty], [1, 2, 3, 4, 7]) == (busy, 4)
    assert longest_prefix([idle, empty], [1, 2, 3]) == (idle, 2)
    assert longest_prefix([idle, busy, empty], [8, 1]) is None
