"""A parsed Go template, ready to execute."""

from __future__ import annotations

from typing import Any

from pollama.config import Limits
from pollama.templates.gotemplate.execute import AnyFunction, execute
from pollama.templates.gotemplate.functions import BUILTINS, ollama_functions
from pollama.templates.gotemplate.parse import Tree, parse

__all__ = ["Template"]

_DEFAULT_LIMITS = Limits()  # for callers without settings at hand


class Template:
    """``template.New(name).Option("missingkey=zero").Funcs(...).Parse(text)``, as Ollama builds it."""

    def __init__(self, text: str, *, name: str = "", functions: dict[str, AnyFunction] | None = None):
        self.functions = {**BUILTINS, **ollama_functions(), **(functions or {})}
        self.tree: Tree = parse(name, text, self.functions)

    def execute(self, data: Any, limits: Limits = _DEFAULT_LIMITS) -> str:
        """The text ``data`` makes; ``ExecError`` with Go's message, ``ExecLimitError`` past ``limits``."""
        return execute(self.tree, data, self.functions, limits)
