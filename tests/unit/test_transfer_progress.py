"""pollama.cli.progress.Bar and pollama.cli.transfer.follow: pull/push progress as Ollama draws it.

Go references: progress/bar.go (Bar.String, Set, rate, formatDuration), cmd/cmd.go (PullHandler, PushHandler).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from rich.console import Console

from pollama.cli.progress import Bar, Progress, Spinner, _eta
from pollama.cli.transfer import follow

MB = 1_000_000
WIDTH = 80


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def bar_at(clock: Clock, total: int, *, initial: int = 0, message: str = "pulling abc:") -> Bar:
    return Bar(message, total, initial, clock=clock)


def set_at(bar: Bar, clock: Clock, seconds: float, value: int) -> None:
    clock.now = 100.0 + seconds
    bar.set(value)


# --- Bar ---------------------------------------------------------------------------------------------------------


def test_running_line(clock: Clock) -> None:
    bar = bar_at(clock, 98 * MB)
    set_at(bar, clock, 3.4, 41 * MB)  # one sample, 3 s (rounded) after the start: 13.67 MB/s, 4.17 s left
    line = bar.render(WIDTH)
    assert line == "pulling abc:  42% ▕" + "█" * 11 + " " * 16 + "▏  41 MB/ 98 MB   13 MB/s      4s"


def test_finished_line_shows_only_the_total(clock: Clock) -> None:
    bar = bar_at(clock, 98 * MB)
    set_at(bar, clock, 3.4, 41 * MB)
    set_at(bar, clock, 8.0, 98 * MB)
    assert bar.stopped
    line = bar.render(WIDTH)
    assert line == "pulling abc: 100% ▕" + "█" * 27 + "▏  98 MB" + " " * 25


@pytest.mark.parametrize("width", [80, 100, 132])
def test_rendered_width_follows_the_given_width(clock: Clock, width: int) -> None:
    # Ollama's bar takes "termWidth - len(pre) - len(suffix) - 5" for the bar, then adds 4 characters
    # (" ▕", "▏ "), so the line is one column narrower than the terminal; pollama keeps that formula.
    bar = bar_at(clock, 98 * MB)
    assert len(bar.render(width)) == width - 1  # no samples yet
    set_at(bar, clock, 0.2, 10 * MB)
    assert len(bar.render(width)) == width - 1
    set_at(bar, clock, 3.4, 41 * MB)
    assert len(bar.render(width)) == width - 1
    set_at(bar, clock, 4000.0, 97 * MB)
    assert len(bar.render(width)) == width - 1
    set_at(bar, clock, 4001.0, 98 * MB)
    assert bar.stopped
    assert len(bar.render(width)) == width - 1


def test_default_width_is_80(clock: Clock) -> None:
    bar = bar_at(clock, 98 * MB)
    set_at(bar, clock, 3.4, 41 * MB)
    assert bar.render() == bar.render(80)


def test_no_rate_before_a_second_has_passed(clock: Clock) -> None:
    bar = bar_at(clock, 98 * MB)
    set_at(bar, clock, 0.4, 41 * MB)  # round(0.4) == 0 s: no rate, no ETA
    line = bar.render(WIDTH)
    assert line.endswith("▏  41 MB/ 98 MB" + " " * 18)
    assert "/s" not in line


def test_no_samples_no_rate(clock: Clock) -> None:
    bar = bar_at(clock, 1000)
    assert bar.rate() == 0.0
    assert bar.render(WIDTH).endswith("▏    0 B/  1 KB" + " " * 18)


def test_rate_from_one_sample_a_second(clock: Clock) -> None:
    bar = bar_at(clock, 1000 * MB)
    set_at(bar, clock, 0.0, 0)
    set_at(bar, clock, 0.5, 50 * MB)  # within a second of the last sample: not sampled
    set_at(bar, clock, 1.0, 100 * MB)  # exactly a second: not sampled (needs more than a second)
    assert [sample.value for sample in bar.samples] == [0]
    set_at(bar, clock, 1.1, 110 * MB)
    assert [(round(sample.at - 100.0, 1), sample.value) for sample in bar.samples] == [(0.0, 0), (1.1, 110 * MB)]
    assert bar.rate() == 110 * MB  # 110 MB over round(1.1) == 1 s
    set_at(bar, clock, 1.5, 500 * MB)  # the value shows, the rate keeps the last sample
    assert bar.current == 500 * MB
    assert bar.rate() == 110 * MB


def test_rate_follows_the_last_ten_samples(clock: Clock) -> None:
    bar = bar_at(clock, 10_000 * MB)
    for second in range(12):
        # 1 MB/s for the first two seconds, then 10 MB/s
        value = second * MB if second <= 2 else 2 * MB + (second - 2) * 10 * MB
        set_at(bar, clock, second * 2.0, value)
    assert len(bar.samples) == 10
    assert bar.samples[0].value == 2 * MB
    # samples 2..11: 90 MB over 18 s
    assert bar.rate() == pytest.approx(90 * MB / 18)


def test_rate_of_a_resumed_bar_counts_from_the_initial_value(clock: Clock) -> None:
    bar = bar_at(clock, 100 * MB, initial=40 * MB)
    assert bar.current == 40 * MB
    assert not bar.stopped
    set_at(bar, clock, 2.0, 60 * MB)
    assert bar.rate() == 10 * MB
    assert bar.render(WIDTH).endswith("  60 MB/100 MB   10 MB/s      4s")


def test_a_bar_starting_complete_is_stopped(clock: Clock) -> None:
    bar = bar_at(clock, 5 * MB, initial=5 * MB)
    assert bar.stopped
    assert bar.rate() == 0.0
    assert bar.render(WIDTH) == "pulling abc: 100% ▕" + "█" * 27 + "▏   5 MB" + " " * 25


def test_values_past_the_total_are_clamped(clock: Clock) -> None:
    bar = bar_at(clock, 10 * MB)
    set_at(bar, clock, 2.0, 15 * MB)
    assert bar.current == 10 * MB
    assert bar.percent() == 100.0
    assert bar.stopped
    assert bar.stopped_at == 102.0


def test_stop_time_is_the_first_completion(clock: Clock) -> None:
    bar = bar_at(clock, 10 * MB)
    set_at(bar, clock, 2.0, 10 * MB)
    set_at(bar, clock, 9.0, 10 * MB)
    assert bar.stopped_at == 102.0
    assert bar.rate() == 5 * MB


def test_zero_total(clock: Clock) -> None:
    bar = bar_at(clock, 0)
    assert bar.percent() == 0.0
    assert bar.stopped
    line = bar.render(WIDTH)
    assert line == "pulling abc:   0% ▕" + " " * 27 + "▏    0 B" + " " * 25


def test_message_is_trimmed_and_optional(clock: Clock) -> None:
    bar = Bar("  pushing abc...  ", 100, clock=clock)
    assert bar.render(WIDTH).startswith("pushing abc...   0% ▕")
    bare = Bar("", 100, clock=clock)
    assert bare.render(WIDTH).startswith("  0% ▕")
    assert len(bare.render(WIDTH)) == WIDTH - 1


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (4, "4s"),
        (59, "59s"),
        (60, "1m0s"),
        (150, "2m30s"),
        (3599, "59m59s"),
        (3600, "1h0m"),
        (3900, "1h5m"),
        (3959, "1h5m"),
        (99 * 3600 + 59 * 60 + 59, "99h59m"),
        (100 * 3600, "99h+"),
        (10**9, "99h+"),
    ],
)
def test_eta_has_at_most_two_units(seconds: float, text: str) -> None:
    assert _eta(seconds) == text


def test_long_eta_in_the_line(clock: Clock) -> None:
    bar = bar_at(clock, 10_000 * MB)
    set_at(bar, clock, 10.0, 10 * MB)  # 1 MB/s, 9990 s left
    assert bar.render(WIDTH).endswith("  10 MB/ 10 GB    1 MB/s   2h46m")
    clock.now = 100.0
    slow = bar_at(clock, 1000 * MB)
    set_at(slow, clock, 100.0, 1000)  # 10 B/s
    assert slow.render(WIDTH).endswith("   10 B/s    99h+")


# Ollama: time.Duration(int64(remaining/rate)) * time.Second, so the ETA is truncated, not rounded.
def test_eta_truncates_to_whole_seconds(clock: Clock) -> None:
    bar = bar_at(clock, 77 * MB)
    set_at(bar, clock, 3.0, 30 * MB)  # 10 MB/s, 4.7 s left: Ollama shows 4s
    assert bar.render(WIDTH).endswith("  10 MB/s      4s")


# Ollama: Duration.Round(time.Second) rounds halves away from zero (Python's round() would give 2 s here).
def test_rate_rounds_half_seconds_up(clock: Clock) -> None:
    bar = bar_at(clock, 100 * MB)
    set_at(bar, clock, 2.5, 60 * MB)  # Ollama: 60 MB over 3 s = 20 MB/s, 2 s left
    assert bar.render(WIDTH).endswith("  20 MB/s      2s")


# --- follow ------------------------------------------------------------------------------------------------------

A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64


def make_progress() -> tuple[Progress, io.StringIO]:
    out = io.StringIO()
    return Progress(console=Console(file=out, force_terminal=False, width=80)), out


def bars_of(progress: Progress) -> list[Bar]:
    return [state for state in progress.states if isinstance(state, Bar)]


def kinds(progress: Progress) -> list[str]:
    return [
        f"bar {state.message} {state.current}/{state.total}" if isinstance(state, Bar) else f"spinner {state.message}"
        for state in progress.states
    ]


def done_line(label: str, size: str) -> str:
    """A finished bar as a non-terminal prints it (80 columns, trailing padding stripped)."""
    pre = f"{label} 100%"
    room = 80 - len(pre) - 31 - 5
    return f"{pre} ▕{'█' * room}▏ {size.rjust(6)}"


PULL = [
    {"status": "pulling manifest"},
    {"status": "pulling manifest"},
    {"status": "pulling aaaaaaaaaaaa", "digest": A, "total": 1000, "completed": 0},
    {"status": "pulling bbbbbbbbbbbb", "digest": B, "total": 500},
    {"status": "pulling aaaaaaaaaaaa", "digest": A, "total": 1000, "completed": 400},
    {"status": "pulling aaaaaaaaaaaa", "digest": A, "total": 1000, "completed": 1000},
    {"status": "pulling bbbbbbbbbbbb", "digest": B, "total": 500, "completed": 500},
    {"status": "verifying sha256 digest"},
    {"status": "writing manifest"},
    {"status": "success"},
]

PULL_OUTPUT = [
    "pulling manifest",
    done_line("pulling aaaaaaaaaaaa:", "1 KB"),
    done_line("pulling bbbbbbbbbbbb:", "500 B"),
    "verifying sha256 digest",
    "writing manifest",
    "success",
]


def test_pull_states() -> None:
    progress, _ = make_progress()
    follow(iter(PULL), progress, pulling=True)
    assert kinds(progress) == [
        "spinner pulling manifest",
        "bar pulling aaaaaaaaaaaa: 1000/1000",
        "bar pulling bbbbbbbbbbbb: 500/500",
        "spinner verifying sha256 digest",
        "spinner writing manifest",
        "spinner success",
    ]
    spinners = [state for state in progress.states if isinstance(state, Spinner)]
    assert all(spinner.stopped for spinner in spinners[:-1])
    progress.stop()


def test_pull_output_without_a_terminal() -> None:
    progress, out = make_progress()
    follow(iter(PULL), progress, pulling=True)
    progress.stop()
    assert out.getvalue().splitlines() == PULL_OUTPUT
    assert done_line("pulling aaaaaaaaaaaa:", "1 KB") == (
        "pulling aaaaaaaaaaaa: 100% ▕██████████████████▏   1 KB"  # the arithmetic spelled out once
    )


def test_each_line_is_printed_once_when_it_is_finished() -> None:
    progress, out = make_progress()
    seen: list[list[str]] = []

    def events() -> Iterator[dict[str, Any]]:
        for event in PULL:
            yield event
            seen.append(out.getvalue().splitlines())

    follow(events(), progress, pulling=True)
    assert (
        seen
        == [
            [],  # the manifest spinner is running
            [],
            [],
            [],
            PULL_OUTPUT[:1],  # the first bar finishes the spinner
            PULL_OUTPUT[:1],  # a finished bar waits for the next line
            PULL_OUTPUT[:2],
            PULL_OUTPUT[:3],
            PULL_OUTPUT[:4],
            PULL_OUTPUT[:5],
        ]
    )
    progress.stop()
    assert out.getvalue().splitlines() == PULL_OUTPUT
    progress.stop()  # stopping twice prints nothing more
    assert out.getvalue().splitlines() == PULL_OUTPUT


def test_pull_announcements_alone_make_no_bars() -> None:
    progress, out = make_progress()
    follow(
        iter(
            [
                {"status": "pulling manifest"},
                {"status": "pulling aaaaaaaaaaaa", "digest": A, "total": 1000, "completed": 0},
                {"status": "pulling bbbbbbbbbbbb", "digest": B, "total": 500, "completed": None},
                {"status": "pulling bbbbbbbbbbbb", "digest": B, "total": 500},
            ]
        ),
        progress,
        pulling=True,
    )
    assert bars_of(progress) == []
    assert kinds(progress) == ["spinner pulling manifest"]
    progress.stop()
    assert out.getvalue() == "pulling manifest\n"


def test_one_bar_per_digest() -> None:
    progress, _ = make_progress()
    events = [{"digest": digest, "total": 100, "completed": done} for done in (10, 20, 30) for digest in (A, B)]
    follow(iter(events), progress, pulling=True)
    bars = bars_of(progress)
    assert [bar.message for bar in bars] == ["pulling aaaaaaaaaaaa:", "pulling bbbbbbbbbbbb:"]
    assert [bar.current for bar in bars] == [30, 30]
    # a bar starts where its first visible line was
    assert [bar.initial for bar in bars] == [10, 10]
    progress.stop()


def test_spinner_per_status_change() -> None:
    progress, _ = make_progress()
    statuses = ["a", "a", "b", "b", "b", "a", "c", "c"]
    follow(iter({"status": status} for status in statuses), progress, pulling=True)
    assert kinds(progress) == ["spinner a", "spinner b", "spinner a", "spinner c"]
    progress.stop()


def test_status_between_bars_is_not_repeated() -> None:
    # The status is remembered across bars, as in Ollama: the same status after a bar makes no new spinner.
    progress, _ = make_progress()
    events = [
        {"status": "pulling manifest"},
        {"status": "pulling x", "digest": A, "total": 10, "completed": 10},
        {"status": "pulling manifest"},
        {"status": "done"},
    ]
    follow(iter(events), progress, pulling=True)
    assert kinds(progress) == ["spinner pulling manifest", "bar pulling aaaaaaaaaaaa: 10/10", "spinner done"]
    progress.stop()


def test_unfinished_bar_holds_later_lines_until_the_end() -> None:
    progress, out = make_progress()
    events = [
        {"status": "pulling manifest"},
        {"digest": A, "total": 1000, "completed": 400},
        {"status": "retrying"},
    ]
    follow(iter(events), progress, pulling=True)
    assert out.getvalue().splitlines() == ["pulling manifest"]
    progress.stop()
    lines = out.getvalue().splitlines()
    assert lines[0] == "pulling manifest"
    assert lines[1].startswith("pulling aaaaaaaaaaaa:  40% ▕")
    assert lines[1].endswith("▏  400 B/  1 KB")
    assert len(lines[1]) <= 79
    assert lines[2:] == ["retrying"]


def test_push_makes_bars_from_zero() -> None:
    progress, out = make_progress()
    events = [
        {"status": "retrieving manifest"},
        {"digest": A, "total": 1000, "completed": 0},
        {"digest": A, "total": 1000, "completed": 1000},
        {"status": "pushing manifest"},
        {"status": "success"},
    ]
    follow(iter(events), progress, pulling=False)
    bars = bars_of(progress)
    assert [bar.message for bar in bars] == ["pushing aaaaaaaaaaaa..."]
    assert bars[0].initial == 0
    progress.stop()
    assert out.getvalue().splitlines() == [
        "retrieving manifest",
        done_line("pushing aaaaaaaaaaaa...", "1 KB"),
        "pushing manifest",
        "success",
    ]


def test_push_bar_label_is_the_status_else_ollamas_fallback() -> None:
    # Ollama's PushHandler: msg := resp.Status; if msg == "" { msg = fmt.Sprintf("pushing %s...", digest[7:19]) }
    progress, _ = make_progress()
    events = [
        {"status": f"pushing {A[7:19]}", "digest": A, "total": 1000, "completed": 0},
        {"status": "", "digest": B, "total": 1000, "completed": 0},
    ]
    follow(iter(events), progress, pulling=False)
    assert [bar.message for bar in bars_of(progress)] == [f"pushing {A[7:19]}", f"pushing {B[7:19]}..."]
    progress.stop()


# Lines are text, never rich markup: "[...]" must not vanish and "[/]" must not raise MarkupError.
@pytest.mark.parametrize("status", ["pulling [model] layer", "odd [/] status", "[bold]x[/bold]"])
def test_status_text_is_printed_verbatim(status: str) -> None:
    progress, out = make_progress()
    follow(iter([{"status": status}]), progress, pulling=True)
    progress.stop()
    assert out.getvalue() == status + "\n"
