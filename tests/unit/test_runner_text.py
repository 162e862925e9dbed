"""TextStream: token bytes to streamable text, never splitting a character or leaking a stop sequence."""

from __future__ import annotations

from hypothesis import assume, given
from hypothesis import strategies as st

from pollama.runner.text import Emission, TextStream, partial_stop_length

REPLACEMENT = "\ufffd"


def run(stream: TextStream, pieces: list[bytes]) -> tuple[list[Emission], str]:
    """Push every piece (stopping at a stop, as the engine does); return the emissions and the flush."""
    emissions = []
    for piece in pieces:
        emission = stream.push(piece)
        emissions.append(emission)
        if emission.stopped:
            break
    return emissions, stream.flush()


def joined(emissions: list[Emission], rest: str) -> str:
    return "".join(emission.text for emission in emissions) + rest


def split_bytes(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(cut for cut in cuts if 0 < cut < len(data))})
    return [data[start:end] for start, end in zip(points, points[1:], strict=False)]


# --- UTF-8 ----------------------------------------------------------------------------------------


def test_multibyte_characters_pushed_one_byte_at_a_time() -> None:
    text = "héllo 世界 🎉"
    stream = TextStream()
    emissions, rest = run(stream, [bytes([byte]) for byte in text.encode()])
    assert all(REPLACEMENT not in emission.text for emission in emissions)
    assert not any(emission.stopped for emission in emissions)
    assert joined(emissions, rest) == text
    assert rest == ""  # the emoji's last byte completed it: nothing was left to flush


def test_a_character_is_released_as_soon_as_its_last_byte_arrives() -> None:
    stream = TextStream()
    emoji = "🎉".encode()
    assert [stream.push(emoji[:1]).text, stream.push(emoji[1:3]).text] == ["", ""]
    assert stream.push(emoji[3:]).text == "🎉"


def test_a_split_character_with_text_before_it() -> None:
    stream = TextStream()
    assert stream.push(b"ab" + "世".encode()[:2]).text == "ab"
    assert stream.push("世".encode()[2:] + b"c").text == "世c"


def test_invalid_byte_is_replaced_when_definitely_invalid() -> None:
    stream = TextStream()
    # \xe4\xb8 could still start a 3-byte character: held back, not replaced yet.
    assert stream.push(b"\xe4\xb8").text == ""
    # "x" cannot continue it: now it is definitely invalid.
    assert stream.push(b"x").text == REPLACEMENT + "x"
    assert stream.flush() == ""


def test_stray_continuation_byte_is_replaced_at_once() -> None:
    assert TextStream().push(b"a\x80b").text == f"a{REPLACEMENT}b"


def test_incomplete_character_becomes_replacement_only_at_flush() -> None:
    stream = TextStream()
    assert stream.push(b"ok\xf0\x9f").text == "ok"
    assert stream.flush() == REPLACEMENT


# --- stop sequences -------------------------------------------------------------------------------


def test_stop_split_across_tokens_is_not_emitted_and_ends_the_stream() -> None:
    stream = TextStream(["<|end|>"])
    assert stream.push(b"Hello") == Emission("Hello")
    assert stream.push(b"<|e") == Emission("")
    assert stream.push(b"nd|>") == Emission("", stopped=True)
    assert stream.flush() == ""


def test_text_before_a_stop_in_the_same_token_is_emitted() -> None:
    stream = TextStream(["<|end|>"])
    assert stream.push(b"Hi <|e") == Emission("Hi ")
    assert stream.push(b"nd|> ignored") == Emission("", stopped=True)
    assert stream.flush() == ""


def test_text_after_a_stop_is_dropped() -> None:
    stream = TextStream(["STOP"])
    assert stream.push(b"one STOP two") == Emission("one ", stopped=True)
    assert stream.flush() == ""


def test_partial_match_is_held_only_while_a_match_is_possible() -> None:
    stream = TextStream(["STOP"])
    assert stream.push(b"ST") == Emission("")
    assert stream.push(b"x") == Emission("STx")
    assert stream.flush() == ""


def test_held_text_grows_then_is_released() -> None:
    stream = TextStream(["STOP"])
    assert stream.push(b"a S").text == "a "
    assert stream.push(b"T").text == ""
    assert stream.push(b"O").text == ""
    assert stream.push(b"P!") == Emission("", stopped=True)


