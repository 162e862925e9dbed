"""JSON schemas → llguidance Lark grammars with Ollama's semantics, which are llama.cpp's json-schema-to-grammar's.

Ollama constrains ``format`` with llama.cpp's converter, whose reading of a schema differs from the JSON Schema
specification (and from llguidance's own converter) in ways clients rely on:

- an object schema with ``properties`` allows no other keys unless ``additionalProperties`` is ``true`` or a
  schema (absent means none: pydantic's ``model_json_schema()`` never says it);
- numbers have at most 16 digits before the point, 16 after it and 16 in the exponent, so a model cannot
  write digits until ``num_predict`` runs out;
- required properties come first, in the schema's order, then any of the optional ones, in order.

Structure (objects, arrays, unions, ``$ref``, ``allOf``, literals, numbers) is compiled here. Strings with a
``pattern``, a ``format`` or a length, and numbers with bounds, are handed to llguidance's own JSON schema
support (``%json``), which checks them more exactly than llama.cpp does (it ignores number bounds and checks
patterns without escapes); an integer range is cut to ±(2**53 - 1) first, 16 digits. Separators are fixed (``", "``,
``": "``) and there is no free whitespace: models write JSON that way, and a small model given free
whitespace fills it.
"""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["ANY_OBJECT", "SchemaError", "lark_rules"]

ANY_OBJECT: dict[str, Any] = {"type": "object"}

# llama.cpp's primitives: integral part [0] | [1-9][0-9]{0,15}, decimal part [0-9]{1,16}.
_INTEGRAL = "(0|[1-9][0-9]{0,15})"
# An integer range is checked by llguidance in doubles: its bounds are cut to the integers a double holds
# exactly, which keeps them within 16 digits too.
_LARGEST = 2**53 - 1
_PRIMITIVES = {
    "STRING": r'/"(\\(["\\\/bfnrt]|u[a-fA-F0-9]{4})|[^"\\\x00-\x1F\x7F])*"/',
    "NUMBER": rf"/-?{_INTEGRAL}(\.[0-9]{{1,16}})?([eE][-+]?{_INTEGRAL})?/",
    "INTEGER": rf"/-?{_INTEGRAL}/",
}
_ANY = {
    "value": 'any_object | any_array | STRING | NUMBER | "true" | "false" | "null"',
    "any_object": '"{" (STRING ": " value (", " STRING ": " value)*)? "}"',
    "any_array": '"[" (value (", " value)*)? "]"',
}
# The string formats llguidance checks; llama.cpp leaves others unchecked, and so does this.
_FORMATS = {"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"}
_STRING_KEYS = ("pattern", "minLength", "maxLength")
_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")


class SchemaError(ValueError):
    """A schema that cannot become a grammar; the message says which part."""


def lark_rules(schema: object, entry: str) -> str:
    """Lark rules in which rule ``entry`` matches exactly the JSON texts ``schema`` allows (Ollama's reading).

    ``entry`` must be a lowercase rule name not starting with ``r`` followed by digits, ``value`` or ``any_``.
    """
    compiler = _Compiler(schema)
    root = compiler.visit(schema)
    lines = [f"{entry}: {root}", *(f"{name}: {body}" for name, body in compiler.rules.items())]
    return "\n".join(lines) + "\n"


def _literal(value: Any) -> str:
    """A Lark string literal matching ``value`` written as JSON, as models write it."""
    return json.dumps(json.dumps(value, ensure_ascii=False, separators=(", ", ": ")), ensure_ascii=False)


