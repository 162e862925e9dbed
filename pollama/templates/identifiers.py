"""The identifiers a Go template refers to, as Ollama's ``Template.Vars`` reports them.

Ollama decides capabilities from these: a template that mentions ``.Tools``
supports tools, one that mentions ``.Suffix`` supports fill-in-the-middle.
"""

from __future__ import annotations

import re

__all__ = ["template_identifiers"]

_ACTION = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_COMMENT = re.compile(r"^-?\s*/\*.*\*/\s*-?$", re.DOTALL)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|`[^`]*`|\'(?:[^\'\\]|\\.)*\'')
# A field is ``.Name`` at the start of an operand, or ``.Name`` chained after another operand.
_FIELD = re.compile(
    r"(?:^|(?<=[\s(|$.)]))\.([A-Za-z_][A-Za-z0-9_]*)"
    r"|(?<=[A-Za-z0-9_)\]])\.([A-Za-z_][A-Za-z0-9_]*)"
)
_VARIABLE = re.compile(r"\$[A-Za-z0-9_]*")


def template_identifiers(text: str) -> set[str]:
    """Lower-cased field and variable names used in the template's actions."""
    found: set[str] = set()
    for action in _ACTION.findall(text):
        if _COMMENT.match(action):
            continue
        code = _STRING.sub('""', action)
        for match in _FIELD.finditer(code):
            found.add((match.group(1) or match.group(2)).lower())
        found.update(variable.lower() for variable in _VARIABLE.findall(code))
    return found
