"""What generate, chat and the other model-running routes share.

Finding the model, checking what the request may ask of it, getting a runner slot from the
scheduler, and turning runner events into uniform chunks. Streaming stops the moment the client
goes away: the runner is told to cancel, even while the prompt is still being evaluated.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from pollama.errors import Canceled, Failed, InvalidRequest, NotFound
from pollama.gocompat.durations import parse_keep_alive
from pollama.model.names import InvalidModelName, ModelName, parse_model_ref
from pollama.model.options import THINK_LEVELS
from pollama.runtime.options import Resolved, resolve
from pollama.runtime.process import RunnerCrashed, RunnerProcess
from pollama.runtime.scheduler import LoadedRunner
from pollama.server.cutoff import interrupted
from pollama.server.state import ServerState, state
from pollama.store import CorruptManifest
from pollama.store.models import StoredModel, load_model

__all__ = [
    "Chunk",
    "ClientGone",
    "complete",
    "find_model",
    "first",
    "history_text",
    "keep_alive_of",
    "on_runner",
    "parse_name",
    "retry_after_crash",
    "until_disconnected",
    "use_runner",
    "validate_think",
    "while_connected",
]

log = logging.getLogger(__name__)

Result = TypeVar("Result")
Item = TypeVar("Item")


class ClientGone(Canceled):
    def __init__(self) -> None:
        super().__init__("request canceled")


@dataclass
class Chunk:
    """One piece of an answer: new text, its logprobs, and on the last one the totals."""

    text: str = ""
    thinking: str = ""
    logprobs: list[dict[str, Any]] | None = None
    done: bool = False
    done_reason: str | None = None
    metrics: dict[str, int] = field(default_factory=dict)
    context: list[int] | None = None
    truncated: bool = False  # beyond Ollama: the prompt lost older messages to fit the context
    tool_calls: list[dict[str, Any]] = field(default_factory=list)


def parse_name(text: str, invalid_message: str | None = None) -> ModelName:
    """A request's model reference; a 400 with Ollama's message when it is not a name."""
    try:
        return parse_model_ref(text)
    except InvalidModelName:
        raise InvalidRequest(invalid_message or "invalid model name") from None
    except ValueError as error:
        raise InvalidRequest(str(error)) from None


async def find_model(state: ServerState, text: str, *, missing: str | None = None) -> StoredModel:
    """The stored model a request names; 404 with ``missing`` (or Ollama's usual text) when absent."""
    name = parse_name(text)
    try:
        return await run_in_threadpool(load_model, state.store, name)
    except (FileNotFoundError, CorruptManifest):
        raise NotFound(missing or f"model '{text}' not found") from None


def keep_alive_of(value: Any) -> int | None:
    try:
        return parse_keep_alive(value)
    except ValueError as error:
        raise InvalidRequest(str(error)) from None


def validate_think(name: str, think: Any, capabilities: list[str], default: Any = None) -> bool | str | None:
    """The request's ``think``, checked against the model (``name`` as the request gave it) as Ollama does.

    Without one, a thinking model thinks; beyond Ollama, a ``PARAMETER think`` (``default``) decides instead.
    """
    if think is None:
        if "thinking" not in capabilities:
            return None
        return True if default is None else default
    if not isinstance(think, bool) and think not in THINK_LEVELS:
        shown = f'"{think}"' if isinstance(think, str) else str(think)
        raise InvalidRequest(f'invalid think value: {shown} (must be "high", "medium", "low", "max", true, or false)')
    if think and "thinking" not in capabilities:
        raise InvalidRequest(f'"{name}" does not support thinking')
    return think


@contextlib.asynccontextmanager
async def use_runner(
    state: ServerState, model: StoredModel, options: dict[str, Any] | None, keep_alive: int | None
) -> AsyncIterator[tuple[LoadedRunner, Resolved]]:
    resolved = resolve(state.settings, model, options, default_num_ctx=state.scheduler.default_num_ctx)
    async with state.scheduler.runner(model, resolved.config, keep_alive) as runner:
        yield runner, resolved


async def on_runner(
    request: Request,
    body: Any,
    action: Callable[[RunnerProcess], Awaitable[Result]],
    *,
    missing: str | None = None,
    input_errors_fail: bool = False,
) -> Result:
    """Run one call on the runner of ``body.model`` (loading it), for requests that are not completions.

    ``input_errors_fail``: the runner refusing the input is a failure (500), where Ollama answers so.
    """
    if not body.model:
        raise InvalidRequest("model is required")
    server = state(request)
    model = await find_model(server, body.model, missing=missing)

    async def run() -> AsyncGenerator[Result]:
        async with use_runner(server, model, body.options, keep_alive_of(body.keep_alive)) as (runner, _resolved):
            try:
                result = await action(runner.process)
            except InvalidRequest as error:
                if input_errors_fail:
                    raise Failed(error.message) from None
                raise
            yield result

    return await while_connected(request, first(retry_after_crash(run)))


async def complete(
    runner: LoadedRunner, prompt: str, options: dict[str, Any], *, started_ns: int, load_ns: int
) -> AsyncIterator[Chunk]:
    """Run a prompt, yielding chunks as the runner streams; the last one has ``done`` and the metrics."""
    events = runner.process.completion(prompt, options)
    try:
        if True:
            async for event in events:
                if event["event"] == "token":
                    yield Chunk(text=event["text"], logprobs=event.get("logprobs"))
                    continue
                metrics = {
                    "total_duration": time.perf_counter_ns() - started_ns,
                    "load_duration": load_ns,
                    "prompt_eval_count": event["prompt_eval_count"],
                    "prompt_cached_count": event.get("prompt_cached_count", 0),
                    "prompt_eval_duration": event["prompt_eval_duration"],
                    "eval_count": event["eval_count"],
                    "eval_duration": event["eval_duration"],
                }
                yield Chunk(
                    text=event.get("text", ""),
                    done=True,
                    done_reason=event["done_reason"],
                    metrics=metrics,
                    context=event.get("context"),
                )
    finally:
        await events.aclose()


async def history_text(runner: RunnerProcess, context: list[int]) -> str:
    """Generate's deprecated ``context`` as text; an id outside the vocabulary is the request's fault (400)."""
    return await runner.detokenize(context)


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


def until_disconnected(request: Request, items: AsyncIterator[Item]) -> AsyncIterator[Item]:
    """Pass ``items`` through until the client disconnects; then close them (cancelling the work), 499."""
    return interrupted(items, lambda: _disconnected(request), ClientGone)


async def while_connected(request: Request, work: Awaitable[Result]) -> Result:
    """Await ``work`` (a whole non-streamed answer) unless the client leaves first: then cancel it, 499."""

    async def single() -> AsyncIterator[Result]:
        yield await work

    async for result in until_disconnected(request, single()):
        return result
    raise ClientGone


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass
