"""Messages to prompt text: the one place that decides how a model's prompt is built.

A model's Go ``TEMPLATE`` (a Modelfile or registry layer) renders as Ollama renders it; without
one, the GGUF's jinja chat template does (or always, with ``OLLAMA_GO_TEMPLATE=0``); a model
with neither sees Ollama's default ``{{ .Prompt }}``. A request's own ``template`` wins over all.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pollama.config import Limits
from pollama.errors import Failed, InvalidRequest
from pollama.store.gguf import GGUFError, read_gguf
from pollama.store.models import StoredModel
from pollama.templates.gotemplate import ExecError, ExecLimitError, TemplateSyntaxError
from pollama.templates.jinja import ChatTemplateError, render_chat_template
from pollama.templates.model_template import DEFAULT_TEMPLATE, ModelTemplate, TemplateValues

__all__ = [
    "IMAGE_TOKENS",
    "RenderedPrompt",
    "Tokenize",
    "chat_prompt",
    "fill_in_middle_prompt",
    "fitted_chat_prompt",
    "parse_template",
]

Tokenize = Callable[[str, int], Awaitable[int]]  # a text's token count, counted no further than the bound
IMAGE_TOKENS = 768  # what Ollama counts for an image when fitting history into the context

JINJA_THINKING_TAGS = ("<think>", "</think>")
_DEFAULT_LIMITS = Limits()  # for callers without settings at hand


@dataclass(frozen=True)
class RenderedPrompt:
    text: str
    thinking_tags: tuple[str, str] = ("", "")  # the tags a thinking answer opens and closes with, if known
    truncated: bool = False  # older messages were left out to fit the context
    images: tuple[str, ...] = ()  # the images of the kept messages: images[N] is where the text says [img-N]


log = logging.getLogger(__name__)

_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL)


async def fitted_chat_prompt(
    model: StoredModel,
    messages: list[dict[str, Any]],
    *,
    num_ctx: int,
    tokenize: Tokenize | None,
    image_tokens: int = IMAGE_TOKENS,
    **render: Any,
) -> RenderedPrompt:
    """Ollama's ``chatPrompt``: with a tokenizer, drop the oldest messages until the prompt fits ``num_ctx``.

    System messages that would be dropped are kept, and the last message always is. Images become
    ``[img-N]`` tags in their message's text and count ``image_tokens`` each (the runner measures
    them; Ollama guesses 768). Beyond Ollama, the result says when it was truncated.
    """
    messages = _without_old_thinking(model, messages)
    start, kept_system, rendered = 0, [], None
    if tokenize is not None:
        for start in range(len(messages)):
            kept_system = [m for m in messages[:start] if m.get("role") == "system"]
            rendered = chat_prompt(model, [*kept_system, *messages[start:]], **render)
            length = await tokenize(rendered.text, num_ctx + 1)  # enough to tell whether it fits
            if model.projector_paths:
                length += image_tokens * sum(len(m.get("images") or ()) for m in messages[start:])
            if length <= num_ctx:
                break
    if start:
        log.warning(
            "truncating input messages which exceed context length: kept %d of %d", len(messages) - start, len(messages)
        )
    kept = messages[start:]
    # Image tags number the images of the kept messages from 0; without images the fitted render is final.
    if rendered is None or any(m.get("images") for m in kept):
        rendered = chat_prompt(model, [*kept_system, *_image_tagged(kept)], **render)
    images = tuple(image for message in kept for image in message.get("images") or ())
    return RenderedPrompt(rendered.text, rendered.thinking_tags, truncated=start > 0, images=images)


def _image_tagged(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each image becomes ``[img-N]``, N counting across messages: in place of an ``[img]``, else before the text."""
    tagged, count = [], 0
    for message in messages:
        content, prefix = message.get("content", ""), ""
        for _image in message.get("images") or ():
            tag = f"[img-{count}]"
            count += 1
            if "[img]" in content:
                content = content.replace("[img]", tag, 1)
            else:
                prefix += tag
        tagged.append({**message, "content": prefix + content} if message.get("images") else message)
    return tagged


