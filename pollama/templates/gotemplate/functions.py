"""The functions a template can call: Go's builtins, and Ollama's ``json``, dates and ``toTypeScriptType``."""

from __future__ import annotations

import datetime as dt
import urllib.parse
from collections.abc import Callable
from typing import Any

from pollama.gocompat import gojson
from pollama.templates.gotemplate.execute import AnyFunction, BoundedFunction, LazyFunction, is_true
from pollama.templates.gotemplate.fmt import sprint, sprintf, sprintln, type_name

__all__ = ["BUILTINS", "ollama_functions"]


def _and(args: list[Callable[[], Any]]) -> Any:
    value = None
    for arg in args:
        value = arg()
        if not is_true(value):
            return value
    return value


def _or(args: list[Callable[[], Any]]) -> Any:
    value = None
    for arg in args:
        value = arg()
        if is_true(value):
            return value
    return value


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, complex):
        return "complex"
    if isinstance(value, str):
        return "string"
    return "other"


def _eq(first: Any, *others: Any) -> bool:
    if not others:
        raise ValueError("missing argument for comparison")
    for other in others:
        if first is None or other is None:
            # Go compares a nil with anything: equal only to another nil.
            if first is None and other is None:
                return True
            continue
        if _kind(first) != _kind(other):
            raise ValueError(f"incompatible types for comparison: {type_name(first)} and {type_name(other)}")
        if _kind(first) == "other":
            raise ValueError("non-comparable type " + type_name(first))
        if first == other:
            return True
    return False


def _lt(a: Any, b: Any) -> bool:
    kind = _kind(a)
    if kind in ("bool", "complex", "other") or _kind(b) in ("bool", "complex", "other"):
        raise ValueError("invalid type for comparison")
    if kind != _kind(b):
        raise ValueError(f"incompatible types for comparison: {type_name(a)} and {type_name(b)}")
    if kind in ("bool", "complex", "other"):
        raise ValueError("invalid type for comparison")
    return a < b


def _len(value: Any) -> int:
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    if isinstance(value, list | tuple | dict):
        return len(value)
    if value is None:
        raise ValueError("len of nil pointer")
    raise ValueError(f"len of type {type_name(value)}")


def _index(item: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(item, list | tuple | str):
            if not isinstance(key, int) or isinstance(key, bool):
                raise ValueError(f"cannot index slice/array with type {type_name(key)}")
            if not 0 <= key < len(item):
                raise ValueError(f"index out of range: {key}")
            item = item[key] if not isinstance(item, str) else item.encode()[key]
        elif isinstance(item, dict):
            if not isinstance(key, str):
                raise ValueError(f"value has type {type_name(key)}; should be string")
            item = item.get(key)
        elif item is None:
            raise ValueError("index of untyped nil")
        else:
            raise ValueError(f"can't index item of type {type_name(item)}")
    return item


def _slice(item: Any, *indexes: int) -> Any:
    if not isinstance(item, list | tuple | str):
        raise ValueError(f"can't slice item of type {type_name(item)}")
    if isinstance(item, str) and len(indexes) > 2:
        raise ValueError("cannot 3-index slice a string")
    if len(indexes) > 3:
        raise ValueError(f"too many slice indexes: {len(indexes)}")
    size = len(item.encode()) if isinstance(item, str) else len(item)
    bounds = [indexes[0] if indexes else 0, indexes[1] if len(indexes) > 1 else size]
    if not 0 <= bounds[0] <= bounds[1] <= size:
        raise ValueError(
            f"invalid slice index: {bounds[0]} > {bounds[1]}"
            if bounds[0] > bounds[1]
            else f"index out of range: {max(bounds)}"
        )
    if isinstance(item, str):  # Go slices strings by bytes
        return item.encode()[bounds[0] : bounds[1]].decode("utf-8", errors="replace")
    return item[bounds[0] : bounds[1]]


def _not(value: Any) -> bool:
    return not is_true(value)


def _escaped_text(args: tuple[Any, ...]) -> str:
    """What Go's escapers escape: a lone string as is, a lone missing value as ``<no value>``, else Sprint."""
    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    if len(args) == 1 and args[0] is None:
        return "<no value>"
    return sprint(*args)


_JS = {"\\": "\\\\", "'": "\\'", '"': '\\"', "<": "\\u003C", ">": "\\u003E", "&": "\\u0026", "=": "\\u003D"}
_HTML = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&#34;", "'": "&#39;", "\x00": "\ufffd"}


def _js(*args: Any) -> str:
    return "".join(
        _JS.get(char, char if char.isprintable() and char not in "\u2028\u2029" else f"\\u{ord(char):04X}")
        for char in _escaped_text(args)
    )


def _html(*args: Any) -> str:
    return "".join(_HTML.get(char, char) for char in _escaped_text(args))


def _urlquery(*args: Any) -> str:
    return urllib.parse.quote_plus(_escaped_text(args), safe="")


def _call(function: Any, *args: Any) -> Any:
    if not callable(function):
        raise ValueError(f"non-function of type {type_name(function)}")
    return function(*args)


BUILTINS: dict[str, AnyFunction] = {
    "and": LazyFunction(_and),
    "or": LazyFunction(_or),
    "not": _not,
    "len": _len,
    "index": _index,
    "slice": _slice,
    "eq": _eq,
    "ne": lambda a, b: not _eq(a, b),
    "lt": _lt,
    "le": lambda a, b: _lt(a, b) or _eq(a, b),
    "gt": lambda a, b: not _lt(a, b) and not _eq(a, b),
    "ge": lambda a, b: not _lt(a, b),
    "print": sprint,
    "printf": BoundedFunction(lambda max_length, *args: sprintf(*args, max_length=max_length)),
    "println": sprintln,
    "html": _html,
    "js": _js,
    "urlquery": _urlquery,
    "call": _call,
}


def _json(value: Any) -> str:
    """``json.Marshal``: plain dicts are Go maps (sorted keys); a value offering ``__go_json__`` encodes itself."""
    if hasattr(value, "__go_json__"):
        return value.__go_json__()
    return gojson.dumps(_as_go_map(value)).decode()


def _as_go_map(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _as_go_map(value[key]) for key in sorted(value)}
    if isinstance(value, list | tuple):
        return [_as_go_map(item) for item in value]
    return value


def ollama_functions(today: Callable[[], dt.date] = dt.date.today) -> dict[str, AnyFunction]:
    """Ollama's additions (template/template.go ``funcs``); ``today`` is injectable for tests."""
    return {
        "json": _json,
        "currentDate": lambda *_format: today().strftime("%Y-%m-%d"),
        "yesterdayDate": lambda *_format: (today() - dt.timedelta(days=1)).strftime("%Y-%m-%d"),
        "toTypeScriptType": lambda value=None: value.to_typescript() if hasattr(value, "to_typescript") else "any",
    }
