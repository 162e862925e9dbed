"""gojson: JSON as Go's encoding/json writes it, floats above all (what Ollama stores and answers)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pollama.gocompat import gojson
from pollama.gocompat.gojson import _float, _float_from_digits


@pytest.mark.parametrize(
    ("value", "go"),
    [
        (0.0, "0"),
        (-0.0, "-0"),
        (0.1, "0.1"),
        (-0.5, "-0.5"),
        (4096.0, "4096"),
        (0.00001, "0.00001"),
        (0.000001, "0.000001"),
        (1e-7, "1e-7"),
        (1.5e-7, "1.5e-7"),
        (123456789.125, "123456789.125"),
        (1e16, "10000000000000000"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (5e-324, "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
    ],
)
def test_floats_are_written_as_go_writes_them(value: float, go: str) -> None:
    assert _float(value) == go


@given(st.floats(allow_nan=False, allow_infinity=False).filter(lambda value: value != 0))
def test_the_fast_path_agrees_with_the_digits(value: float) -> None:
    assert _float(value) == _float_from_digits(value)
    assert float(_float(value)) == value


def test_lists_of_floats_and_mixed_values() -> None:
    vector = [0.25, -1e-7, 3.0]
    assert gojson.dumps({"embeddings": [vector], "n": 2, "s": "<a&b>", "ok": True, "x": None}) == (
        b'{"embeddings":[[0.25,-1e-7,3]],"n":2,"s":"\\u003ca\\u0026b\\u003e","ok":true,"x":null}'
    )
    assert gojson.dumps([1.0, 2]) == b"[1,2]"  # not all floats: item by item, same text


def test_non_finite_floats_are_refused() -> None:
    for value in (math.nan, math.inf):
        with pytest.raises(ValueError, match="unsupported value"):
            gojson.dumps([value])


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=20))
def test_a_list_of_floats_is_written_as_item_by_item(values: list[float]) -> None:
    assert gojson.dumps(values) == ("[" + ",".join(map(_float, values)) + "]").encode()
