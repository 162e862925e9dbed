"""Chat and generate: check the request against the model, fit the prompt, run it, split the answer."""

from __future__ import annotations

import re
import secrets
import string
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from pollama.api.native import ChatRequest, GenerateRequest
from pollama.config import Settings
from pollama.errors import Failed, InvalidRequest, NotFound
from pollama.model.capabilities import capabilities_of
from pollama.parsers.thinking import ThinkingParser
from pollama.parsers.tools import ToolCallParser, closing_tag, tool_call_tag
from pollama.runner.messages import NO_IMAGE_INPUT, CompletionRequest, Control, ImageInput, Sampling
from pollama.runtime.options import Resolved
from pollama.runtime.process import RunnerProcess
from pollama.runtime.scheduler import Scheduler
from pollama.service.chunks import Chunk
from pollama.service.images import decode_images
from pollama.service.lookup import find_model, keep_alive_of, validate_think
from pollama.service.running import complete, retry_after_crash, use_runner
from pollama.service.structured import FormatError, grammar_for_format, tool_call_grammar
from pollama.store import Store
from pollama.store.models import StoredModel
from pollama.templates.prompt import (
    IMAGE_TOKENS,
    RenderedPrompt,
    Tokenize,
    fill_in_middle_prompt,
    fitted_chat_prompt,
)

__all__ = ["RAW_CONFLICT", "Answer", "AnswerService"]

RAW_CONFLICT = "raw mode does not support template, system, or context"
_ID_ALPHABET = string.ascii_lowercase + string.digits
_SPECIAL_TAG = re.compile(r"<[^<>\s\"]+>")

Result = TypeVar("Result")


@dataclass(frozen=True)
class Answer:
    """The chunks of an answer, produced as they are read (reading them runs the model).

    ``single``: the answer is one object even when streaming was asked for (a load, an unload, a
    rendered template), as Ollama answers those.
    """

    chunks: AsyncGenerator[Chunk]
    single: bool = False


@dataclass(frozen=True)
class _Prompt:
    """A request's prompt before it meets a runner: fixed text, or messages fitted to the context."""

    text: str | None = None  # raw or fill-in-the-middle: used as it is
    images: tuple[str, ...] = ()  # with ``text``: its images, which its [img-N] tags place
    messages: tuple[dict[str, Any], ...] = ()
    tools: list[dict[str, Any]] | None = None
    think: bool | str | None = None
    template: str | None = None  # the request's own template


@dataclass(frozen=True)
class _Run:
    """A checked request and what was made of it: the model, the prompt to be, the grammar."""

    body: GenerateRequest | ChatRequest
    model: StoredModel
    keep_alive: int | None
    started_ns: int
    prompt: _Prompt
    think: bool | str | None
    grammar: str | None
    tools: ToolCallParser | None = None
    runner_options: dict[str, Any] = field(default_factory=dict)  # control flags and the OpenAI API's extras
    context: tuple[int, ...] = ()  # generate's deprecated token history, put before the prompt
    images: dict[str, ImageInput] = field(default_factory=dict)  # every image of the request, decoded


