"""Prompt caches kept beyond the slots: a slot's cache saved to host memory when another prompt takes it.

A runner has ``num_parallel`` slots, each holding the cache of its last prompt. With more conversations
than slots, a slot's cache is overwritten while its conversation is still going; saving it first (the
sequence's state, as llama.cpp serializes it) lets that conversation's next turn restore it instead of
evaluating its history again. Pure bookkeeping, least recently used first out within a byte budget;
engine.py does the llama.cpp calls.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from pollama.runner.slots import common_prefix_length

__all__ = ["SavedPrefix", "SavedPrefixes"]


@dataclass(frozen=True)
class SavedPrefix:
    tokens: tuple[int, ...]  # what the saved cache holds, index == position
    state: bytes  # llama_state_seq_get_data of the sequence


class SavedPrefixes:
    def __init__(self, capacity: int):
        self.capacity = capacity  # bytes of saved state, at most
        self._entries: OrderedDict[tuple[int, ...], SavedPrefix] = OrderedDict()  # oldest use first
        self._size = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size(self) -> int:
        return self._size

    def holds(self, tokens: Sequence[int]) -> bool:
        """Whether ``tokens``, or a longer cache that starts with them, is saved already."""
        return any(common_prefix_length(saved, tokens) == len(tokens) for saved in self._entries)

    def add(self, tokens: Sequence[int], state: bytes) -> None:
        if len(state) > self.capacity:
            return
        key = tuple(tokens)
        # A saved cache that this one extends is no longer needed.
        for saved in [saved for saved in self._entries if common_prefix_length(saved, key) == len(saved)]:
            self._size -= len(self._entries.pop(saved).state)
        self._entries[key] = SavedPrefix(key, state)
        self._size += len(state)
        while self._size > self.capacity:
            _, oldest = self._entries.popitem(last=False)
            self._size -= len(oldest.state)

    def best(self, prompt: Sequence[int]) -> tuple[SavedPrefix, int] | None:
        """The saved cache sharing the longest prefix with ``prompt``, and that length; it becomes the newest."""
        found: tuple[SavedPrefix, int] | None = None
        for saved in self._entries.values():
            shared = common_prefix_length(saved.tokens, prompt)
            if shared and (found is None or shared > found[1]):
                found = (saved, shared)
        if found is not None:
            self._entries.move_to_end(found[0].tokens)
        return found
