"""Modelfiles: parse and format them exactly as Ollama's ``parser`` package does.

The parser is Ollama's rune-by-rune state machine, so quoting, whitespace and
error messages (with line numbers) match. Formatting quotes a value whenever
that is needed for it to parse back unchanged.
"""

from __future__ import annotations

import codecs
import enum
import re
from dataclasses import dataclass, field
from typing import Any

from pollama.model.options import DEPRECATED_PARAMETERS, merge_parameter, parse_parameter

__all__ = [
    "Command",
    "Modelfile",
    "ModelfileError",
    "ModelfileFields",
    "format_value",
    "parse_modelfile",
]

COMMANDS = (
    "from",
    "license",
    "template",
    "system",
    "adapter",
    "draft",
    "renderer",
    "parser",
    "parameter",
    "message",
    "requires",
)
MESSAGE_ROLES = ("system", "user", "assistant")
_TEXT_COMMANDS = ("license", "template", "system", "adapter", "renderer", "parser", "requires", "draft")

ERR_INVALID_COMMAND = (
    'command must be one of "from", "license", "template", "system", "adapter", "draft", '
    '"renderer", "parser", "parameter", "message", or "requires"'
)
ERR_INVALID_ROLE = 'message role must be one of "system", "user", or "assistant"'


class ModelfileError(ValueError):
    def __init__(self, message: str, line: int = 0) -> None:
        super().__init__(f"(line {line}): {message}" if line > 0 else message)
        self.line = line


@dataclass(frozen=True)
class Command:
    """One instruction. ``name`` is ``model`` for FROM and the parameter name for PARAMETER."""

    name: str
    args: str

    def __str__(self) -> str:
        if self.name == "model":
            return f"FROM {format_value(self.args)}"
        if self.name in _TEXT_COMMANDS:
            return f"{self.name.upper()} {format_value(self.args)}"
        if self.name == "message":
            role, _, content = self.args.partition(": ")
            return f"MESSAGE {role} {format_value(content)}"
        return f"PARAMETER {self.name} {format_value(self.args)}"


