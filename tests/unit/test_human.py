"""Human-readable numbers, sizes and times, ported from Ollama's ``format/bytes_test.go``,
``format/format_test.go`` and ``format/time_test.go``."""

from __future__ import annotations

import datetime as dt

import pytest

from pollama.gocompat.human import human_bytes, human_duration, human_number, human_time

# --- TestHumanBytes -------------------------------------------------------------------------------

HUMAN_BYTES = [
    # bytes (B)
    (0, "0 B"),
    (1, "1 B"),
    (999, "999 B"),
    # kilobytes (KB)
    (1000, "1 KB"),
    (1500, "1.5 KB"),
    (999999, "999 KB"),
    # megabytes (MB)
    (1000000, "1 MB"),
    (1500000, "1.5 MB"),
    (999999999, "999 MB"),
    # gigabytes (GB)
    (1000000000, "1 GB"),
    (1500000000, "1.5 GB"),
    (999999999999, "999 GB"),
    # terabytes (TB)
    (1000000000000, "1 TB"),
    (1500000000000, "1.5 TB"),
    (1999999999999, "2.0 TB"),
    # fractional values
    (1234, "1.2 KB"),
    (1234567, "1.2 MB"),
    (1234567890, "1.2 GB"),
    # more from the same rules: >= 10 truncates, < 10 keeps one decimal unless whole
    (9999, "10.0 KB"),
    (10000, "10 KB"),
    (10999, "10 KB"),
    (42_000_000_000, "42 GB"),
    (4_700_000_000, "4.7 GB"),
    (4_000_000_000, "4 GB"),
    (4_050_000_000, "4.0 GB"),
    (4_060_000_000, "4.1 GB"),
    (270_000_000, "270 MB"),
    (2_019_377_376, "2.0 GB"),
    (1_500_000_000_000_000, "1500 TB"),
    (-5, "-5 B"),
]


@pytest.mark.parametrize(("size", "text"), HUMAN_BYTES)
def test_human_bytes(size: int, text: str) -> None:
    assert human_bytes(size) == text


# --- TestHumanNumber ------------------------------------------------------------------------------

HUMAN_NUMBER = [
    (0, "0"),
    (999, "999"),
    (1000, "1K"),
    (1001, "1K"),
    (1000000, "1M"),
    (125000000, "125M"),
    (500500000, "500.50M"),
    (500550000, "500.55M"),
    (1000000000, "1B"),
    (2800000000, "2.8B"),
    (2850000000, "2.9B"),
    (1000000000000, "1000B"),
    # more from the same rules
    (1499, "1K"),
    (1500, "2K"),  # %.0f rounds half to even
    (2500, "2K"),
    (999_999, "1000K"),
    (134_515_008, "134.52M"),
    (135_000_000, "135M"),
    (22_570_000, "22.57M"),
    (7_000_000_000, "7B"),
    (7_615_616_512, "7.6B"),
    (8_030_261_248, "8.0B"),
]


@pytest.mark.parametrize(("count", "text"), HUMAN_NUMBER)
def test_human_number(count: int, text: str) -> None:
    assert human_number(count) == text


# --- humanDuration --------------------------------------------------------------------------------

SECOND = dt.timedelta(seconds=1)
MINUTE = dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)

HUMAN_DURATION = [
    (dt.timedelta(0), "Less than a second"),
    (dt.timedelta(milliseconds=999), "Less than a second"),
    (SECOND, "1 second"),
    (dt.timedelta(milliseconds=1999), "1 second"),
    (2 * SECOND, "2 seconds"),
    (59 * SECOND + dt.timedelta(milliseconds=999), "59 seconds"),
    (MINUTE, "About a minute"),
    (119 * SECOND, "About a minute"),
    (2 * MINUTE, "2 minutes"),
    (59 * MINUTE + 59 * SECOND, "59 minutes"),
    (HOUR, "About an hour"),
    (89 * MINUTE, "About an hour"),
    (90 * MINUTE, "2 hours"),  # math.Round(1.5) = 2
    (150 * MINUTE, "3 hours"),  # math.Round(2.5) = 3 (half away from zero, not to even)
    (210 * MINUTE, "4 hours"),  # math.Round(3.5) = 4
    (47 * HOUR + 29 * MINUTE, "47 hours"),
    (47 * HOUR + 30 * MINUTE, "2 days"),
    (48 * HOUR, "2 days"),
    (335 * HOUR, "13 days"),
    (14 * DAY, "2 weeks"),
    (59 * DAY + 23 * HOUR, "8 weeks"),
    (60 * DAY, "2 months"),
    (729 * DAY + 23 * HOUR, "24 months"),
    (730 * DAY, "2 years"),
    # rounding moves 17519.6h to the "years" branch, which then truncates: Go prints "1 years"
    (17519 * HOUR + 36 * MINUTE, "1 years"),
    (3650 * DAY, "10 years"),
]


@pytest.mark.parametrize(("delta", "text"), HUMAN_DURATION)
def test_human_duration(delta: dt.timedelta, text: str) -> None:
    assert human_duration(delta) == text


# --- TestHumanTime --------------------------------------------------------------------------------

NOW = dt.datetime(2025, 6, 1, 12, 0, 0, tzinfo=dt.UTC)


def test_human_time_zero_value() -> None:
    assert human_time(None, "never") == "never"
    assert human_time(None) == "Never"


@pytest.mark.parametrize(
    ("offset", "text"),
    [
        # time_test.go
        (48 * HOUR, "2 days from now"),
        (-48 * HOUR, "2 days ago"),
        (dt.timedelta(milliseconds=800), "Less than a second from now"),
        (24 * HOUR * 365 * 200, "Forever"),
        # more
        (dt.timedelta(0), "Less than a second ago"),
        (-14 * DAY, "2 weeks ago"),
        (4 * MINUTE + 30 * SECOND, "4 minutes from now"),
        (-5 * MINUTE, "5 minutes ago"),
        (-HOUR, "About an hour ago"),
        (-3 * 365 * DAY, "3 years ago"),
        (-200 * 365 * DAY, "200 years ago"),
        # "Forever" needs int(hours)/24/365 < -20, i.e. at least 21 whole years ahead
        (20 * 365 * DAY, "20 years from now"),
        (21 * 365 * DAY - HOUR, "20 years from now"),
        (21 * 365 * DAY, "Forever"),
    ],
)
def test_human_time(offset: dt.timedelta, text: str) -> None:
    assert human_time(NOW + offset, now=NOW) == text


def test_human_time_uses_current_time_by_default() -> None:
    assert human_time(dt.datetime.now(dt.UTC) - 3 * DAY - MINUTE) == "3 days ago"
    assert human_time(dt.datetime.now(dt.UTC) + 200 * 365 * DAY) == "Forever"


def test_human_time_across_time_zones() -> None:
    moment = dt.datetime(2025, 6, 1, 14, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert human_time(moment - 2 * HOUR, now=NOW) == "2 hours ago"