class _Compiler:
    def __init__(self, root: object) -> None:
        self.root = root
        self.rules: dict[str, str] = {}
        self._refs: dict[str, str] = {}
        self._terminals: set[str] = set()

    def _rule(self, body: str) -> str:
        name = f"r{len(self.rules)}"
        self.rules[name] = body
        return name

    def _primitive(self, name: str) -> str:
        if name not in self._terminals:
            self._terminals.add(name)
            self.rules[name] = _PRIMITIVES[name]
        return name

    def _any(self) -> str:
        if "value" not in self.rules:
            for terminal in ("STRING", "NUMBER"):
                self._primitive(terminal)
            self.rules.update(_ANY)
        return "value"

    def visit(self, schema: object) -> str:
        """A Lark expression matching what ``schema`` allows."""
        if schema is True:
            return self._any()
        if schema is False:
            raise SchemaError("unsatisfiable: the schema false allows no value")
        if not isinstance(schema, dict):
            raise SchemaError(f"a schema must be an object or a boolean, not {json.dumps(schema)}")
        kind = schema.get("type")
        if "$ref" in schema:
            return self._ref(schema["$ref"])
        if "anyOf" in schema or "oneOf" in schema:
            return self._union(schema.get("oneOf") or schema["anyOf"])
        if isinstance(kind, list):
            if not kind:
                raise SchemaError("unsatisfiable: an empty list of types")
            return self._union([{**schema, "type": one} for one in kind])
        if kind is not None and not isinstance(kind, str):
            raise SchemaError(f"type must be a string or a list of strings, not {json.dumps(kind)}")
        if "const" in schema:
            return _literal(schema["const"])
        if "enum" in schema:
            values = schema["enum"]
            if not isinstance(values, list) or not values:
                raise SchemaError("unsatisfiable: enum must be a non-empty list")
            return "(" + " | ".join(_literal(value) for value in values) + ")"
        if kind in (None, "object") and (
            "properties" in schema or schema.get("additionalProperties", True) is not True
        ):
            return self._object(schema.get("properties", {}), schema.get("required", []), schema)
        if kind in (None, "object", "string") and "allOf" in schema:
            return self._all_of(schema["allOf"])
        if kind in (None, "array") and ("items" in schema or "prefixItems" in schema):
            return self._array(schema)
        if kind in (None, "string") and (
            any(key in schema for key in _STRING_KEYS) or schema.get("format") in _FORMATS
        ):
            return self._delegated({"type": "string", **_picked(schema, (*_STRING_KEYS, "format"))})
        if kind in (None, "integer") and any(key in schema for key in _BOUNDS):
            return self._integer_range(schema)
        if kind == "number" and any(key in schema for key in _BOUNDS):
            return self._delegated({"type": "number", **_picked(schema, _BOUNDS)})
        if kind == "object" or not schema:
            self._any()
            return "any_object"
        if kind is None:
            return self._any()
        if kind == "array":
            return self._array(schema)
        primitives = {"string": "STRING", "number": "NUMBER", "integer": "INTEGER"}
        if kind in primitives:
            return self._primitive(primitives[kind])
        if kind in ("boolean", "null"):
            return '("true" | "false")' if kind == "boolean" else '"null"'
        raise SchemaError(f"unknown type {json.dumps(kind)}")

    def _ref(self, ref: object) -> str:
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise SchemaError(f"unsupported $ref {json.dumps(ref)}: only references inside the schema (#/...)")
        if ref in self._refs:
            return self._refs[ref]
        target = self._target(ref)
        name = self._rule("")  # named before its body, so that a schema may refer to itself
        self._refs[ref] = name
        self.rules[name] = self.visit(target)
        return name

    def _target(self, ref: str) -> object:
        target: object = self.root
        for part in filter(None, ref[1:].split("/")):
            key = part.replace("~1", "/").replace("~0", "~")
            if isinstance(target, dict) and key in target:
                target = target[key]
            elif isinstance(target, list) and key.isdigit() and int(key) < len(target):
                target = target[int(key)]
            else:
                raise SchemaError(f"unresolvable $ref {ref}")
        return target

    def _union(self, branches: object) -> str:
        if not isinstance(branches, list) or not branches:
            raise SchemaError("anyOf and oneOf must be non-empty lists of schemas")
        return self._rule(" | ".join(self.visit(branch) for branch in branches))

    def _object(self, properties: object, required: object, schema: dict[str, Any]) -> str:
        if not isinstance(properties, dict) or not isinstance(required, list):
            raise SchemaError("properties must be an object and required a list")
        pairs = {name: self._rule(f'{_literal(name)} ": " {self.visit(value)}') for name, value in properties.items()}
        needed = [pairs[name] for name in properties if name in required]
        optional = [pairs[name] for name in properties if name not in required]
        extra = schema.get("additionalProperties")
        if extra is True or isinstance(extra, dict):
            key = self._primitive("STRING")
            if properties:  # an extra key is never one of the named ones
                key = f"EXTRA_KEY{len(self.rules)}"
                named = " | ".join(_literal(name) for name in properties)
                self.rules[key] = f"STRING & ~({named})"
            optional.append(self._rule(f'{key} ": " {self.visit(extra)}'))
            repeat_last = True
        else:
            repeat_last = False
        return self._rule('"{" ' + _members(needed, optional, repeat_last, self._rule) + ' "}"')

    def _all_of(self, parts: object) -> str:
        """llama.cpp's ``allOf``: the properties of every part (those under an ``anyOf`` optional)."""
        if not isinstance(parts, list):
            raise SchemaError("allOf must be a list of schemas")
        properties: dict[str, Any] = {}
        required: list[str] = []

        def add(part: object, is_required: bool) -> None:
            if isinstance(part, dict) and isinstance(part.get("$ref"), str):
                part = self._target(part["$ref"])
            if isinstance(part, dict):
                for name, value in (part.get("properties") or {}).items():
                    properties[name] = value
                    if is_required:
                        required.append(name)

        for part in parts:
            if isinstance(part, dict) and "anyOf" in part:
                for branch in part["anyOf"]:
                    add(branch, False)
            else:
                add(part, True)
        return self._object(properties, required, {})

    def _array(self, schema: dict[str, Any]) -> str:
        items = schema.get("items", schema.get("prefixItems", True))
        if isinstance(items, list):
            inner = ' ", " '.join(self.visit(item) for item in items)
            return self._rule(f'"[" {inner} "]"' if items else '"[" "]"')
        least, most = schema.get("minItems", 0), schema.get("maxItems")
        if not isinstance(least, int) or least < 0 or not (most is None or (isinstance(most, int) and most >= 0)):
            raise SchemaError("minItems and maxItems must be non-negative integers")
        if most is not None and least > most:
            raise SchemaError(f"unsatisfiable: minItems {least} is greater than maxItems {most}")
        item = self.visit(items)
        if most == 0:
            return self._rule('"[" "]"')
        more = f'(", " {item})' + _repeat(max(least - 1, 0), None if most is None else most - 1)
        body = f"{item} {more}"
        return self._rule(f'"[" ({body}){"?" if least == 0 else ""} "]"')

    def _integer_range(self, schema: dict[str, Any]) -> str:
        bounds = _picked(schema, _BOUNDS)
        low = max(math.ceil(_number(bounds.get("minimum", -_LARGEST))), -_LARGEST)
        high = min(math.floor(_number(bounds.get("maximum", _LARGEST))), _LARGEST)
        if "exclusiveMinimum" in bounds:
            low = max(low, math.floor(_number(bounds["exclusiveMinimum"])) + 1)
        if "exclusiveMaximum" in bounds:
            high = min(high, math.ceil(_number(bounds["exclusiveMaximum"])) - 1)
        return self._delegated({"type": "integer", "minimum": low, "maximum": high})

    def _delegated(self, schema: dict[str, Any]) -> str:
        return self._rule(f"%json {json.dumps(schema)}")


