"""Cutting a JSON value down to what still reproduces a finding, so that a fuzz report shows the cause."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

__all__ = ["Shrinker"]

Path = tuple[Any, ...]


class Shrinker:
    """Drops the object members and array items a finding does not need, outermost first (so junk goes in
    one try), then the characters of its strings; at most ``budget`` tries of ``reproduces``."""

    def __init__(self, reproduces: Callable[[Any], bool], budget: int) -> None:
        self.reproduces = reproduces
        self.budget = budget

    def shrink(self, value: Any) -> Any:
        return self._shorten_strings(self._drop_parts(value))

    def _try(self, candidate: Any) -> bool:
        if self.budget <= 0:
            return False
        self.budget -= 1
        return self.reproduces(candidate)

    def _drop_parts(self, value: Any) -> Any:
        containers: list[Path] = [()]
        while containers:
            path = containers.pop(0)
            keys = list(_at(value, path)) if isinstance(_at(value, path), dict) else None
            index: Any = 0
            while True:
                container = _at(value, path)
                if keys is not None:
                    if not keys:
                        break
                    index = keys.pop(0)
                elif not isinstance(container, list) or index >= len(container):
                    break
                candidate = copy.deepcopy(value)
                del _at(candidate, path)[index]
                if self._try(candidate):
                    value = candidate  # in an array, the next item has moved to this index
                    continue
                if isinstance(container[index], dict | list):
                    containers.append((*path, index))
                if keys is None:
                    index += 1
        return value

    def _shorten_strings(self, value: Any) -> Any:
        for path in list(_string_paths(value, ())):
            text: str = _at(value, path)
            size = len(text) // 2
            while size >= 1:
                start = 0
                while start < len(text):
                    shorter = text[:start] + text[start + size :]
                    candidate = _replaced(value, path, shorter)
                    if self._try(candidate):
                        value, text = candidate, shorter
                    else:
                        start += size
                size //= 2
            if text and self._try(candidate := _replaced(value, path, "")):
                value = candidate
        return value


def _at(value: Any, path: Path) -> Any:
    for key in path:
        value = value[key]
    return value


def _replaced(value: Any, path: Path, new: Any) -> Any:
    if not path:
        return new
    copied = copy.deepcopy(value)
    _at(copied, path[:-1])[path[-1]] = new
    return copied


def _string_paths(value: Any, path: Path) -> list[Path]:
    if isinstance(value, str):
        return [path]
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    return [found for key, item in items for found in _string_paths(item, (*path, key))]
