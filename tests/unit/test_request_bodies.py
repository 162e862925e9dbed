"""Decoding request bodies within the limits, as Go's decoder would (pure logic; the routes are in
tests/integration/test_hardening.py)."""

from __future__ import annotations

import logging
import sys

import pytest

from pollama.errors import PollamaError
from pollama.server.bodies import decode_json
from pollama.server.errors import status_of
from pollama.server.serve import OneLineFormatter


def test_plain_json_decodes() -> None:
    assert decode_json(b'{"a": [1, 2.5, "x", null, true]}', 8) == {"a": [1, 2.5, "x", None, True]}


@pytest.mark.parametrize(
    ("depth", "fits"),
    [(8, True), (9, False)],
)
def test_depth_limit_counts_arrays_and_objects(depth: int, fits: bool) -> None:
    body = '{"a":' * (depth // 2) + "[" * (depth - depth // 2) + "]" * (depth - depth // 2) + "}" * (depth // 2)
    if fits:
        decode_json(body.encode(), 8)
    else:
        with pytest.raises(PollamaError) as caught:
            decode_json(body.encode(), 8)
        assert (status_of(caught.value), caught.value.message) == (400, "invalid JSON: nested deeper than 8 levels")


def test_nesting_beyond_pythons_recursion_limit_is_a_400() -> None:
    with pytest.raises(PollamaError) as caught:
        decode_json(b"[" * 100_000 + b"]" * 100_000, 128)
    assert status_of(caught.value) == 400


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e999"])
def test_numbers_go_refuses_are_a_400(literal: bytes) -> None:
    with pytest.raises(PollamaError) as caught:
        decode_json(b'{"x": ' + literal + b"}", 8)
    assert status_of(caught.value) == 400


def test_invalid_utf8_is_a_400() -> None:
    with pytest.raises(PollamaError) as caught:
        decode_json(b'{"x": "\xff"}', 8)
    assert status_of(caught.value) == 400


def test_lone_surrogates_become_u_fffd_everywhere() -> None:
    decoded = decode_json(b'{"k\\udc00": ["a\\ud800b", {"c": "\\uDFFF"}], "pair": "\\ud83d\\ude00"}', 8)
    assert decoded == {"k\ufffd": ["a\ufffdb", {"c": "\ufffd"}], "pair": "\U0001f600"}
    assert "\ud800" not in str(decoded)


def test_log_lines_escape_control_characters() -> None:
    formatter = OneLineFormatter("level=%(levelname)s msg=%(message)s")
    record = logging.LogRecord("x", logging.WARNING, "", 1, "invalid option: %s", ("a\nlevel=ERROR b\r\x1b\x7f",), None)
    assert formatter.format(record) == "level=WARNING msg=invalid option: a\\nlevel=ERROR b\\r\\x1b\\x7f"


def test_a_traceback_is_one_line() -> None:
    formatter = OneLineFormatter("%(message)s")
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, "", 1, "failed", (), exc_info=sys.exc_info())
    text = formatter.format(record)
    assert "\n" not in text and "Traceback" in text and "ValueError: boom" in text
