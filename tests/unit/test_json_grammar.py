"""Ollama's reading of a ``format`` schema (``service.json_grammar``), held against llguidance's matcher.

Ollama (llama.cpp's json-schema-to-grammar) allows no key beyond an object's named properties unless
``additionalProperties`` says so, wherever the object sits, and no number of more than 16 digits before
the point or after it. Each case is a text the grammar must accept or reject, byte by byte.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from pollama.service.structured import FormatError, grammar_for_format, tool_call_grammar
from tests.unit.bytetokens import accepts

NAME_AGE = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}}
PERSON = {**NAME_AGE, "required": ["name", "age"]}


def allowed(tokenizer: Any, schema: object, text: str) -> bool:
    grammar = grammar_for_format(schema)
    assert grammar is not None
    return accepts(tokenizer, grammar, text)


# Where an object schema can sit, each with a document whose one object has only its named keys, and the
# same with one more key in that object.
PLACES: dict[str, tuple[dict[str, Any], str, str]] = {
    "top level": (PERSON, '{"name": "Ann", "age": 3}', '{"name": "Ann", "age": 3, "city": "Oslo"}'),
    "nested": (
        {"type": "object", "properties": {"owner": PERSON}, "required": ["owner"], "additionalProperties": False},
        '{"owner": {"name": "Ann", "age": 3}}',
        '{"owner": {"name": "Ann", "age": 3, "job": "x"}}',
    ),
    "$defs": (
        {"$defs": {"p": PERSON}, "type": "object", "properties": {"who": {"$ref": "#/$defs/p"}}, "required": ["who"]},
        '{"who": {"name": "Ann", "age": 3}}',
        '{"who": {"name": "Ann", "age": 3, "job": "x"}}',
    ),
    "anyOf branch": (
        {"anyOf": [PERSON, {"type": "null"}]},
        '{"name": "Ann", "age": 3}',
        '{"name": "Ann", "age": 3, "job": "x"}',
    ),
    "oneOf branch": (
        {"oneOf": [{"type": "integer"}, PERSON]},
        '{"name": "Ann", "age": 3}',
        '{"name": "Ann", "age": 3, "job": "x"}',
    ),
    "array items": (
        {"type": "array", "items": PERSON},
        '[{"name": "Ann", "age": 3}]',
        '[{"name": "Ann", "age": 3, "job": "x"}]',
    ),
    "allOf": (
        {"allOf": [{"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}, PERSON]},
        '{"name": "Ann", "age": 3}',
        '{"name": "Ann", "age": 3, "job": "x"}',
    ),
    "no type, properties only": (
        {"properties": {"a": {"type": "boolean"}}},
        '{"a": true}',
        '{"a": true, "b": false}',
    ),
    "optional properties only": (NAME_AGE, '{"age": 3}', '{"age": 3, "job": "x"}'),
}


@pytest.mark.parametrize("place", PLACES)
def test_an_object_without_additional_properties_gets_no_other_keys(place: str, byte_tokenizer: Any) -> None:
    schema, named_only, one_more = PLACES[place]
    assert allowed(byte_tokenizer, schema, named_only)
    assert not allowed(byte_tokenizer, schema, one_more)


def test_pydantics_schema_allows_only_the_models_fields(byte_tokenizer: Any) -> None:
    pydantic = pytest.importorskip("pydantic")

    class Pet(pydantic.BaseModel):
        name: str
        legs: int

    class Owner(pydantic.BaseModel):
        name: str
        pets: list[Pet]

    schema = Owner.model_json_schema()
    assert "additionalProperties" not in json.dumps(schema)
    assert allowed(byte_tokenizer, schema, '{"name": "Ann", "pets": [{"name": "Rex", "legs": 4}]}')
    assert not allowed(byte_tokenizer, schema, '{"name": "Ann", "pets": [{"name": "Rex", "legs": 4, "age": 3}]}')
    assert not allowed(byte_tokenizer, schema, '{"name": "Ann", "pets": [], "city": "Oslo"}')


def test_additional_properties_true_or_a_schema_keeps_other_keys(byte_tokenizer: Any) -> None:
    anything = {**PERSON, "additionalProperties": True}
    assert allowed(byte_tokenizer, anything, '{"name": "Ann", "age": 3, "city": "Oslo", "tags": [1, {}]}')
    numbers = {**PERSON, "additionalProperties": {"type": "number"}}
    assert allowed(byte_tokenizer, numbers, '{"name": "Ann", "age": 3, "height": 1.7, "weight": 60}')
    assert not allowed(byte_tokenizer, numbers, '{"name": "Ann", "age": 3, "city": "Oslo"}')
    # An extra key is never a named one again.
    assert not allowed(byte_tokenizer, anything, '{"name": "Ann", "age": 3, "name": "Bob"}')
    only_extras = {"type": "object", "additionalProperties": {"type": "integer"}}
    assert allowed(byte_tokenizer, only_extras, '{"a": 1, "b": 2}')
    assert allowed(byte_tokenizer, only_extras, "{}")
    assert not allowed(byte_tokenizer, only_extras, '{"a": "x"}')


def test_additional_properties_false_is_still_none(byte_tokenizer: Any) -> None:
    closed = {**PERSON, "additionalProperties": False}
    assert not allowed(byte_tokenizer, closed, '{"name": "Ann", "age": 3, "city": "Oslo"}')
    assert allowed(byte_tokenizer, {"type": "object", "additionalProperties": False}, "{}")
    assert not allowed(byte_tokenizer, {"type": "object", "additionalProperties": False}, '{"a": 1}')


def test_a_bare_object_type_is_any_object(byte_tokenizer: Any) -> None:
    assert allowed(byte_tokenizer, {"type": "object"}, '{"a": 1, "b": {"c": [true]}}')


def test_required_properties_come_first_then_optional_ones_in_order(byte_tokenizer: Any) -> None:
    # llama.cpp's order, so Ollama's: required ones in the schema's order, then any optional ones, in order.
    schema = {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}, "c": {"type": "integer"}},
        "required": ["b"],
    }
    for text in ('{"b": 1}', '{"b": 1, "a": 2}', '{"b": 1, "c": 3}', '{"b": 1, "a": 2, "c": 3}'):
        assert allowed(byte_tokenizer, schema, text), text
    for text in ('{"a": 2, "b": 1}', '{"b": 1, "c": 3, "a": 2}', '{"b": 1, "a": 2, "a": 2}', "{}"):
        assert not allowed(byte_tokenizer, schema, text), text


def test_tool_parameters_get_no_other_keys(byte_tokenizer: Any) -> None:
    tool = {"type": "function", "function": {"name": "add", "parameters": {**NAME_AGE, "required": ["name"]}}}
    grammar = tool_call_grammar("{", "", [tool])
    assert accepts(byte_tokenizer, grammar, '{"name": "add", "arguments": {"name": "x", "age": 1}}')
    assert not accepts(byte_tokenizer, grammar, '{"name": "add", "arguments": {"name": "x", "b": 1}}')


# --- numbers: at most 16 digits before the point, 16 after it, 16 in the exponent --------------------------

SIXTEEN = "1234567890123456"


@pytest.mark.parametrize(
    ("schema", "document"),
    [("json", '{{"n": {}}}'), ({"type": "number"}, "{}"), ({"type": "array", "items": {"type": "number"}}, "[{}]")],
    ids=["json", "number", "items"],
)
def test_numbers_have_at_most_sixteen_digits_each_side_of_the_point(
    schema: object, document: str, byte_tokenizer: Any
) -> None:
    for number in (SIXTEEN, f"-{SIXTEEN}", f"0.{SIXTEEN}", f"{SIXTEEN}.{SIXTEEN}", "1e16", f"2.5E-{SIXTEEN}"):
        assert allowed(byte_tokenizer, schema, document.format(number)), number
    for number in (f"{SIXTEEN}7", f"0.{SIXTEEN}7", f"1e{SIXTEEN}7", "01", "1.", ".5", "+1"):
        assert not allowed(byte_tokenizer, schema, document.format(number)), number


def test_integers_have_at_most_sixteen_digits(byte_tokenizer: Any) -> None:
    assert allowed(byte_tokenizer, {"type": "integer"}, f"-{SIXTEEN}")
    assert not allowed(byte_tokenizer, {"type": "integer"}, f"{SIXTEEN}7")
    assert not allowed(byte_tokenizer, {"type": "integer"}, "1.5")
    # A range wider than 16 digits is cut to what a double holds exactly (llguidance checks ranges in doubles).
    wide = {"type": "integer", "minimum": -(10**30), "maximum": 10**30}
    assert allowed(byte_tokenizer, wide, str(2**53 - 1)) and allowed(byte_tokenizer, wide, str(-(2**53 - 1)))
    assert not allowed(byte_tokenizer, wide, "1" + "0" * 16)


def test_ranges_are_kept(byte_tokenizer: Any) -> None:
    count = {"type": "integer", "minimum": 1, "exclusiveMaximum": 4}
    assert [allowed(byte_tokenizer, count, str(n)) for n in range(6)] == [False, True, True, True, False, False]
    fraction = {"type": "integer", "minimum": 0.5, "maximum": 2.5}
    assert [allowed(byte_tokenizer, fraction, str(n)) for n in range(4)] == [False, True, True, False]
    share = {"type": "number", "minimum": 0, "maximum": 1}
    assert allowed(byte_tokenizer, share, "0.25") and not allowed(byte_tokenizer, share, "1.5")


@pytest.mark.parametrize(
    ("schema", "detail"),
    [
        (
            {"type": "object", "properties": {"a": {"$ref": "#/definitions/gone"}}},
            "unresolvable $ref #/definitions/gone",
        ),
        ({"$ref": "https://example.com/schema.json"}, "only references inside the schema"),
        ({"enum": []}, "enum"),
        ({"anyOf": []}, "anyOf"),
        ({"type": []}, "types"),
        ({"type": "integer", "minimum": "1"}, "bound"),
        ({"properties": []}, "properties"),
        ({"type": "array", "items": {"type": "string"}, "minItems": -1}, "minItems"),
    ],
)
def test_schemas_that_cannot_be_grammars_are_format_errors(schema: dict[str, Any], detail: str) -> None:
    with pytest.raises(FormatError, match="^invalid JSON schema in format: ") as raised:
        grammar_for_format(schema)
    assert detail in str(raised.value)


def test_a_schema_may_refer_to_itself(byte_tokenizer: Any) -> None:
    tree = {
        "$defs": {
            "node": {
                "type": "object",
                "properties": {"v": {"type": "integer"}, "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
                "required": ["v"],
            }
        },
        "$ref": "#/$defs/node",
    }
    assert allowed(byte_tokenizer, tree, '{"v": 1, "kids": [{"v": 2, "kids": [{"v": 3}]}]}')
    assert not allowed(byte_tokenizer, tree, '{"v": 1, "kids": [{"v": 2, "x": 0}]}')


def test_keys_and_constants_with_quotes_and_unicode(byte_tokenizer: Any) -> None:
    schema = {"type": "object", "properties": {'say "hi"': {"const": "héllo\n"}}, "required": ['say "hi"']}
    assert allowed(byte_tokenizer, schema, json.dumps({'say "hi"': "héllo\n"}, ensure_ascii=False))