def _members(needed: list[str], optional: list[str], repeat_last: bool, rule: Any) -> str:
    """An object's members: every needed one, then any of the optional ones, in order, each once (the last,
    the extra keys', as often as wanted when ``repeat_last``)."""

    def times(index: int) -> str:
        return "*" if repeat_last and index == len(optional) - 1 else "?"

    if needed:
        tail = " ".join(f'(", " {member}){times(i)}' for i, member in enumerate(optional))
        return ' ", " '.join(needed) + (f" {tail}" if tail else "")
    if not optional:
        return ""
    # Whichever optional member comes first has no comma before it: one alternative per first member,
    # each followed by a shared rule for the rest.
    rests: list[str] = [""] * (len(optional) + 1)
    for index in range(len(optional) - 1, -1, -1):
        after = rests[index + 1]
        rests[index] = rule(f'(", " {optional[index]}){times(index)}' + (f" {after}" if after else ""))
    firsts = []
    for index, member in enumerate(optional):
        again = f' (", " {member})*' if times(index) == "*" else ""
        after = rests[index + 1]
        firsts.append(member + again + (f" {after}" if after else ""))
    return "(" + " | ".join(firsts) + ")?"


def _repeat(least: int, most: int | None) -> str:
    if most is None:
        return "*" if least == 0 else ("+" if least == 1 else f"{{{least},}}")
    return f"{{{least},{most}}}"


def _picked(schema: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {key: schema[key] for key in keys if key in schema}


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SchemaError(f"a bound must be a finite number, not {json.dumps(value)}")
    return value
