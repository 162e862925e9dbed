"""The runner's wire protocol: messages of any size in lines of bounded length, and their reassembly."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest

from pollama.runner.protocol import LINE_LIMIT, WHOLE_LINE_LIMIT, Decoder, encode

# Quotes, backslashes, newlines and multi-byte characters: what JSON escapes and what a byte cut can split.
AWKWARD = 'say "hi"\\ \n é 東京 🙂 '


def large_message(size: int = 5 << 20) -> dict[str, Any]:
    return {"id": "7", "op": "completion", "prompt": AWKWARD * (size // len(AWKWARD.encode()))}


def decode_all(lines: list[bytes]) -> list[dict[str, Any]]:
    decoder = Decoder()
    return [message for line in lines if (message := decoder.feed(line)) is not None]


def whole_line(message: dict[str, Any]) -> bytes:
    (line,) = encode(message)
    return line


def fragment(index: int, count: int, data: bytes) -> bytes:
    return json.dumps({"fragment": index, "of": count, "data": base64.b64encode(data).decode()}).encode() + b"\n"


def test_a_small_message_is_one_line() -> None:
    message = {"id": "1", "event": "token", "text": AWKWARD}
    (line,) = encode(message)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == message
    assert Decoder().feed(line) == message


def test_a_message_past_the_whole_line_limit_travels_in_bounded_fragments() -> None:
    message = large_message()
    lines = list(encode(message))
    assert len(lines) > 5
    assert all(len(line) <= LINE_LIMIT and line.endswith(b"\n") and line.count(b"\n") == 1 for line in lines)
    assert all(set(json.loads(line)) == {"fragment", "of", "data"} for line in lines)
    decoder = Decoder()
    *gathering, last = [decoder.feed(line) for line in lines]
    assert gathering == [None] * len(gathering)
    assert last == message


def test_a_message_just_at_the_limit_goes_whole_and_one_byte_more_is_fragmented() -> None:
    overhead = len(json.dumps({"id": "1", "event": "content", "content": ""}, separators=(",", ":")))
    at_limit = {"id": "1", "event": "content", "content": "x" * (WHOLE_LINE_LIMIT - overhead)}
    assert len(list(encode(at_limit))) == 1
    over = {**at_limit, "content": at_limit["content"] + "x"}
    assert len(lines := list(encode(over))) == 2
    assert decode_all(lines) == [over]


def test_messages_before_and_after_a_fragmented_one_decode_in_order() -> None:
    messages = [{"id": "1", "event": "token", "text": "a"}, large_message(2 << 20), {"id": "2", "event": "done"}]
    assert decode_all([line for message in messages for line in encode(message)]) == messages


def test_the_servers_stream_reader_reads_every_line_within_the_limit() -> None:
    """The server reads the runner's stdout with ``limit=LINE_LIMIT``: no line the protocol writes trips it."""
    message = {"id": "3", "event": "tokens", "tokens": list(range(600_000))}

    async def read_back() -> list[dict[str, Any]]:
        reader = asyncio.StreamReader(limit=LINE_LIMIT)
        reader.feed_data(b"".join(encode(message)))
        reader.feed_eof()
        decoder, decoded = Decoder(), []
        while line := await reader.readline():
            if (event := decoder.feed(line)) is not None:
                decoded.append(event)
        return decoded

    assert asyncio.run(read_back()) == [message]


def test_interleaved_fragments_are_refused_and_the_decoder_recovers() -> None:
    first, second = list(encode(large_message(2 << 20))), list(encode(large_message(3 << 20)))
    decoder = Decoder()
    assert decoder.feed(first[0]) is None
    with pytest.raises(ValueError, match="out of order"):
        decoder.feed(second[0])  # a second message's fragment 0 while the first one's are gathering
    small = {"id": "9", "event": "done"}
    assert decoder.feed(whole_line(small)) == small
    assert decode_all(second) == [large_message(3 << 20)]


def test_a_whole_message_between_fragments_is_refused() -> None:
    lines = list(encode(large_message(2 << 20)))
    decoder = Decoder()
    decoder.feed(lines[0])
    with pytest.raises(ValueError, match="came between the fragments"):
        decoder.feed(whole_line({"id": "1", "event": "health"}))
    with pytest.raises(ValueError, match="out of order"):
        decoder.feed(lines[1])  # the rest of the broken message is refused too, not glued to anything


@pytest.mark.parametrize(
    "line",
    [
        fragment(1, 2, b"{}"),  # no fragment 0
        fragment(0, 1, b"{}"),  # a message of one fragment is sent whole
        b'{"fragment": 0, "of": 2}\n',  # no data
        b'{"fragment": "0", "of": 2, "data": ""}\n',
        b'{"fragment": 0, "of": 2, "data": "not base64!"}\n',
        b"[1, 2]\n",
        b"not json\n",
        b'{"id": "1", "event": "content", "content": "\xff"}\n',  # not UTF-8
        b"{" + b" " * LINE_LIMIT + b"}\n",
    ],
)
def test_malformed_lines_are_refused(line: bytes) -> None:
    with pytest.raises(ValueError):
        Decoder().feed(line)


def test_fragments_that_do_not_reassemble_into_an_object_are_refused() -> None:
    decoder = Decoder()
    assert decoder.feed(fragment(0, 2, b'{"id": "1", ')) is None
    with pytest.raises(ValueError):
        decoder.feed(fragment(1, 2, b'"oops"'))
    assert decoder.feed(fragment(0, 2, b"[1,")) is None
    with pytest.raises(ValueError, match="JSON object"):
        decoder.feed(fragment(1, 2, b"2]"))


def test_a_fragment_count_that_changes_midway_is_refused() -> None:
    decoder = Decoder()
    decoder.feed(fragment(0, 3, b'{"a":'))
    with pytest.raises(ValueError, match="out of order"):
        decoder.feed(fragment(1, 2, b"1}"))
