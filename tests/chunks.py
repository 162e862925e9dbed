"""Service chunks for the API translations' unit tests, written as briefly as native lines were."""

from __future__ import annotations

from typing import Any

from pollama.service import Chunk, Stats


def chunk(
    content: str = "",
    thinking: str = "",
    calls: Any = (),
    logprobs: list[dict[str, Any]] | None = None,
    *,
    done_reason: str | None = None,
    prompt_eval_count: int | None = None,
    eval_count: int | None = None,
    prompt_cached_count: int = 0,
) -> Chunk:
    """A chunk; given a ``done_reason`` or counts, the last one of its answer, with stats."""
    final = done_reason is not None or prompt_eval_count is not None or eval_count is not None
    stats = None
    if final:
        stats = Stats(
            total_duration=0, load_duration=0, prompt_eval_count=prompt_eval_count or 0,
            prompt_cached_count=prompt_cached_count, prompt_eval_duration=0, eval_count=eval_count or 0,
            eval_duration=0,
        )  # fmt: skip
    return Chunk(
        text=content, thinking=thinking, tool_calls=list(calls), logprobs=logprobs, done=final,
        done_reason=done_reason, stats=stats,
    )  # fmt: skip
