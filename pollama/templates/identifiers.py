"""The identifiers a Go template refers to, as Ollama's ``Template.Vars`` reports them.

Ollama decides capabilities from these: a template that mentions ``.Tools``
supports tools, one that mentions ``.Suffix`` supports fill-in-the-middle.
"""

from __future__ import annotations

import re

__all__ = ["template_identifiers"]

# A field is ``.Name`` at the start of an operand, or ``.Name`` chained after another operand.
_FIELD = re.compile(
    r"(?:^|(?<=[\s(|$.]))\.([A-Za-z_][A-Za-z0-9_]*)"
    r"|(?<=[A-Za-z0-9_)\]])\.([A-Za-z_][A-Za-z0-9_]*)"
)
_VARIABLE = re.compile(r"\$[A-Za-z0-9_]*")
_QUOTES = ('"', "'", "`")


def _actions(text: str) -> list[str]:
    """The code of each ``{{ }}`` action, with string and character literals blanked out.

    Like Go's lexer, a ``}}`` inside a literal does not close the action.
    """
    actions = []
    position = 0
    while (start := text.find("{{", position)) >= 0:
        index = start + 2
        opening = text[index:].lstrip("- \t\r\n")
        if opening.startswith("/*"):  # a comment runs to "*/", quotes and all
            end = text.find("*/", len(text) - len(opening))
            position = text.find("}}", end) + 2 if end >= 0 else len(text)
            continue
        code: list[str] = []
        while index < len(text) and not text.startswith("}}", index):
            char = text[index]
            if char in _QUOTES:
                index = _skip_literal(text, index)
                code.append('""')
                continue
            code.append(char)
            index += 1
        actions.append("".join(code))
        position = index + 2
    return actions


def _skip_literal(text: str, start: int) -> int:
    quote = text[start]
    index = start + 1
    while index < len(text) and text[index] != quote:
        index += 2 if quote != "`" and text[index] == "\\" else 1
    return index + 1


def template_identifiers(text: str) -> set[str]:
    """Lower-cased field and variable names used in the template's actions."""
    found: set[str] = set()
    for code in _actions(text):
        for match in _FIELD.finditer(code):
            found.add((match.group(1) or match.group(2)).lower())
        found.update(variable.lower() for variable in _VARIABLE.findall(code))
    return found
