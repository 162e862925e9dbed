"""Tokens of a Go template: text between actions, and the words inside ``{{ }}`` (Go's text/template/parse lexer)."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["Item", "Kind", "TemplateSyntaxError", "lex"]

LEFT, RIGHT = "{{", "}}"
_SPACE = " \t\r\n"
KEYWORDS = frozenset({"block", "break", "continue", "define", "else", "end", "if", "range", "nil", "template", "with"})


class TemplateSyntaxError(ValueError):
    """A template that does not parse; the message is Go's (``template: name:line: ...``)."""


class Kind(enum.Enum):
    TEXT = "text"
    LEFT = "{{"
    RIGHT = "}}"
    SPACE = "space"
    COMMENT = "comment"
    IDENTIFIER = "identifier"
    FIELD = "field"
    VARIABLE = "variable"
    KEYWORD = "keyword"
    BOOL = "bool"
    NUMBER = "number"
    STRING = "string"
    RAW_STRING = "raw string"
    CHAR = "char"
    PIPE = "|"
    DECLARE = ":="
    ASSIGN = "="
    LEFT_PAREN = "("
    RIGHT_PAREN = ")"
    DOT = "."
    COMMA = ","
    EOF = "EOF"


@dataclass(frozen=True, slots=True)
class Item:
    kind: Kind
    value: str
    pos: int
    line: int


_NUMBER = re.compile(
    r"[+-]?(?:0[xX][0-9a-fA-F_]*(?:\.[0-9a-fA-F_]*)?(?:[pP][+-]?[0-9_]+)?"
    r"|0[oO][0-7_]+|0[bB][01_]+"
    r"|(?:[0-9][0-9_]*)?\.?[0-9_]*(?:[eE][+-]?[0-9_]+)?)i?"
)
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def lex(name: str, text: str) -> list[Item]:
    """Split ``text`` into items, applying trim markers to the neighbouring text as Go does."""
    items: list[Item] = []
    position = 0
    line = 1

    def error(message: str, at_line: int) -> TemplateSyntaxError:
        return TemplateSyntaxError(f"template: {name}:{at_line}: {message}")

    while position < len(text):
        start = text.find(LEFT, position)
        if start < 0:
            items.append(Item(Kind.TEXT, text[position:], position, line))
            line += text.count("\n", position)
            break
        trim_left = text.startswith("-", start + 2) and start + 3 < len(text) and text[start + 3] in _SPACE
        chunk = text[position:start]
        if trim_left:
            chunk = chunk.rstrip(_SPACE)
        if chunk:
            items.append(Item(Kind.TEXT, chunk, position, line))
        line += text.count("\n", position, start)
        action_line = line
        inner = start + 2 + (2 if trim_left else 0)
        # A comment is the whole action: {{/* ... */}} with optional trim markers.
        if text.startswith("/*", inner):
            end = text.find("*/", inner + 2)
            if end < 0:
                raise error("unclosed comment", action_line)
            close = end + 2
            trim_right = close < len(text) and text[close] in _SPACE and text.startswith("-}}", close + 1)
            if trim_right:
                close += 2
            if not text.startswith(RIGHT, close):
                raise error("comment ends before closing delimiter", action_line)
            items.append(Item(Kind.COMMENT, text[inner : end + 2], start, action_line))
            line += text.count("\n", start, close + 2)
            position = close + 2
            if trim_right:
                position = _skip_space(text, position)
                line += text.count("\n", close + 2, position)
            continue
        items.append(Item(Kind.LEFT, LEFT, start, action_line))
        position, line, trim_right = _lex_action(name, text, inner, line, items)
        if trim_right:
            new_position = _skip_space(text, position)
            line += text.count("\n", position, new_position)
            position = new_position
    items.append(Item(Kind.EOF, "", len(text), line))
    return items


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in _SPACE:
        position += 1
    return position


