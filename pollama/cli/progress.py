"""Progress lines on stderr, drawn as Ollama draws them: one line per step, spinner while running.

On a terminal the lines animate in place (rich ``Live``); otherwise each line
is printed once, when the step finishes.
"""

from __future__ import annotations

import time

from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

__all__ = ["Progress", "Spinner"]

_FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


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


class Progress:
    """A stack of progress lines; ``spin`` finishes the current line and starts a new one."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True, highlight=False)
        self.states: list[Spinner] = []
        self._printed = 0
        self._live: Live | None = None
        if self.console.is_terminal:
            self._live = Live(self, console=self.console, refresh_per_second=10, transient=False)
            self._live.start()

    def __rich__(self) -> Group:
        return Group(*(Text(state.render()) for state in self.states))

    def spin(self, message: str) -> Spinner:
        self._finish_current()
        spinner = Spinner(message)
        self.states.append(spinner)
        return spinner

    def _finish_current(self) -> None:
        if self.states:
            self.states[-1].stop()
        if self._live is None:
            for state in self.states[self._printed :]:
                if state.stopped:
                    self.console.print(state.render().rstrip(), soft_wrap=True)
                    self._printed += 1

    def stop(self) -> None:
        self._finish_current()
        if self._live is not None:
            self._live.refresh()
            self._live.stop()
            self._live = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
