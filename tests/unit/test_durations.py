"""Go ``time.ParseDuration`` / ``Duration.String``, ported from Go's ``src/time/time_test.go``."""

from __future__ import annotations

import random

import pytest

from pollama.gocompat.durations import FOREVER, format_go_duration, parse_go_duration

NS = 1
US = 1_000
MS = 1_000_000
S = 1_000_000_000
M = 60 * S
H = 60 * M

# parseDurationTests (ok cases)
PARSE_OK = [
    # simple
    ("0", 0),
    ("5s", 5 * S),
    ("30s", 30 * S),
    ("1478s", 1478 * S),
    # sign
    ("-5s", -5 * S),
    ("+5s", 5 * S),
    ("-0", 0),
    ("+0", 0),
    # decimal
    ("5.0s", 5 * S),
    ("5.6s", 5 * S + 600 * MS),
    ("5.s", 5 * S),
    (".5s", 500 * MS),
    ("1.0s", 1 * S),
    ("1.00s", 1 * S),
    ("1.004s", 1 * S + 4 * MS),
    ("1.0040s", 1 * S + 4 * MS),
    ("100.00100s", 100 * S + 1 * MS),
    # different units
    ("10ns", 10 * NS),
    ("11us", 11 * US),
    ("12\u00b5s", 12 * US),  # U+00B5 micro sign
    ("12\u03bcs", 12 * US),  # U+03BC Greek mu
    ("13ms", 13 * MS),
    ("14s", 14 * S),
    ("15m", 15 * M),
    ("16h", 16 * H),
    # composite durations
    ("3h30m", 3 * H + 30 * M),
    ("10.5s4m", 4 * M + 10 * S + 500 * MS),
    ("-2m3.4s", -(2 * M + 3 * S + 400 * MS)),
    ("1h2m3s4ms5us6ns", 1 * H + 2 * M + 3 * S + 4 * MS + 5 * US + 6 * NS),
    ("39h9m14.425s", 39 * H + 9 * M + 14 * S + 425 * MS),
    # large value
    ("52763797000ns", 52763797000 * NS),
    # more than 9 digits after decimal point, see https://golang.org/issue/6617
    ("0.3333333333333333333h", 20 * M),
    # 9007199254740993 = 1<<53+1 cannot be stored precisely in a float64
    ("9007199254740993ns", (1 << 53) + 1),
    # largest duration that can be represented by int64 in nanoseconds
    ("9223372036854775807ns", (1 << 63) - 1),
    ("9223372036854775.807us", (1 << 63) - 1),
    ("9223372036s854ms775us807ns", (1 << 63) - 1),
    ("-9223372036854775808ns", -(1 << 63)),
    # large negative value
    ("-9223372036854775807ns", -(1 << 63) + 1),
    # huge string; issue 15011.
    ("0.100000000000000000000h", 6 * M),
    # This value tests the first overflow check in leadingFraction.
    ("0.830103483285477580700h", 49 * M + 48 * S + 372539827 * NS),
]


@pytest.mark.parametrize(("text", "expected"), PARSE_OK)
def test_parse_duration(text: str, expected: int) -> None:
    assert parse_go_duration(text) == expected


