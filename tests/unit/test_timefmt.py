"""Timestamps as Go's ``time.Time.MarshalJSON`` writes them (RFC 3339 with trailing zeros of the
fraction trimmed), ported from Go's ``TestTimeJSON`` in ``src/time/time_test.go``."""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable, Iterator

import pytest

from pollama.gocompat.timefmt import parse_rfc3339, rfc3339_nano

S = 1_000_000_000


def unix_ns(moment: dt.datetime, nanos: int = 0) -> int:
    return int(moment.timestamp()) * S + nanos


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        # jsonTests: Date(9999, 4, 12, 23, 20, 50, 520*1e6, UTC)
        (unix_ns(dt.datetime(9999, 4, 12, 23, 20, 50, tzinfo=dt.UTC), 520_000_000), "9999-04-12T23:20:50.52Z"),
        (0, "1970-01-01T00:00:00Z"),
        (1, "1970-01-01T00:00:00.000000001Z"),
        (100_000_000, "1970-01-01T00:00:00.1Z"),
        (123_456_789, "1970-01-01T00:00:00.123456789Z"),
        (123_450_000, "1970-01-01T00:00:00.12345Z"),
        (1_221_681_866 * S, "2008-09-17T20:04:26Z"),
        (1_221_681_866 * S + 200_000_000, "2008-09-17T20:04:26.2Z"),
        (-1, "1969-12-31T23:59:59.999999999Z"),
        (-1_221_681_866 * S, "1931-04-16T03:55:34Z"),
    ],
)
def test_rfc3339_nano_utc(ns: int, text: str) -> None:
    assert rfc3339_nano(ns, utc=True) == text


@pytest.fixture
def timezone() -> Iterator[Callable[[str], None]]:
    saved = os.environ.get("TZ")

    def use(name: str) -> None:
        if not os.path.exists(os.path.join("/usr/share/zoneinfo", name)):
            pytest.skip(f"no tzdata for {name}")
        os.environ["TZ"] = name
        time.tzset()

    yield use
    if saved is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = saved
    time.tzset()


@pytest.mark.parametrize(
    ("zone", "ns", "text"),
    [
        # jsonTests: Date(1996, 12, 19, 16, 39, 57, 0, Local) in US Pacific
        ("America/Los_Angeles", 851042397 * S, "1996-12-19T16:39:57-08:00"),
        ("America/Los_Angeles", 1_221_681_866 * S, "2008-09-17T13:04:26-07:00"),  # PDT
        ("Asia/Kolkata", 0, "1970-01-01T05:30:00+05:30"),
        ("Asia/Kathmandu", 1_700_000_000 * S + 5, "2023-11-15T03:58:20.000000005+05:45"),
        ("UTC", 1_500_000_000 * S, "2017-07-14T02:40:00Z"),
    ],
)
def test_rfc3339_nano_local(timezone: Callable[[str], None], zone: str, ns: int, text: str) -> None:
    timezone(zone)
    assert rfc3339_nano(ns) == text


def test_rfc3339_nano_defaults_to_now() -> None:
    before = dt.datetime.now(dt.UTC)
    parsed = parse_rfc3339(rfc3339_nano(utc=True))
    after = dt.datetime.now(dt.UTC)
    assert before - dt.timedelta(seconds=1) <= parsed <= after + dt.timedelta(seconds=1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("9999-04-12T23:20:50.52Z", dt.datetime(9999, 4, 12, 23, 20, 50, 520000, tzinfo=dt.UTC)),
        (
            "1996-12-19T16:39:57-08:00",
            dt.datetime(1996, 12, 19, 16, 39, 57, tzinfo=dt.timezone(-dt.timedelta(hours=8))),
        ),
        ("2024-05-01T10:00:00.5+02:00", dt.datetime(2024, 5, 1, 8, 0, 0, 500000, tzinfo=dt.UTC)),
        # precision beyond microseconds is dropped (truncated)
        ("2024-05-01T10:00:00.123456789Z", dt.datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=dt.UTC)),
        ("1970-01-01T00:00:00.000000001Z", dt.datetime(1970, 1, 1, tzinfo=dt.UTC)),
        ("2023-11-15T04:28:20+05:45", dt.datetime(2023, 11, 14, 22, 43, 20, tzinfo=dt.UTC)),
    ],
)
def test_parse_rfc3339(text: str, expected: dt.datetime) -> None:
    parsed = parse_rfc3339(text)
    assert parsed == expected
    assert parsed.utcoffset() is not None


@pytest.mark.parametrize("ns", [0, 1_000, 1_700_000_000 * S + 123_456_000, -5 * S + 250_000_000])
def test_round_trip_at_microsecond_precision(ns: int) -> None:
    parsed = parse_rfc3339(rfc3339_nano(ns, utc=True))
    assert parsed == dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=ns // 1000)