@dataclass
class ModelfileFields:
    """What a Modelfile asks for, typed; paths are left for the caller to resolve."""

    models: list[str] = field(default_factory=list)  # FROM arguments, in order
    adapters: list[str] = field(default_factory=list)
    drafts: list[str] = field(default_factory=list)
    template: str | None = None
    system: str | None = None
    renderer: str | None = None
    parser: str | None = None
    requires: str | None = None
    licenses: list[str] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    messages: list[dict[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class Modelfile:
    commands: list[Command] = field(default_factory=list)

    def __str__(self) -> str:
        return "".join(f"{command}\n" for command in self.commands)

    def fields(self) -> ModelfileFields:
        """Type every instruction; raise ``ModelfileError`` on a bad value."""
        out = ModelfileFields()
        for command in self.commands:
            name, args = command.name, command.args
            if name == "model":
                out.models.append(args)
            elif name == "adapter":
                out.adapters.append(args)
            elif name == "draft":
                out.drafts.append(args)
            elif name in ("template", "system", "renderer", "parser"):
                setattr(out, name, args)
            elif name == "license":
                out.licenses.append(args)
            elif name == "requires":
                out.requires = _parse_requires(args)
            elif name == "message":
                role, _, content = args.partition(": ")
                out.messages.append({"role": role, "content": content})
            elif name in DEPRECATED_PARAMETERS:
                out.warnings.append(f"warning: parameter {name} is deprecated")
            else:
                try:
                    merge_parameter(out.parameters, name, parse_parameter(name, args))
                except ValueError as err:
                    raise ModelfileError(str(err)) from None
        return out


def format_value(value: str) -> str:
    """Quote a value when it would not otherwise parse back to itself."""
    if "\n" in value or "\r" in value or value != value.strip() or value.startswith('"'):
        return f'"""{value}"""' if '"' in value else f'"{value}"'
    return value


_SEMVER = re.compile(
    r"v(0|[1-9][0-9]*)"
    r"(?:\.(0|[1-9][0-9]*)"
    r"(?:\.(0|[1-9][0-9]*)"
    r"(?:-(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*))*)?"
    r"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?"
    r")?)?"
)


def _parse_requires(text: str) -> str:
    version = text if text.startswith("v") else "v" + text
    if not _SEMVER.fullmatch(version):
        raise ModelfileError("requires must be a valid semver (e.g. 0.14.0)")
    return version[1:]


def _decode(data: bytes | str) -> str:
    if isinstance(data, str):
        return data
    for bom, encoding in (
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
    ):
        if data.startswith(bom):
            return data[len(bom) :].decode(encoding, errors="replace")
    return data.decode("utf-8", errors="replace")


class _State(enum.Enum):
    NIL = enum.auto()
    NAME = enum.auto()
    VALUE = enum.auto()
    PARAMETER = enum.auto()
    MESSAGE = enum.auto()
    COMMENT = enum.auto()


class _UnexpectedEOF(Exception):
    pass


def _is_alpha(ch: str) -> bool:
    return "a" <= ch <= "z" or "A" <= ch <= "Z"


def _is_space(ch: str) -> bool:
    return ch in (" ", "\t")


def _is_newline(ch: str) -> bool:
    return ch in ("\r", "\n")


def _unquote(text: str) -> tuple[str, bool]:
    if text.startswith('"""'):
        if len(text) >= 6 and text.endswith('"""'):
            return text[3:-3], True
        return "", False
    if text.startswith('"'):
        if len(text) >= 2 and text.endswith('"'):
            return text[1:-1], True
        return "", False
    return text, True


def _next_state(ch: str, state: _State) -> tuple[_State, str]:
    """One step of the state machine: the next state and the character to keep ("" for none)."""
    if state is _State.NIL:
        if ch == "#":
            return _State.COMMENT, ""
        if _is_space(ch) or _is_newline(ch):
            return _State.NIL, ""
        return _State.NAME, ch
    if state is _State.NAME:
        if _is_alpha(ch):
            return _State.NAME, ch
        if _is_space(ch):
            return _State.VALUE, ""
        raise ModelfileError(ERR_INVALID_COMMAND)
    if state is _State.VALUE:
        if _is_newline(ch) or _is_space(ch):
            return _State.NIL, ch
        return _State.VALUE, ch
    if state is _State.PARAMETER:
        if _is_alpha(ch) or "0" <= ch <= "9" or ch == "_":
            return _State.PARAMETER, ch
        if _is_space(ch):
            return _State.VALUE, ""
        raise _UnexpectedEOF()
    if state is _State.MESSAGE:
        if _is_alpha(ch):
            return _State.MESSAGE, ch
        if _is_space(ch):
            return _State.VALUE, ""
        raise _UnexpectedEOF()
    # COMMENT
    return (_State.NIL, "") if _is_newline(ch) else (_State.COMMENT, "")


def _is_print(ch: str) -> bool:
    # Go's strconv.IsPrint: graphic characters and the ASCII space, nothing else.
    return ch == " " or (ch.isprintable() and not ch.isspace())


def parse_modelfile(data: bytes | str) -> Modelfile:
    """Parse a Modelfile; raise ``ModelfileError`` with Ollama's messages."""
    text = _decode(data)
    commands: list[Command] = []
    state = _State.NIL
    buffer: list[str] = []
    name = ""
    role = ""
    line = 1
    previous = ""

    for ch in text:
        if ch == "\n" and previous != "\r" or ch == "\r":
            line += 1
        previous = ch
        try:
            next_state, kept = _next_state(ch, state)
        except _UnexpectedEOF:
            raise ModelfileError(f"unexpected EOF: {''.join(buffer)}") from None
        except ModelfileError as err:
            raise ModelfileError(str(err), line) from None

        if next_state is not state:
            if state is _State.NAME:
                keyword = "".join(buffer)
                if keyword.lower() not in COMMANDS:
                    raise ModelfileError(ERR_INVALID_COMMAND, line)
                keyword = keyword.lower()
                if keyword == "from":
                    name = "model"
                elif keyword == "parameter":
                    next_state = _State.PARAMETER
                elif keyword == "message":
                    next_state = _State.MESSAGE
                    name = "message"
                else:
                    name = keyword
            elif state is _State.PARAMETER:
                name = "".join(buffer)
            elif state is _State.MESSAGE:
                candidate = "".join(buffer)
                if candidate not in MESSAGE_ROLES:
                    raise ModelfileError(ERR_INVALID_ROLE, line)
                role = candidate
            elif state is _State.VALUE:
                value, complete = _unquote("".join(buffer).strip())
                if not complete or _is_space(ch):
                    # Inside quotes, or a space within the value: keep reading it.
                    buffer.append(ch)
                    continue
                if role:
                    value = f"{role}: {value}"
                    role = ""
                commands.append(Command(name, value))
            buffer.clear()
            state = next_state

        if kept and _is_print(kept):
            buffer.append(kept)

    if state is _State.VALUE:
        value, complete = _unquote("".join(buffer).strip())
        if not complete:
            raise ModelfileError("unexpected EOF")
        if role:
            value = f"{role}: {value}"
        commands.append(Command(name, value))
    elif state not in (_State.NIL, _State.COMMENT):
        raise ModelfileError("unexpected EOF")

    if not any(command.name == "model" for command in commands):
        raise ModelfileError("no FROM line")
    return Modelfile(commands)
