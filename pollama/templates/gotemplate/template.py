"""A parsed Go template, ready to execute."""

from __future__ import annotations

from typing import Any

from pollama.templates.gotemplate.execute import Function, LazyFunction, execute
from pollama.templates.gotemplate.functions import BUILTINS, ollama_functions
from pollama.templates.gotemplate.parse import Tree, parse

__all__ = ["Template"]


class Template:
    """``template.New(name).Option("missingkey=zero").Funcs(...).Parse(text)``, as Ollama builds it."""

    def __init__(self, text: str, *, name: str = "", functions: dict[str, Function | LazyFunction] | None = None):
        self.functions = {**BUILTINS, **ollama_functions(), **(functions or {})}
        self.tree: Tree = parse(name, text, self.functions)

    def execute(self, data: Any) -> str:
        return execute(self.tree, data, self.functions)