class AnswerService:
    """Answers chat and generate requests with the models of ``store`` on runners of ``scheduler``."""

    def __init__(self, settings: Settings, store: Store, scheduler: Scheduler) -> None:
        self.settings = settings
        self.store = store
        self.scheduler = scheduler
        self.metrics = scheduler.metrics  # first tokens and token counts: the scheduler's recorder

    async def find_model(self, name: str, *, missing: str | None = None) -> StoredModel:
        return await find_model(self.store, name, missing=missing)

    async def generate(self, body: GenerateRequest, started_ns: int) -> Answer:
        """A generate request's answer; domain errors for what the request or model cannot do."""
        grammar = _check_common(body)
        if not body.model:
            raise NotFound("model '' not found")
        model = await self.find_model(body.model)
        keep_alive = keep_alive_of(body.keep_alive)
        if not body.prompt and keep_alive == 0:
            return self._load_or_unload(body, model, keep_alive)
        capabilities = capabilities_of(model)
        if body.raw and (body.template or body.system or body.context):
            raise InvalidRequest(RAW_CONFLICT)
        think = validate_think(body.model, body.think, capabilities, model.parameters.get("think"))
        if "completion" not in capabilities:
            raise InvalidRequest(f'"{body.model}" does not support generate')
        if body.suffix and "insert" not in capabilities:
            raise InvalidRequest(f"{model.name} does not support insert")
        if not body.prompt:
            return self._load_or_unload(body, model, keep_alive)

        images = {} if body.debug_render_only else await _decoded_images(model, body.images or ())
        if body.raw or body.suffix:
            text = body.prompt
            if not body.raw:
                text = fill_in_middle_prompt(
                    model, body.prompt, body.suffix, template=body.template, limits=self.settings.limits
                )
            prompt = _Prompt(text=text, images=tuple(body.images or ()))
        else:
            messages: list[dict[str, Any]] = []
            if system := body.system or model.system:
                messages.append({"role": "system", "content": system})
            if not body.context:
                messages.extend(model.messages)
            user = {"role": "user", "content": body.prompt, **({"images": body.images} if body.images else {})}
            messages.append(user)
            prompt = _Prompt(messages=tuple(messages), think=think, template=body.template)
        run = _Run(
            body, model, keep_alive, started_ns, prompt, think, grammar,
            runner_options={"return_context": not body.raw}, context=tuple(body.context or ()), images=images,
        )  # fmt: skip
        return self._answer(run, render_only=bool(body.debug_render_only))

    async def chat(
        self,
        body: ChatRequest,
        started_ns: int,
        *,
        forced_tools: list[str] | None = None,
        runner_options: dict[str, Any] | None = None,
    ) -> Answer:
        """A chat request's answer; ``runner_options`` reach the runner as they are (the OpenAI API's extras).

        ``forced_tools`` (beyond Ollama: OpenAI's ``tool_choice``) makes the answer a call of one of the
        named tools (any offered tool when empty), through the sampling constraint.
        """
        grammar = _check_common(body)
        if not body.model:
            raise InvalidRequest("model is required")
        model = await self.find_model(body.model)
        keep_alive = keep_alive_of(body.keep_alive)
        if not body.messages and keep_alive == 0:
            return self._load_or_unload(body, model, keep_alive)
        capabilities = capabilities_of(model)
        if "completion" not in capabilities:
            raise InvalidRequest(f'"{body.model}" does not support chat')
        if body.tools and "tools" not in capabilities:
            raise InvalidRequest(f"{model.name} does not support tools")
        think = validate_think(body.model, body.think, capabilities, model.parameters.get("think"))
        if not body.messages:
            return self._load_or_unload(body, model, keep_alive)

        requested = [message.dump() for message in body.messages]
        messages = [*model.messages, *requested]
        if model.system and requested[0]["role"] != "system":
            messages.insert(0, {"role": "system", "content": model.system})
        extra = dict(runner_options or {})
        tools = None
        if body.tools:
            names = [tool.get("function", {}).get("name", "") for tool in body.tools if isinstance(tool, dict)]
            gguf = model.gguf()
            template = model.template if self.settings.go_template is not False else None
            tag = tool_call_tag(template, gguf.chat_template if gguf else "")
            tools = ToolCallParser(tag, names)
            if forced_tools is not None:
                grammar = _forced_tool_grammar(body.tools, forced_tools or names, forced_tools, tag, extra)
        prompt = _Prompt(messages=tuple(messages), tools=body.tools or None, think=think)
        requested_images = (image for message in messages for image in message.get("images") or ())
        images = {} if body.debug_render_only else await _decoded_images(model, requested_images)
        run = _Run(
            body, model, keep_alive, started_ns, prompt, think, grammar, tools, runner_options=extra, images=images
        )
        return self._answer(run, render_only=bool(body.debug_render_only))

    # --- running ----------------------------------------------------------------------------------

    def _answer(self, run: _Run, *, render_only: bool) -> Answer:
        if render_only:
            # No model loaded: the rendered prompt is the answer.
            return Answer(self._rendered(run), single=True)
        return Answer(retry_after_crash(lambda: self._chunks(run)))

    async def _rendered(self, run: _Run) -> AsyncGenerator[Chunk]:
        yield Chunk(rendered=(await self._render(run.prompt, run.model, None, 0, IMAGE_TOKENS)).text)

    async def _chunks(self, run: _Run) -> AsyncGenerator[Chunk]:
        async with use_runner(self.settings, self.scheduler, run.model, run.body.options, run.keep_alive) as (
            runner,
            resolved,
        ):
            tokenize = runner.process.count_tokens if run.body.truncate is not False else None
            image_tokens = runner.process.info.image_tokens if runner.process.info else 0
            rendered = await self._render(
                run.prompt, run.model, tokenize, int(resolved.options["num_ctx"]), image_tokens or IMAGE_TOKENS
            )
            prompt = rendered.text
            if run.context:
                prompt = await runner.process.detokenize(list(run.context)) + prompt
            completion = _completion(run, resolved, rendered, prompt, tuple(run.images[i] for i in rendered.images))
            load_ns = time.perf_counter_ns() - run.started_ns
            chunks = complete(
                runner.process, completion, started_ns=run.started_ns, load_ns=load_ns,
                model=run.model.short_name, metrics=self.metrics,
            )  # fmt: skip
            chunks = _split_thinking(chunks, rendered, run.think)
            if run.tools is not None:
                chunks = _split_tool_calls(chunks, run.tools)
            async for chunk in chunks:
                if chunk.done and rendered.truncated:
                    chunk = replace(chunk, truncated=True)
                yield chunk

    async def _render(
        self, prompt: _Prompt, model: StoredModel, tokenize: Tokenize | None, num_ctx: int, image_tokens: int
    ) -> RenderedPrompt:
        if prompt.text is not None:
            return RenderedPrompt(prompt.text, images=prompt.images)
        return await fitted_chat_prompt(
            model, list(prompt.messages), num_ctx=num_ctx, tokenize=tokenize, image_tokens=image_tokens,
            tools=prompt.tools,
            think=prompt.think, template=prompt.template, go_template=self.settings.go_template is not False,
            limits=self.settings.limits,
        )  # fmt: skip

    def _load_or_unload(
        self, body: GenerateRequest | ChatRequest, model: StoredModel, keep_alive: int | None
    ) -> Answer:
        """An empty prompt loads the model, or with ``keep_alive: 0`` unloads it without loading."""

        async def done() -> AsyncGenerator[Chunk]:
            if keep_alive == 0:
                await self.scheduler.unload(str(model.model_path))
                yield Chunk(done=True, done_reason="unload")
                return
            async with use_runner(self.settings, self.scheduler, model, body.options, keep_alive):
                pass
            yield Chunk(done=True, done_reason="load")

        return Answer(done(), single=True)

    def on_runner(
        self,
        name: str,
        options: dict[str, Any] | None,
        keep_alive: Any,
        action: Callable[[RunnerProcess], Awaitable[Result]],
        *,
        missing: str | None = None,
        input_errors_fail: bool = False,
        prompt_tokens: Callable[[Result], int] | None = None,
    ) -> AsyncGenerator[Result]:
        """``action`` on a runner of the model ``name``, for a call that is not a completion (embed, tokenize).

        ``input_errors_fail``: the runner refusing the input is a failure (500), where Ollama answers so.
        ``prompt_tokens``: how many prompt tokens the result took, for the metrics (embeddings).
        """

        async def run() -> AsyncGenerator[Result]:
            if not name:
                raise InvalidRequest("model is required")
            model = await self.find_model(name, missing=missing)
            async with use_runner(self.settings, self.scheduler, model, options, keep_alive_of(keep_alive)) as (
                runner,
                _resolved,
            ):
                try:
                    result = await action(runner.process)
                except InvalidRequest as error:
                    if input_errors_fail:
                        raise Failed(error.message) from None
                    raise
                if prompt_tokens is not None:
                    self.metrics.tokens(model.short_name, prompt=prompt_tokens(result), generated=0)
                yield result

        return retry_after_crash(run)


