"""Getting a runner slot from the scheduler, running on it, and trying once more after a crash."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any, TypeVar

from pollama.config import Settings
from pollama.errors import Failed
from pollama.metrics import NO_METRICS, Metrics
from pollama.runner.messages import CompletionRequest, TokenEvent
from pollama.runtime.options import Resolved, resolve
from pollama.runtime.process import RunnerCrashed, RunnerProcess
from pollama.runtime.scheduler import LoadedRunner, Scheduler
from pollama.service.chunks import Chunk, Stats
from pollama.store.models import StoredModel

__all__ = ["complete", "first", "retry_after_crash", "use_runner"]

log = logging.getLogger(__name__)

Item = TypeVar("Item")


@contextlib.asynccontextmanager
async def use_runner(
    settings: Settings,
    scheduler: Scheduler,
    model: StoredModel,
    options: dict[str, Any] | None,
    keep_alive: int | None,
) -> AsyncIterator[tuple[LoadedRunner, Resolved]]:
    """A slot on a runner of ``model`` with the request's ``options`` (loading it if need be)."""
    resolved = resolve(settings, model, options, default_num_ctx=scheduler.default_num_ctx)
    async with scheduler.runner(model, resolved.config, keep_alive) as runner:
        yield runner, resolved


async def complete(
    runner: RunnerProcess,
    request: CompletionRequest,
    *,
    started_ns: int,
    load_ns: int,
    model: str = "",
    metrics: Metrics = NO_METRICS,
) -> AsyncIterator[Chunk]:
    """Run a prompt, yielding chunks as the runner streams; the last one has ``done`` and the stats.

    ``metrics`` hears, under ``model``, when the first token came and the finished answer's token counts.
    """
    first_token = True
    async with contextlib.aclosing(runner.completion(request)) as events:
        async for event in events:
            if first_token and (isinstance(event, TokenEvent) or event.eval_count > 0):
                first_token = False
                metrics.first_token(model, (time.perf_counter_ns() - started_ns) / 1e9)
            if isinstance(event, TokenEvent):
                yield Chunk(text=event.text, logprobs=event.logprobs)
                continue
            metrics.tokens(model, prompt=event.prompt_eval_count, generated=event.eval_count)
            stats = Stats(
                total_duration=time.perf_counter_ns() - started_ns,
                load_duration=load_ns,
                prompt_eval_count=event.prompt_eval_count,
                prompt_cached_count=event.prompt_cached_count,
                prompt_eval_duration=event.prompt_eval_duration,
                eval_count=event.eval_count,
                eval_duration=event.eval_duration,
            )
            context = list(event.context) if event.context is not None else None
            yield Chunk(text=event.text, done=True, done_reason=event.done_reason, stats=stats, context=context)


async def first(items: AsyncGenerator[Item]) -> Item:
    """The first item of ``items`` (which must yield one), closing it afterwards."""
    try:
        return await anext(items)
    finally:
        await items.aclose()


async def retry_after_crash(attempt: Callable[[], AsyncGenerator[Item]]) -> AsyncGenerator[Item]:
    """Pass on what ``attempt()`` yields; if its runner crashed before finishing any decode, attempt once more.

    Such a crash comes before any output (the runner had produced none), and the scheduler has taken
    note: the model is loaded again in a safer configuration (``runtime.fallback``).
    """
    for last in (False, True):
        try:
            async with contextlib.aclosing(attempt()) as items:
                async for item in items:
                    yield item
            return
        except RunnerCrashed as crash:
            if last:
                raise Failed(crash.message) from None
            log.warning("a runner crashed before its first answer (%s); running the request again", crash.cause)