def _without_old_thinking(model: StoredModel, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """qwen3 and deepseek-r1 drop the <think> blocks of assistant turns before the last user message (as Ollama)."""
    if model.config.model_family != "qwen3" and "deepseek-r1" not in model.short_name:
        return messages
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    return [
        {**m, "content": _THINK_BLOCK.sub("", m.get("content", ""))}
        if m.get("role") == "assistant" and i < last_user
        else m
        for i, m in enumerate(messages)
    ]


@functools.lru_cache(maxsize=64)
def parse_template(text: str) -> ModelTemplate:
    """A parsed Go template, cached by its text; ``TemplateSyntaxError`` when it does not parse."""
    return ModelTemplate(text)


def chat_prompt(
    model: StoredModel,
    messages: list[dict[str, Any]],
    *,
    tools: list[dict[str, Any]] | None = None,
    think: bool | str | None = None,
    template: str = "",
    go_template: bool = True,
    limits: Limits = _DEFAULT_LIMITS,
) -> RenderedPrompt:
    """The prompt for a conversation, ending where the assistant's answer begins; ``limits`` bound each execution."""
    gguf = model.gguf()
    chat_template = gguf.chat_template if gguf else ""
    if template or (model.template is not None and go_template) or not chat_template:
        values = TemplateValues(messages=messages, tools=tools, **_think_values(think))
        parsed = _parse(template or model.template or DEFAULT_TEMPLATE, from_request=bool(template))
        return RenderedPrompt(_execute(parsed, values, limits, from_request=bool(template)), parsed.thinking_tags)
    bos, eos = _special_token_texts(model.model_path)
    variables = {} if not isinstance(think, bool) else {"enable_thinking": think}
    try:
        text = render_chat_template(
            chat_template, messages, tools=tools, bos_token=bos, eos_token=eos, variables=variables, limits=limits
        )
    except ChatTemplateError as error:
        raise InvalidRequest(str(error)) from None
    thinks = all(tag in chat_template for tag in JINJA_THINKING_TAGS)
    return RenderedPrompt(text, JINJA_THINKING_TAGS if thinks else ("", ""))


def fill_in_middle_prompt(
    model: StoredModel, prompt: str, suffix: str, *, template: str = "", limits: Limits = _DEFAULT_LIMITS
) -> str:
    """Generate's ``suffix``: the template sees only ``.Prompt`` and ``.Suffix``."""
    parsed = _parse(template or model.template or DEFAULT_TEMPLATE, from_request=bool(template))
    return _execute(parsed, TemplateValues(prompt=prompt, suffix=suffix), limits, from_request=bool(template))


def _think_values(think: bool | str | None) -> dict[str, Any]:
    return {
        "think": think is not None and think is not False,
        "think_level": think if isinstance(think, str) else "",
        "is_think_set": think is not None,
    }


def _parse(text: str, *, from_request: bool) -> ModelTemplate:
    try:
        return parse_template(text)
    except TemplateSyntaxError as error:
        # Ollama answers 500 for a request's own template too; but then the request is what is wrong.
        raise (InvalidRequest if from_request else Failed)(str(error)) from None


def _execute(template: ModelTemplate, values: TemplateValues, limits: Limits, *, from_request: bool) -> str:
    try:
        return template.execute(values, limits)
    except ExecError as error:
        # A model's own template failing is the server's fault (a 500, as Ollama); a request's template, or a request
        # whose messages make a template pass its limits, is the client's.
        client_fault = from_request or isinstance(error, ExecLimitError)
        raise (InvalidRequest if client_fault else Failed)(str(error)) from None


@functools.lru_cache(maxsize=32)
def _special_token_texts(path: Path | None) -> tuple[str, str]:
    """The BOS and EOS token texts templates write themselves; a blob's path names its content."""
    if path is None:
        return "", ""
    try:
        gguf = read_gguf(path)
    except GGUFError:
        return "", ""
    tokens = gguf.kv.get("tokenizer.ggml.tokens") or []

    def text(key: str) -> str:
        index = gguf.kv.get(key)
        return str(tokens[index]) if isinstance(index, int) and 0 <= index < len(tokens) else ""

    return text("tokenizer.ggml.bos_token_id"), text("tokenizer.ggml.eos_token_id")
