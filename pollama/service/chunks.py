"""What the service answers with: pieces of text, thinking, tool calls, and at the end the totals."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Chunk", "Stats"]


@dataclass(frozen=True)
class Stats:
    """The timings and counts of one answer, in nanoseconds and tokens, as Ollama reports them."""

    total_duration: int
    load_duration: int
    prompt_eval_count: int
    prompt_cached_count: int  # beyond Ollama: how much of the prompt the cache saved
    prompt_eval_duration: int
    eval_count: int
    eval_duration: int

    def fields(self) -> dict[str, int]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Chunk:
    """One piece of an answer; the last has ``done``, its reason and (after a run) its ``stats``."""

    text: str = ""
    thinking: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # Ollama's shape, with ``call_`` ids
    logprobs: list[dict[str, Any]] | None = None
    done: bool = False
    done_reason: str | None = None
    stats: Stats | None = None
    context: list[int] | None = None  # generate's deprecated token history
    truncated: bool = False  # beyond Ollama: the prompt lost older messages to fit the context
    rendered: str | None = None  # ``debug_render_only``: the prompt that would have run