# parseDurationErrorTests, with the full messages Go's ParseDuration builds
PARSE_ERRORS = [
    ("", 'time: invalid duration ""'),
    ("3", 'time: missing unit in duration "3"'),
    ("-", 'time: invalid duration "-"'),
    ("s", 'time: invalid duration "s"'),
    (".", 'time: invalid duration "."'),
    ("-.", 'time: invalid duration "-."'),
    (".s", 'time: invalid duration ".s"'),
    ("+.s", 'time: invalid duration "+.s"'),
    ("1d", 'time: unknown unit "d" in duration "1d"'),
    ("1.5", 'time: missing unit in duration "1.5"'),
    ("5m3", 'time: missing unit in duration "5m3"'),
    ("1h-5m", 'time: unknown unit "h-" in duration "1h-5m"'),
    ("1S", 'time: unknown unit "S" in duration "1S"'),
    (" 1s", 'time: invalid duration " 1s"'),
    ("1s ", 'time: unknown unit "s " in duration "1s "'),
    ("--1s", 'time: invalid duration "--1s"'),
    # overflow
    ("9223372036854775810ns", 'time: invalid duration "9223372036854775810ns"'),
    ("9223372036854775808ns", 'time: invalid duration "9223372036854775808ns"'),
    ("-9223372036854775809ns", 'time: invalid duration "-9223372036854775809ns"'),
    ("9223372036854776us", 'time: invalid duration "9223372036854776us"'),
    ("3000000h", 'time: invalid duration "3000000h"'),
    ("9223372036854775.808us", 'time: invalid duration "9223372036854775.808us"'),
    ("9223372036854ms775us808ns", 'time: invalid duration "9223372036854ms775us808ns"'),
]


@pytest.mark.parametrize(("text", "message"), PARSE_ERRORS)
def test_parse_duration_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_go_duration(text)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # Go's time.quote escapes quotes and backslashes, and writes non-ASCII and control bytes as \xNN.
        ('1"s', 'time: unknown unit "\\"s" in duration "1\\"s"'),
        ("5é", 'time: unknown unit "\\xc3\\xa9" in duration "5\\xc3\\xa9"'),
        ("\ufffd", 'time: invalid duration "\\xef\\xbf\\xbd"'),
        ("1\ts", 'time: unknown unit "\\x09s" in duration "1\\x09s"'),
    ],
)
def test_parse_duration_error_quoting(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_go_duration(text)
    assert str(info.value) == message


# durationTests (Duration.String)
FORMAT = [
    ("0s", 0),
    ("1ns", 1 * NS),
    ("1.1\u00b5s", 1100 * NS),
    ("2.2ms", 2200 * US),
    ("3.3s", 3300 * MS),
    ("4m5s", 4 * M + 5 * S),
    ("4m5.001s", 4 * M + 5001 * MS),
    ("5h6m7.001s", 5 * H + 6 * M + 7001 * MS),
    ("8m0.000000001s", 8 * M + 1 * NS),
    ("2562047h47m16.854775807s", (1 << 63) - 1),
    ("-2562047h47m16.854775808s", -(1 << 63)),
    # more, from the same algorithm
    ("999ns", 999),
    ("1\u00b5s", 1000),
    ("999.999\u00b5s", 999_999),
    ("1ms", MS),
    ("999.999999ms", S - 1),
    ("1s", S),
    ("1m0s", M),
    ("1h0m0s", H),
    ("5m0s", 5 * M),
    ("24h0m0s", 24 * H),
    ("1h0m0.5s", H + 500 * MS),
]


@pytest.mark.parametrize(("text", "nanoseconds"), FORMAT)
def test_duration_string(text: str, nanoseconds: int) -> None:
    assert format_go_duration(nanoseconds) == text
    if nanoseconds > 0:
        assert format_go_duration(-nanoseconds) == "-" + text


def test_forever_is_max_int64() -> None:
    assert FOREVER == (1 << 63) - 1
    assert format_go_duration(FOREVER) == "2562047h47m16.854775807s"


def test_micro_sign_is_u00b5() -> None:
    # Go writes "µs" with U+00B5, not U+03BC.
    assert format_go_duration(1500) == "1.5\u00b5s"


def test_parse_duration_round_trip() -> None:
    # TestParseDurationRoundTrip: millisecond resolution round-trips exactly.
    rng = random.Random(1234)
    for _ in range(200):
        d0 = rng.randrange(0, 1 << 31) * MS
        assert parse_go_duration(format_go_duration(d0)) == d0


@pytest.mark.parametrize("nanoseconds", [1, 999, 1_001, 123_456_789, S + 1, 3 * H + 1, (1 << 63) - 1, -(1 << 63)])
def test_format_then_parse_is_exact(nanoseconds: int) -> None:
    assert parse_go_duration(format_go_duration(nanoseconds)) == nanoseconds