def _check_common(body: GenerateRequest | ChatRequest) -> str | None:
    """Checks generate and chat share; the grammar of the request's ``format``, if it has one."""
    if not 0 <= body.top_logprobs <= 20:
        raise InvalidRequest("top_logprobs must be between 0 and 20")
    try:
        return grammar_for_format(body.format)
    except FormatError as error:
        raise InvalidRequest(str(error)) from None


def _forced_tool_grammar(
    tools: list[dict[str, Any]], wanted: list[str], forced: list[str], tag: str, extra: dict[str, Any]
) -> str:
    offered = [tool for tool in tools if tool.get("function", {}).get("name") in wanted]
    if not offered:
        raise InvalidRequest(f"tool_choice names a function that is not among the tools: {forced}")
    try:
        grammar = tool_call_grammar(tag, closing_tag(tag), offered)
        if _SPECIAL_TAG.fullmatch(tag):  # prefer the model's special token, if it has one by that name
            extra["grammar_fallback"] = grammar
            grammar = tool_call_grammar(tag, closing_tag(tag), offered, special=True)
    except FormatError as error:
        raise InvalidRequest(str(error)) from None
    return grammar


async def _decoded_images(model: StoredModel, images: Iterable[str]) -> dict[str, ImageInput]:
    """The request's images decoded, once a model that takes them is sure: any problem is a 400 before loading.

    (A rendered-only request needs none: its images are only tags in the text, as in Ollama.)
    """
    images = list(images)
    if not images:
        return {}
    if not model.projector_paths:
        raise InvalidRequest(NO_IMAGE_INPUT)
    return await decode_images(images)


