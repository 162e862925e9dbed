"""A request's ``format`` → a grammar the runner constrains sampling with (llguidance).

``"json"`` means a JSON object, as llama.cpp's JSON grammar (Ollama's) does; a JSON-schema object
means output valid against it as Ollama reads schemas (``json_grammar``: no keys beyond the named ones
unless ``additionalProperties`` says so, numbers of at most 16 digits), ``pattern``, ``$ref``/``$defs``,
``anyOf``, ``enum``, ``const`` and item counts included. The grammar is compiled and checked here, before
any token is generated: a schema that cannot become a constraint is a 400, never an unconstrained 200
(ollama#8063).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from llguidance import LLMatcher

from pollama.service.json_grammar import ANY_OBJECT, SchemaError, lark_rules

__all__ = ["FormatError", "grammar_for_format", "tool_call_grammar"]


class FormatError(ValueError):
    """A ``format`` that is not ``"json"`` or a usable JSON schema; the message is the client's."""


def _checked(compile_grammar: Callable[[], str], problem: str) -> str:
    """A compiled grammar, checked now: a 400 (``FormatError``) before anything runs, never a runner failure."""
    try:
        grammar = compile_grammar()
    except (SchemaError, ValueError, TypeError) as error:
        raise FormatError(f"{problem}: {error}") from None
    if invalid := LLMatcher.validate_grammar(grammar):
        raise FormatError(f"{problem}: {invalid}")
    return grammar


def grammar_for_format(value: object) -> str | None:
    """The llguidance grammar for ``format``; None when unset."""
    if value is None or value == "":
        return None
    if value == "json":
        schema: dict[str, Any] = ANY_OBJECT
    elif isinstance(value, dict):
        schema = value
    else:
        raise FormatError(f'invalid format: {json.dumps(value)}; expected "json" or a valid JSON Schema object')
    return _checked(lambda: LLMatcher.grammar_from_lark(lark_rules(schema, "start")), "invalid JSON schema in format")


def _tag(text: str, *, special: bool) -> str:
    # A special token is named bare (<tool_call>); as a string the tag would have to be spelled out
    # in ordinary tokens, which the model never does.
    return text if special else json.dumps(text)


def tool_call_grammar(opening: str, closing: str, tools: list[dict[str, Any]], *, special: bool = False) -> str:
    """A grammar that makes the answer one call of one of ``tools``, written as the model writes calls.

    ``opening`` is the model's tool-call tag (``{`` when calls are bare JSON); the call is
    ``{"name": ..., "arguments": ...}`` with the arguments valid against the tool's parameters.
    ``special``: the tags are the model's special tokens (only the runner's vocabulary can tell).
    """
    calls = []
    for tool in tools:
        function = tool.get("function") or {}
        parameters = function.get("parameters") or {"type": "object"}
        calls.append(
            {
                "type": "object",
                "properties": {"name": {"const": function.get("name", "")}, "arguments": parameters},
                "required": ["name", "arguments"],
                "additionalProperties": False,
            }
        )
    schema = calls[0] if len(calls) == 1 else {"anyOf": calls}
    prefix = "" if opening == "{" else f'{_tag(opening, special=special)} "\\n" '
    suffix = f' "\\n" {_tag(closing, special=special)}' if closing else ""
    return _checked(
        lambda: LLMatcher.grammar_from_lark(f"start: {prefix}call{suffix}\n" + lark_rules(schema, "call")),
        "invalid tool parameters",
    )
