"""Splitting streamed model output into thinking and content (Ollama's ``thinking.Parser``).

A state machine over the accumulated text: leading whitespace is skipped while looking for the
opening tag (a partial tag is held back; any other first text means the model is not thinking);
whitespace right after the opening tag is dropped; thinking runs to the closing tag (a partial
closing tag is held back); whitespace after it is dropped, and the rest is content.
"""

from __future__ import annotations

import enum

__all__ = ["ThinkingParser"]


class _State(enum.Enum):
    LOOKING_FOR_OPENING = enum.auto()
    STARTED_EATING_WHITESPACE = enum.auto()
    THINKING = enum.auto()
    DONE_EATING_WHITESPACE = enum.auto()
    DONE = enum.auto()


class ThinkingParser:
    def __init__(self, opening: str, closing: str, *, opened: bool = False):
        """``opened``: the prompt already ends with the opening tag, so output starts inside thinking."""
        self.opening = opening
        self.closing = closing
        self._state = _State.STARTED_EATING_WHITESPACE if opened else _State.LOOKING_FOR_OPENING
        self._held = ""

    def add(self, text: str) -> tuple[str, str]:
        """Feed generated text; return the (thinking, content) that is now certain."""
        self._held += text
        thinking: list[str] = []
        content: list[str] = []
        while True:
            more, think, rest = self._eat()
            thinking.append(think)
            content.append(rest)
            if not more:
                return "".join(thinking), "".join(content)

    def finish(self) -> tuple[str, str]:
        """At the end of generation: whatever is still held back, as thinking or content."""
        held, self._held = self._held, ""
        if self._state is _State.THINKING:
            return held, ""
        if self._state in (_State.LOOKING_FOR_OPENING,):
            return "", held
        return "", held.lstrip() if self._state is _State.DONE_EATING_WHITESPACE else held

    def _eat(self) -> tuple[bool, str, str]:
        held = self._held
        state = self._state
        if state is _State.LOOKING_FOR_OPENING:
            trimmed = held.lstrip()
            if trimmed.startswith(self.opening):
                after = trimmed[len(self.opening) :].lstrip()
                self._held = after
                self._state = _State.THINKING if after else _State.STARTED_EATING_WHITESPACE
                return True, "", ""
            if not trimmed or self.opening.startswith(trimmed):
                return False, "", ""
            self._state = _State.DONE
            self._held = ""
            return False, "", held
        if state is _State.STARTED_EATING_WHITESPACE:
            trimmed = held.lstrip()
            self._held = trimmed
            if not trimmed:
                return False, "", ""
            self._state = _State.THINKING
            return True, "", ""
        if state is _State.THINKING:
            if (index := held.find(self.closing)) >= 0:
                thinking, remaining = held[:index], held[index + len(self.closing) :].lstrip()
                self._held = ""
                self._state = _State.DONE if remaining else _State.DONE_EATING_WHITESPACE
                return False, thinking, remaining
            keep = _overlap(held, self.closing)
            self._held = held[len(held) - keep :] if keep else ""
            return False, held[: len(held) - keep], ""
        if state is _State.DONE_EATING_WHITESPACE:
            trimmed = held.lstrip()
            self._held = ""
            if trimmed:
                self._state = _State.DONE
            return False, "", trimmed
        self._held = ""
        return False, "", held


def _overlap(text: str, delimiter: str) -> int:
    """The longest suffix of ``text`` that is a prefix of ``delimiter``."""
    for length in range(min(len(delimiter), len(text)), 0, -1):
        if text.endswith(delimiter[:length]):
            return length
    return 0
