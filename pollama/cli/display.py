"""How ``run`` shows an answer: word wrapping, the thinking block, and ``--verbose`` statistics."""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass, field
from typing import Any, TextIO

from pollama.gocompat.durations import format_go_duration

__all__ = ["AnswerPrinter", "print_summary", "wrap_width"]

GREY, BOLD, RESET = "\033[90m", "\033[1m", "\033[0m"


def wrap_width() -> int:
    """Ollama wraps at the terminal's width less 5 (80 when unknown)."""
    columns = shutil.get_terminal_size((0, 0)).columns
    return columns - 5 if columns > 5 else 80


@dataclass
class AnswerPrinter:
    """Streams thinking and content to ``out``, wrapping words at ``width`` (0: no wrapping)."""

    out: TextIO = field(default_factory=lambda: sys.stdout)
    width: int = 0
    hide_thinking: bool = False
    plain: bool = True  # no colours (not a terminal)
    _column: int = 0
    _word: str = ""
    _thinking: bool = False
    _thought: str = ""

    def thinking(self, text: str) -> None:
        if not text or self.hide_thinking:
            return
        if not self._thinking:
            self._thinking = True
            self.out.write("Thinking...\n" if self.plain else f"{GREY}{BOLD}Thinking...\n{RESET}{GREY}")
        self._thought += text
        self._write(text)

    def content(self, text: str) -> None:
        if not text:
            return
        self._end_thinking()
        self._write(text)

    def tool_calls(self, calls: list[dict[str, Any]]) -> None:
        self._end_thinking()
        for call in calls:
            function = call.get("function", {})
            arguments = json.dumps(function.get("arguments", {}), separators=(",", ":"))
            self._flush_word()
            self.out.write(
                f"  Model called a non-existent function '{function.get('name', '')}()' with arguments: {arguments}\n"
            )

    def finish(self) -> None:
        self._flush_word()
        self.out.flush()

    def _end_thinking(self) -> None:
        if not self._thinking:
            return
        self._thinking = False
        self._flush_word()
        if not self._thought.endswith("\n"):
            self.out.write("\n")
        self.out.write("...done thinking.\n\n" if self.plain else f"{GREY}{BOLD}...done thinking.\n\n{RESET}")
        self._column = 0

    def _write(self, text: str) -> None:
        if not self.width:
            self.out.write(text)
            self.out.flush()
            return
        for char in text:
            if char == "\n":
                self._flush_word()
                self.out.write("\n")
                self._column = 0
            elif char == " ":
                self._flush_word()
                if self._column < self.width:
                    self.out.write(" ")
                    self._column += 1
            else:
                self._word += char
        self.out.flush()

    def _flush_word(self) -> None:
        if not self._word:
            return
        if self._column and self._column + len(self._word) > self.width:
            self.out.write("\n")
            self._column = 0
        self.out.write(self._word)
        self._column += len(self._word)
        self._word = ""


def print_summary(final: dict[str, Any], out: TextIO | None = None) -> None:
    """Ollama's ``--verbose`` statistics block (``api.Metrics.Summary``), on stderr."""
    out = out or sys.stderr
    total, load = final.get("total_duration", 0), final.get("load_duration", 0)
    prompt_count, prompt_ns = final.get("prompt_eval_count", 0), final.get("prompt_eval_duration", 0)
    count, eval_ns = final.get("eval_count", 0), final.get("eval_duration", 0)
    if total > 0:
        out.write(f"total duration:       {format_go_duration(total)}\n")
    if load > 0:
        out.write(f"load duration:        {format_go_duration(load)}\n")
    if prompt_count > 0:
        out.write(f"prompt eval count:    {prompt_count} token(s)\n")
    if prompt_ns > 0:
        out.write(f"prompt eval duration: {format_go_duration(prompt_ns)}\n")
        out.write(f"prompt eval rate:     {prompt_count / (prompt_ns / 1e9):.2f} tokens/s\n")
    if count > 0:
        out.write(f"eval count:           {count} token(s)\n")
    if eval_ns > 0:
        out.write(f"eval duration:        {format_go_duration(eval_ns)}\n")
        out.write(f"eval rate:            {count / (eval_ns / 1e9):.2f} tokens/s\n")
    out.flush()