def _lex_action(name: str, text: str, position: int, line: int, items: list[Item]) -> tuple[int, int, bool]:
    """Lex inside an action up to its ``}}``; return the position after it, the line, and whether it trims right."""
    depth = 0
    start_line = line

    def error(message: str) -> TemplateSyntaxError:
        return TemplateSyntaxError(f"template: {name}:{line}: {message}")

    while True:
        if position >= len(text):
            if line != start_line:
                raise TemplateSyntaxError(f"template: {name}:{line}: unclosed action started at {name}:{start_line}")
            raise TemplateSyntaxError(f"template: {name}:{start_line}: unclosed action")
        char = text[position]
        if char in _SPACE:
            end = _skip_space(text, position)
            if text.startswith("-}}", end) and end > position:
                if depth:
                    raise error("unclosed left paren")
                line += text.count("\n", position, end)
                items.append(Item(Kind.RIGHT, RIGHT, end + 1, line))
                return end + 3, line, True
            items.append(Item(Kind.SPACE, text[position:end], position, line))
            line += text.count("\n", position, end)
            position = end
            continue
        if text.startswith(RIGHT, position):
            if depth:
                raise error("unclosed left paren")
            items.append(Item(Kind.RIGHT, RIGHT, position, line))
            return position + 2, line, False
        if char == "|":
            items.append(Item(Kind.PIPE, char, position, line))
            position += 1
        elif char == ":":
            if not text.startswith(":=", position):
                raise error("expected :=")
            items.append(Item(Kind.DECLARE, ":=", position, line))
            position += 2
        elif char == "=":
            items.append(Item(Kind.ASSIGN, "=", position, line))
            position += 1
        elif char == "(":
            depth += 1
            items.append(Item(Kind.LEFT_PAREN, char, position, line))
            position += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise error("unexpected right paren")
            items.append(Item(Kind.RIGHT_PAREN, char, position, line))
            position += 1
        elif char == ",":
            items.append(Item(Kind.COMMA, char, position, line))
            position += 1
        elif char == '"':
            end = _quoted_end(text, position, "unterminated quoted string", error)
            items.append(Item(Kind.STRING, text[position : end + 1], position, line))
            position = end + 1
        elif char == "`":
            end = text.find("`", position + 1)
            if end < 0:
                raise error("unterminated raw quoted string")
            items.append(Item(Kind.RAW_STRING, text[position : end + 1], position, line))
            line += text.count("\n", position, end)
            position = end + 1
        elif char == "'":
            end = _quoted_end(text, position, "unterminated character constant", error)
            items.append(Item(Kind.CHAR, text[position : end + 1], position, line))
            position = end + 1
        elif char == "$":
            match = _WORD.match(text, position + 1)
            word = "$" + (match.group() if match else "")
            items.append(Item(Kind.VARIABLE, word, position, line))
            position += len(word)
            _check_terminator(text, position, error)
        elif char == ".":
            if position + 1 < len(text) and text[position + 1].isdigit():
                position = _lex_number(text, position, line, items, error)
                continue
            match = _WORD.match(text, position + 1)
            if match:
                items.append(Item(Kind.FIELD, "." + match.group(), position, line))
                position = match.end()
                _check_terminator(text, position, error)
            else:
                items.append(Item(Kind.DOT, ".", position, line))
                position += 1
        elif char.isdigit() or (
            char in "+-" and position + 1 < len(text) and (text[position + 1].isdigit() or text[position + 1] == ".")
        ):
            position = _lex_number(text, position, line, items, error)
        elif char.isalpha() or char == "_":
            match = _WORD.match(text, position)
            assert match is not None
            word = match.group()
            if word in ("true", "false"):
                kind = Kind.BOOL
            elif word in KEYWORDS:
                kind = Kind.KEYWORD
            else:
                kind = Kind.IDENTIFIER
            items.append(Item(kind, word, position, line))
            position = match.end()
            _check_terminator(text, position, error)
        elif char.isascii() and char.isprintable():
            raise error(f'unexpected "{char}" in operand')
        else:
            raise error(f"bad character {_go_rune(char)}")


def _quoted_end(text: str, position: int, unterminated: str, error: Any) -> int:
    """Where the quote opened at ``position`` closes; backslash escapes skip a character, lines may not end."""
    quote, end = text[position], position + 1
    while end < len(text) and text[end] != "\n":
        if text[end] == "\\":
            end += 2
        elif text[end] == quote:
            return end
        else:
            end += 1
    raise error(unterminated)


def _lex_number(text: str, position: int, line: int, items: list[Item], error: object) -> int:
    match = _NUMBER.match(text, position)
    end = match.end() if match else position
    word = text[position:end]
    # A number running into a letter is malformed; Go's message shows it up to that letter.
    if end < len(text) and (text[end].isalnum() or text[end] == "_") or not word.strip("+-"):
        raise error(f'bad number syntax: "{text[position : end + 1]}"')  # type: ignore[operator]
    items.append(Item(Kind.NUMBER, word, position, line))
    return end


def _go_rune(char: str) -> str:
    """Go's ``%#U``: ``U+002D '-'``."""
    return f"U+{ord(char):04X} '{char}'" if char.isprintable() else f"U+{ord(char):04X}"


def _check_terminator(text: str, end: int, error: Any) -> None:
    """After a word, Go's lexer wants a space, an operator or the end of the action."""
    if end >= len(text) or text[end] in _SPACE or text[end] in ".,|:)(" or text.startswith(RIGHT, end):
        return
    raise error(f"bad character {_go_rune(text[end])}")
