"""Which sequence slot a request gets, and how prompts fit a slot's context.

A slot is one llama.cpp sequence id. Its KV cache outlives the request that filled it, so
the next request sharing a prefix with it (the next turn of a chat) only evaluates the rest.
Everything here is pure bookkeeping; engine.py does the llama.cpp calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["Slot", "common_prefix_length", "choose_slot", "longest_prefix", "truncate_prompt", "shift_amount"]


@dataclass(eq=False)
class Slot:
    seq_id: int
    cached: list[int] = field(default_factory=list)  # tokens in the KV cache, index == position
    last_used: int = 0  # a step counter, for least-recently-used tie-breaking
    busy: bool = False


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    length = min(len(a), len(b))
    for index in range(length):
        if a[index] != b[index]:
            return index
    return length


def choose_slot(slots: Sequence[Slot], prompt: Sequence[int]) -> tuple[Slot, int] | None:
    """The free slot sharing the longest prefix with ``prompt`` (least recently used on ties).

    Returns the slot and the number of its cached tokens that can be reused, or None when all
    slots are busy.
    """
    best: tuple[int, int, Slot] | None = None
    for slot in slots:
        if slot.busy:
            continue
        key = (common_prefix_length(slot.cached, prompt), -slot.last_used, slot)
        if best is None or key[:2] > best[:2]:
            best = key
    if best is None:
        return None
    return best[2], best[0]


def longest_prefix(slots: Sequence[Slot], prompt: Sequence[int]) -> tuple[Slot, int] | None:
    """The slot, busy or free, whose cache shares the longest prefix with ``prompt``, and its length."""
    best: tuple[Slot, int] | None = None
    for slot in slots:
        shared = common_prefix_length(slot.cached, prompt)
        if shared and (best is None or shared > best[1]):
            best = (slot, shared)
    return best


def _kept_head(num_keep: int, prompt_length: int, has_bos: bool, limit: int) -> int:
    keep = prompt_length if num_keep < 0 else num_keep + int(has_bos)
    return max(0, min(keep, prompt_length, limit))


def truncate_prompt(prompt: Sequence[int], n_ctx: int, num_keep: int, has_bos: bool) -> list[int]:
    """Cut a prompt that does not fit the context, as Ollama does with context shift on.

    The first ``num_keep`` tokens (after BOS) stay, then the most recent tokens, so that about half
    of the context is left free for the answer.
    """
    if len(prompt) < n_ctx:
        return list(prompt)
    keep = _kept_head(num_keep, len(prompt), has_bos, n_ctx // 2)
    tail = max(1, (n_ctx - keep) // 2)
    return list(prompt[:keep]) + list(prompt[len(prompt) - tail :])


def shift_amount(n_past: int, num_keep: int, has_bos: bool) -> tuple[int, int]:
    """When a generating sequence fills its context: (tokens kept at the start, tokens discarded after them)."""
    keep = _kept_head(num_keep, n_past, has_bos, n_past // 2)
    return keep, max(1, (n_past - keep) // 2)