def _completion(
    run: _Run, resolved: Resolved, rendered: RenderedPrompt, prompt: str, images: tuple[ImageInput, ...]
) -> CompletionRequest:
    """The runner's request: sampling from the resolved options, control flags from the request."""
    extra = run.runner_options  # the OpenAI API's extras hold both kinds (logit_bias, grammar_fallback)
    control = {
        "grammar": run.grammar,
        # A thinking model thinks freely; the format holds from the end of its thinking on.
        **_thinking_before_format(run, rendered),
        "logprobs": run.body.logprobs or run.body.top_logprobs > 0,
        "top_logprobs": run.body.top_logprobs,
        "shift": run.body.shift is not False,
        **extra,
    }
    return CompletionRequest(
        prompt, Sampling.from_options({**resolved.options, **extra}), Control.from_options(control), images
    )


def _thinking_before_format(run: _Run, rendered: RenderedPrompt) -> dict[str, str]:
    opening, closing = rendered.thinking_tags
    if not (run.grammar and run.think and opening and closing):
        return {}
    if rendered.text.rstrip().endswith(opening):
        return {"grammar_after": closing}
    return {"grammar_after": closing, "grammar_opening": opening}


async def _split_thinking(
    chunks: AsyncIterator[Chunk], prompt: RenderedPrompt, think: bool | str | None
) -> AsyncIterator[Chunk]:
    """Move a thinking model's thinking out of the content, when thinking is on and its tags are known."""
    opening, closing = prompt.thinking_tags
    if not (think and opening and closing):
        async for chunk in chunks:
            yield chunk
        return
    parser = ThinkingParser(opening, closing, opened=prompt.text.rstrip().endswith(opening))
    async for chunk in chunks:
        thinking, content = parser.add(chunk.text)
        if chunk.done:
            rest_thinking, rest_content = parser.finish()
            thinking, content = thinking + rest_thinking, content + rest_content
        elif not (thinking or content or chunk.logprobs):
            continue
        yield replace(chunk, text=content, thinking=thinking)


async def _split_tool_calls(chunks: AsyncIterator[Chunk], parser: ToolCallParser) -> AsyncIterator[Chunk]:
    """Move tool calls out of the content; each gets Ollama's ``call_`` id and a running index."""
    index = 0
    async for chunk in chunks:
        content, calls = parser.add(chunk.text)
        if chunk.done:
            rest, more = parser.finish()
            content, calls = content + rest, calls + more
        tool_calls = []
        for call in calls:
            tool_calls.append(
                {"id": _call_id(), "function": {"index": index, "name": call.name, "arguments": call.arguments}}
            )
            index += 1
        if not (content or tool_calls or chunk.thinking or chunk.logprobs or chunk.done):
            continue
        yield replace(chunk, text=content, tool_calls=tool_calls)


def _call_id() -> str:
    return "call_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))
