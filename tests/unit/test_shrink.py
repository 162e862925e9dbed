"""The fuzz reports' shrinker: what reproduces a finding stays, everything else goes."""

from __future__ import annotations

from typing import Any

from tests.shrink import Shrinker


def _has_bang(value: Any) -> bool:
    return "!" in repr(value)


def test_drops_the_members_and_items_the_finding_does_not_need() -> None:
    body = {"junk": {"deep": [1, 2, 3]}, "options": {"stop": ["a", ["x!"]], "seed": 1}, "model": "smol"}
    assert Shrinker(_has_bang, 500).shrink(body) == {"options": {"stop": [["!"]]}}


def test_array_items_after_a_dropped_one_are_still_tried() -> None:
    assert Shrinker(lambda value: 3 in value and 5 in value, 500).shrink([1, 2, 3, 4, 5, 6]) == [3, 5]


def test_strings_shrink_to_the_characters_that_matter() -> None:
    assert Shrinker(_has_bang, 500).shrink({"name": "a long name with a ! inside"}) == {"name": "!"}


def test_a_string_the_finding_does_not_need_becomes_empty() -> None:
    assert Shrinker(lambda value: "name" in value, 500).shrink({"name": "abc"}) == {"name": ""}


def test_stays_within_its_budget() -> None:
    calls = []

    def reproduces(value: Any) -> bool:
        calls.append(value)
        return True

    assert Shrinker(reproduces, 3).shrink({"a": 1, "b": 2, "c": 3, "d": 4}) == {"d": 4}
    assert len(calls) == 3
