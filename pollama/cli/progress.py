"""Progress lines on stderr, drawn as Ollama draws them: spinners for steps, bars for transfers.

On a terminal the lines animate in place (rich ``Live``); otherwise each line
is printed once, when the step finishes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from pollama.gocompat.durations import SECOND, format_go_duration
from pollama.gocompat.human import human_bytes, round_half_away

__all__ = ["Bar", "Progress", "Spinner"]

_FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
DEFAULT_WIDTH = 80


class Spinner:
    def __init__(self, message: str) -> None:
        self.message = message
        self.started = time.monotonic()
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True

    def render(self) -> str:
        if self.stopped:
            return f"{self.message.strip()} "
        frame = _FRAMES[int((time.monotonic() - self.started) * 10) % len(_FRAMES)]
        return f"{self.message.strip()} {frame} "


def _pad(text: str, width: int = 6) -> str:
    return " " * (width - len(text)) + text


def _eta(seconds: int) -> str:
    """At most two units, as Ollama's bar: ``99h+``, ``1h5m``, ``2m30s``."""
    if seconds >= 100 * 3600:
        return "99h+"
    if seconds >= 3600:
        return f"{int(seconds // 3600)}h{int(seconds // 60) % 60}m"
    return format_go_duration(seconds * SECOND)


@dataclass
class _Sample:
    at: float
    value: int


@dataclass
class Bar:
    """A transfer's line: ``pulling 4157c46799c1: 42% ▕████      ▏  41 MB/98 MB  12 MB/s  4s``."""

    message: str
    total: int
    initial: int = 0
    clock: Callable[[], float] = time.monotonic
    current: int = field(init=False)
    started: float = field(init=False)
    stopped_at: float | None = field(init=False, default=None)
    samples: list[_Sample] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.current = self.initial
        self.started = self.clock()
        if self.initial >= self.total:
            self.stopped_at = self.started

    @property
    def stopped(self) -> bool:
        return self.stopped_at is not None

    def set(self, value: int) -> None:
        now = self.clock()
        self.current = min(value, self.total)
        if self.current >= self.total and self.stopped_at is None:
            self.stopped_at = now
        # One sample a second, the last ten: the rate follows the recent speed.
        if not self.samples or now - self.samples[-1].at > 1.0:
            self.samples = [*self.samples, _Sample(now, self.current)][-10:]

    def percent(self) -> float:
        return self.current / self.total * 100 if self.total > 0 else 0.0

    def rate(self) -> float:
        if self.stopped_at is not None:
            done, seconds = self.current - self.initial, round_half_away(self.stopped_at - self.started)
        elif len(self.samples) == 1:
            done, seconds = self.samples[0].value - self.initial, round_half_away(self.samples[0].at - self.started)
        elif self.samples:
            first, last = self.samples[0], self.samples[-1]
            done, seconds = last.value - first.value, round_half_away(last.at - first.at)
        else:
            return 0.0
        return done / seconds if seconds else 0.0

    def render(self, width: int = DEFAULT_WIDTH) -> str:
        pre = (self.message.strip() + " " if self.message else "") + f"{self.percent():3.0f}%"
        rate = self.rate()
        running = not self.stopped and rate > 0
        if not self.stopped:
            suffix = _pad(human_bytes(self.current)) + "/" + _pad(human_bytes(self.total))
        else:
            suffix = _pad(human_bytes(self.total)) + " " * 7
        suffix += "  " + _pad(human_bytes(int(rate))) + "/s" if running else " " * 10
        suffix += "  " + _pad(_eta(int((self.total - self.current) / rate))) if running else " " * 8
        room = width - len(pre) - len(suffix) - 5
        filled = int(room * self.percent() / 100)
        return f"{pre} ▕{'█' * max(filled, 0)}{' ' * max(room - filled, 0)}▏ {suffix}"


class Progress:
    """A stack of progress lines; ``spin`` finishes the current line and starts a new one."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True, highlight=False)
        self.states: list[Spinner | Bar] = []
        self._printed = 0
        self._live: Live | None = None
        if self.console.is_terminal:
            self._live = Live(self, console=self.console, refresh_per_second=10, transient=False)
            self._live.start()

    def __rich__(self) -> Group:
        return Group(*(Text(self._render(state)) for state in self.states))

    def _render(self, state: Spinner | Bar) -> str:
        if isinstance(state, Bar):
            return state.render(self.console.width if self.console.is_terminal else DEFAULT_WIDTH)
        return state.render()

    def spin(self, message: str) -> Spinner:
        self._finish_current()
        spinner = Spinner(message)
        self.states.append(spinner)
        return spinner

    def bar(self, message: str, total: int, initial: int = 0) -> Bar:
        self._finish_current()
        bar = Bar(message, total, initial)
        self.states.append(bar)
        return bar

    def _finish_current(self, *, final: bool = False) -> None:
        if self.states and isinstance(self.states[-1], Spinner):
            self.states[-1].stop()
        if self._live is None:
            # Without a terminal each line is printed once, when it is done (or the display ends), in order.
            for state in self.states[self._printed :]:
                if not (state.stopped or final):
                    break
                self.console.print(Text(self._render(state).rstrip()), soft_wrap=True)
                self._printed += 1

    def stop(self) -> None:
        self._finish_current(final=True)
        if self._live is not None:
            self._live.refresh()
            self._live.stop()
            self._live = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
