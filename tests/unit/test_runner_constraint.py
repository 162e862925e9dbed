"""Constrained decoding in the batching engine, with the real SmolLM2 GGUF (see ``test_runner_engine``).

The runner's wire options ``grammar`` (an llguidance grammar, here from ``grammar_for_format``) and
``grammar_after`` (text that must be generated before the grammar applies) drive a ``Constraint`` that masks
the logits before every draw. Sampling at temperature 1 over many seeds, every answer must still be a
document valid against the schema, whatever else the model would have liked to write.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from llguidance import LLMatcher

from pollama.runner.model import LoadedModel, LoadOptions, load
from pollama.service.structured import grammar_for_format
from tests.unit.test_runner_engine import FRANCE, NUMBERS, Harness

PROMPT = "<|im_start|>user\nDescribe a person as JSON.<|im_end|>\n<|im_start|>assistant\n"

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "pattern": "^[A-Z][a-z]+$"},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "active": {"type": "boolean"},
        "tags": {
            "type": "array",
            "items": {"type": "string", "enum": ["red", "green", "blue"]},
            "minItems": 1,
            "maxItems": 3,
        },
        "address": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "zip": {"type": "integer", "minimum": 10000, "maximum": 99999},
            },
            "required": ["city", "zip"],
            "additionalProperties": False,
        },
    },
    "required": ["name", "age", "active", "tags", "address"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def model(smollm2_path: Path) -> Iterator[LoadedModel]:
    loaded = load(LoadOptions(path=smollm2_path, num_ctx=512, num_parallel=2, num_batch=64, num_thread=1, num_gpu=0))
    yield loaded
    loaded.close()


@pytest.fixture
def make(model: LoadedModel) -> Iterator[Any]:
    harnesses: list[Harness] = []

    def create(slots: int = 2) -> Harness:
        harness = Harness(model, slots)
        harnesses.append(harness)
        return harness

    yield create
    for harness in harnesses:
        harness.engine.close()


# --- a small JSON-schema validator (jsonschema is not installed): the subset SCHEMA uses ------------------

_TYPES: dict[str, Any] = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "integer": int,
    "number": (int, float),
    "null": type(None),
}


def schema_errors(value: Any, schema: dict[str, Any], path: str = "$") -> list[str]:
    errors: list[str] = []
    kind = schema.get("type")
    if kind is not None:
        wrong_bool = isinstance(value, bool) and kind in ("integer", "number")
        if not isinstance(value, _TYPES[kind]) or wrong_bool:
            return [f"{path}: {value!r} is not of type {kind}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} not in {schema['enum']}")
    if "pattern" in schema and not re.search(schema["pattern"], value):
        errors.append(f"{path}: {value!r} does not match {schema['pattern']}")
    if "minimum" in schema and value < schema["minimum"]:
        errors.append(f"{path}: {value} < {schema['minimum']}")
    if "maximum" in schema and value > schema["maximum"]:
        errors.append(f"{path}: {value} > {schema['maximum']}")
    if isinstance(value, list):
        if not schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", math.inf):
            errors.append(f"{path}: {len(value)} items")
        for index, item in enumerate(value):
            errors += schema_errors(item, schema.get("items", {}), f"{path}[{index}]")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        errors += [f"{path}: {key} is missing" for key in schema.get("required", ()) if key not in value]
        for key, item in value.items():
            if key in properties:
                errors += schema_errors(item, properties[key], f"{path}.{key}")
            elif schema.get("additionalProperties", True) is False:
                errors.append(f"{path}: unexpected {key}")
    return errors


def test_the_validator_catches_what_it_should() -> None:
    good = {"name": "Ann", "age": 3, "active": True, "tags": ["red"], "address": {"city": "X", "zip": 12345}}
    assert schema_errors(good, SCHEMA) == []
    bad = {"name": "ann", "age": True, "active": 1, "tags": [], "address": {"city": "X", "zip": 5, "z": 1}, "x": 0}
    assert len(schema_errors(bad, SCHEMA)) == 7


# --- decoding -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pair", range(10))
def test_sampled_answers_follow_the_schema(make: Any, pair: int) -> None:
    """Two seeds at a time, in the two slots of one engine: each sequence keeps its own constraint."""
    h = make(slots=2)
    grammar = grammar_for_format(SCHEMA)
    seeds = (2 * pair, 2 * pair + 1)
    for seed in seeds:
        h.submit(f"s{seed}", PROMPT, grammar=grammar, temperature=1.0, seed=seed, num_predict=200)
    h.drain()
    for seed in seeds:
        done = h.recorder.done(f"s{seed}")
        text = h.recorder.text(f"s{seed}")
        assert (done["event"], done["done_reason"]) == ("done", "stop"), text
        assert schema_errors(json.loads(text), SCHEMA) == [], text
        assert text == text.strip()  # no free whitespace around the document


def test_json_mode_gives_an_object(make: Any) -> None:
    h = make(slots=1)
    done = h.run("a", PROMPT, grammar=grammar_for_format("json"), temperature=0, num_predict=200)
    assert done["done_reason"] == "stop"
    assert isinstance(json.loads(h.recorder.text("a")), dict)


def test_the_constraint_does_not_leak_into_another_sequence(make: Any) -> None:
    solo = make(slots=1)
    solo.run("free", FRANCE, temperature=0, num_predict=12)
    expected = solo.recorder.text("free")
    h = make(slots=2)
    h.submit("held", PROMPT, grammar=grammar_for_format(SCHEMA), temperature=0, num_predict=60)
    h.submit("free", FRANCE, temperature=0, num_predict=12)
    h.drain()
    assert h.recorder.text("free") == expected
    assert not h.recorder.text("free").lstrip().startswith("{")
    assert h.recorder.text("held").startswith('{"name": "')


def test_a_limit_cuts_the_document(make: Any) -> None:
    h = make(slots=1)
    done = h.run("a", PROMPT, grammar=grammar_for_format(SCHEMA), temperature=0, num_predict=5)
    assert (done["done_reason"], done["eval_count"]) == ("length", 5)
    assert h.recorder.text("a").startswith('{"name')


def test_grammar_after_lets_the_text_before_it_run_free(make: Any) -> None:
    h = make(slots=1)
    grammar = LLMatcher.grammar_from_lark('start: " END"')
    # Greedy, the model counts on: " 7, 8, 9, ...". Held to the grammar from the start it could only say " END".
    done = h.run("a", NUMBERS, grammar=grammar, temperature=0, num_predict=30)
    assert (h.recorder.text("a"), done["done_reason"]) == (" END", "stop")
    done = h.run("b", NUMBERS, grammar=grammar, grammar_after=" 8,", temperature=0, num_predict=30)
    assert (h.recorder.text("b"), done["done_reason"]) == (" 7, 8, END", "stop")


def test_logprobs_under_a_constraint(make: Any) -> None:
    h = make(slots=1)
    grammar = LLMatcher.grammar_from_lark('start: " Paris" | " Lyon" | " Nice"')
    done = h.run("a", FRANCE, grammar=grammar, temperature=0, num_predict=10, logprobs=True, top_logprobs=20)
    assert h.recorder.text("a") == " Paris"
    entries = [entry for event in h.recorder.of("a") for entry in event.get("logprobs") or ()]
    assert done["eval_count"] - 1 <= len(entries) <= done["eval_count"]  # (with or without the end token's)
    assert "".join(entry["token"] for entry in entries).startswith(" Paris")
    for entry in entries:
        alternatives = entry["top_logprobs"]
        # Only tokens the grammar allows are alternatives (fewer than asked for), never -inf.
        assert 1 <= len(alternatives) < 20
        values = [alternative["logprob"] for alternative in alternatives]
        assert all(math.isfinite(value) and value <= 0 for value in values)
        assert values == sorted(values, reverse=True)
        assert (alternatives[0]["token"], alternatives[0]["logprob"]) == (entry["token"], entry["logprob"])
    first = {alternative["token"] for alternative in entries[0]["top_logprobs"]}
    assert all(any(word.startswith(token) for word in (" Paris", " Lyon", " Nice")) for token in first), first
