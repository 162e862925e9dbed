"""Tool calls out of a model's streamed text (spec I.2, and what small models really write).

When tools were offered, a call may come as the template's tag around JSON
(``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``), as a bare JSON object or list at the
start of the answer, or inside a fenced ```json block; several may follow one another; arguments
may be an object or a JSON string holding one (``parameters`` is read like ``arguments``, and
``{"tool_name": {...}}`` works too). A call naming a tool that wasn't offered, or JSON that is not a
call, stays content. Text outside the calls is content. The parser is fed the text in whatever
pieces it streams in and gives the same result however it was split.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["closing_tag", "ParsedCall", "ToolCallParser", "tool_call_tag"]

_FENCE = "```"
_GO_TOOL_CALLS = re.compile(r"\{\{-?\s*(?:if|else\s+if|range)\b[^}]*\.ToolCalls[^}]*\}\}", re.S)
_GO_ACTION = re.compile(r"\{\{.*?\}\}", re.S)
_KNOWN_TAGS = ("<tool_call>", "[TOOL_CALLS]", "<|python_tag|>", "<function_call>", "<tools>")


@dataclass(frozen=True)
class ParsedCall:
    name: str
    arguments: dict[str, Any]


def tool_call_tag(go_template: str | None, chat_template: str = "") -> str:
    """The text that opens a tool call in this model's output; ``{`` when calls are bare JSON.

    Ollama's rule for Go templates: the first text inside the ``.ToolCalls`` block, cut at ``{``.
    A jinja chat template is searched for the tags models are trained with.
    """
    if go_template:
        if match := _GO_TOOL_CALLS.search(go_template):
            for text in _GO_ACTION.split(go_template[match.end() :]):
                if text.strip():
                    return text.split("{", 1)[0].strip() or "{"
        return "{"
    return next((tag for tag in _KNOWN_TAGS if tag in chat_template), "{")


def closing_tag(tag: str) -> str:
    """What closes a call opened by ``tag`` (``</tool_call>`` for ``<tool_call>``); empty if nothing does."""
    return f"</{tag[1:]}" if tag.startswith("<") and tag.endswith(">") and not tag.startswith("<|") else ""


@dataclass
class ToolCallParser:
    tag: str
    tools: Iterable[str]
    _names: frozenset[str] = field(init=False)
    _buffer: str = ""
    _state: str = "text"  # "text", "call" (a JSON value is a call) or "closing" (after one)
    _at_start: bool = True  # only whitespace or calls so far: a bare `{`, `[` or ```json may open a call
    _fenced: bool = False
    _opening: str = ""  # what opened the call being read
    _opened_text: str = ""  # the text consumed by that opening, given back if no call follows
    _closings: list[str] = field(default_factory=list)
    _calls_seen: bool = False

    def __post_init__(self) -> None:
        self._names = frozenset(self.tools)

    def add(self, text: str) -> tuple[str, list[ParsedCall]]:
        """Feed streamed text; the content that is certainly not part of a call, and finished calls."""
        self._buffer += text
        content: list[str] = []
        calls: list[ParsedCall] = []
        step = {"text": self._find_opening, "call": self._read_call, "closing": self._skip_closings}
        while self._buffer and step[self._state](content, calls):
            pass
        return "".join(content), calls

    def finish(self) -> tuple[str, list[ParsedCall]]:
        """The end of the output: what is still held back was not a call."""
        content, calls = self.add("")
        rest: list[str] = []
        if self._state == "call":
            if not self._calls_seen:
                self._give_back(rest)
            # After complete calls an unfinished one is dropped, as Ollama does: it was cut, not text.
        elif self._state == "text" and not (self._calls_seen and self._at_start and not self._buffer.strip()):
            rest.append(self._buffer)  # (whitespace after the last call is not content)
        content += "".join(rest)  # a call's unfinished closing tag is dropped
        self._buffer, self._state = "", "text"
        return content, calls

    # --- looking for where a call opens ----------------------------------------------------------

    def _find_opening(self, content: list[str], _calls: list[ParsedCall]) -> bool:
        buffer = self._buffer
        if self._at_start:
            stripped = buffer.lstrip()
            if not stripped:
                return False  # whitespace only: wait to see what comes
            for opening in (self.tag, "{", "[", _FENCE):
                if opening.startswith(stripped) and opening != stripped:
                    return False  # could still become an opening
                if stripped.startswith(opening):
                    self._opened_text = buffer[: len(buffer) - len(stripped)]
                    return self._open(opening, stripped)
            self._at_start = False
            if self._calls_seen:  # the whitespace between a call and what follows is not content
                buffer = self._buffer = stripped
        if self.tag not in ("{", "["):
            position = buffer.find(self.tag)
            if position >= 0:
                content.append(buffer[:position])
                self._opened_text = ""
                return self._open(self.tag, buffer[position:])
        keep = self._partial_tag_length(buffer)
        content.append(buffer[: len(buffer) - keep])
        self._buffer = buffer[len(buffer) - keep :]
        return False

    def _open(self, opening: str, text: str) -> bool:
        self._opening = opening
        consumed = 0
        if opening == _FENCE:
            newline = text.find("\n")
            if newline < 0:
                return False  # the fence's language line is not complete yet
            if text[len(_FENCE) : newline].strip().lower() not in ("", "json"):
                self._at_start = False  # a code block of something else: content
                return True
            self._fenced = True
            consumed = newline + 1
        elif opening == self.tag and opening not in ("{", "["):
            # A tag that ends by opening the JSON (Mistral's "[TOOL_CALLS] [") leaves that bracket to it.
            consumed = len(opening) - 1 if opening[-1] in "{[" else len(opening)
        self._opened_text += text[:consumed]
        self._buffer, self._state = text[consumed:], "call"
        return True

    def _partial_tag_length(self, buffer: str) -> int:
        """How much of the buffer's end could be the start of the tag (held back until known)."""
        if self.tag in ("{", "["):
            return 0
        for length in range(min(len(self.tag) - 1, len(buffer)), 0, -1):
            if self.tag.startswith(buffer[-length:]):
                return length
        return 0

    # --- reading a call ---------------------------------------------------------------------------

    def _read_call(self, content: list[str], calls: list[ParsedCall]) -> bool:
        stripped = self._buffer.lstrip()
        if not stripped:
            return False
        end = _json_end(stripped) if stripped[0] in "{[" else -1
        if end is None:
            return False  # wait for the rest of the value
        parsed = self._calls_in(stripped[:end]) if end > 0 else None
        if parsed is None:  # not a call after all: what was read as one is content
            self._give_back(content, len(self._buffer) - len(stripped) + end if end > 0 else None)
            return True
        calls.extend(parsed)
        self._calls_seen = True
        self._buffer = stripped[end:]
        closings = (closing_tag(self._opening), _FENCE if self._fenced else "")
        self._closings = [closing for closing in closings if closing]
        self._state, self._fenced = "closing", False
        return True

    def _skip_closings(self, _content: list[str], _calls: list[ParsedCall]) -> bool:
        rest = self._buffer.lstrip()
        while self._closings:
            closing = self._closings[0]
            if not rest or (closing.startswith(rest) and closing != rest):
                return False  # the closing may still be arriving
            if rest.startswith(closing):
                rest = rest[len(closing) :].lstrip()
            self._closings.pop(0)
        self._buffer, self._state, self._at_start = rest, "text", True  # another call may follow directly
        return True

    def _give_back(self, content: list[str], length: int | None = None) -> None:
        """The opening led to no call: its text is content, and calls are no longer expected at the start."""
        text = self._buffer if length is None else self._buffer[:length]
        content.append(self._opened_text + text)
        self._opened_text = ""
        self._buffer = "" if length is None else self._buffer[length:]
        self._state, self._fenced, self._at_start = "text", False, False

    def _calls_in(self, text: str) -> list[ParsedCall] | None:
        try:
            value = json.loads(text)
        except ValueError:
            return None
        items = value if isinstance(value, list) else [value]
        calls = [self._call(item) for item in items]
        if not calls or any(call is None for call in calls):
            return None
        return [call for call in calls if call is not None]

    def _call(self, item: Any) -> ParsedCall | None:
        if not isinstance(item, dict):
            return None
        if isinstance(item.get("function"), dict):  # OpenAI's shape
            item = item["function"]
        name = item.get("name")
        if isinstance(name, str) and name in self._names:
            arguments = item.get("arguments", item.get("parameters", {}))
            if isinstance(arguments, str):
                try:
                    arguments = json.loads(arguments) if arguments.strip() else {}
                except ValueError:
                    return None
            return ParsedCall(name, arguments) if isinstance(arguments, dict) else None
        if len(item) == 1:
            ((key, arguments),) = item.items()
            if key in self._names and isinstance(arguments, dict):
                return ParsedCall(key, arguments)
        return None


def _json_end(text: str) -> int | None:
    """Where the JSON object or array at the start of ``text`` ends; None while it is incomplete."""
    depth = 0
    in_string = escaped = False
    for index, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
            if depth == 0:
                return index + 1
    return None