def test_only_the_part_that_can_still_match_is_held() -> None:
    stream = TextStream(["abcd"])
    # "abcab": "abc" cannot start the stop any more (the next char is "a"), "ab" still can.
    assert stream.push(b"abcab").text == "abc"
    assert stream.push(b"x").text == "abx"


def test_earliest_of_several_stops_wins() -> None:
    stream = TextStream(["world", "lo w"])
    assert stream.push(b"hello world") == Emission("hel", stopped=True)


def test_earliest_stop_wins_when_a_later_listed_one_matches_first() -> None:
    stream = TextStream(["C", "B"])
    assert stream.push(b"aBcC") == Emission("a", stopped=True)


def test_longest_pending_stop_prefix_is_held() -> None:
    stream = TextStream(["xyz", "yz!"])
    # "xy" is a prefix of "xyz"; only "y" of "yz!": hold the longer one.
    assert stream.push(b"axy").text == "a"
    assert stream.push(b"z") == Emission("", stopped=True)


def test_flush_releases_held_text() -> None:
    stream = TextStream(["<|im_end|>"])
    assert stream.push(b"done <|im").text == "done "
    assert stream.flush() == "<|im"
    assert stream.flush() == ""


def test_empty_stop_strings_are_ignored() -> None:
    stream = TextStream(["", "Z"])
    assert stream.push(b"abc") == Emission("abc")
    assert stream.push(b"Z") == Emission("", stopped=True)


def test_no_stops_releases_everything() -> None:
    stream = TextStream()
    assert stream.push(b"a b c") == Emission("a b c")


def test_multibyte_stop_split_inside_a_character() -> None:
    stop = "終わり"
    data = ("前" + stop + "後").encode()
    stream = TextStream([stop])
    emissions, rest = run(stream, [bytes([byte]) for byte in data])
    assert emissions[-1].stopped
    assert joined(emissions, rest) == "前"


def test_partial_stop_length() -> None:
    assert partial_stop_length("abc", ["cde"]) == 1
    assert partial_stop_length("abcd", ["cde"]) == 2
    assert partial_stop_length("abcde", ["cde"]) == 0  # a whole stop is not a *proper* prefix
    assert partial_stop_length("cdc", ["cde"]) == 1
    assert partial_stop_length("abc", ["xyz"]) == 0
    assert partial_stop_length("", ["xyz"]) == 0
    assert partial_stop_length("ab", ["b", "abc"]) == 2


# --- properties -----------------------------------------------------------------------------------

_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)


@given(text=_TEXT, cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=20), stop=_TEXT)
def test_property_without_stop_in_text_everything_comes_out(text: str, cuts: list[int], stop: str) -> None:
    assume(stop == "" or stop not in text)
    stream = TextStream([stop])
    emissions, rest = run(stream, split_bytes(text.encode(), cuts))
    assert not any(emission.stopped for emission in emissions)
    assert all(REPLACEMENT not in emission.text for emission in emissions) or REPLACEMENT in text
    assert joined(emissions, rest) == text


@given(
    before=_TEXT,
    stop=_TEXT.filter(bool),
    after=_TEXT,
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=20),
)
def test_property_output_ends_before_the_first_stop(before: str, stop: str, after: str, cuts: list[int]) -> None:
    text = before + stop + after
    stream = TextStream([stop])
    emissions, rest = run(stream, split_bytes(text.encode(), cuts))
    assert emissions[-1].stopped
    assert joined(emissions, "") == text[: text.find(stop)]


@given(
    text=_TEXT,
    stops=st.lists(_TEXT.filter(bool), min_size=1, max_size=3),
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=20),
)
def test_property_emitted_text_never_contains_a_stop(text: str, stops: list[str], cuts: list[int]) -> None:
    stream = TextStream(stops)
    emissions, rest = run(stream, split_bytes(text.encode(), cuts))
    output = joined(emissions, rest if not emissions or not emissions[-1].stopped else "")
    positions = [index for stop in stops if (index := text.find(stop)) >= 0]
    expected = text[: min(positions)] if positions else text
    assert output == expected


def test_flush_after_a_stop_returns_nothing() -> None:
    # A token holding the end of a stop and the first byte of a multi-byte character: the stop ends the
    # stream, and whatever follows it must not come out (the engine emits flush() in the done event).
    stream = TextStream(["END"])
    assert stream.push(b"ok END\xe4") == Emission("ok ", stopped=True)
    assert stream.flush() == ""
