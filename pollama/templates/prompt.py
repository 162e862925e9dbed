"""Messages to prompt text: the one place that decides how a model's prompt is built.

A model's Go ``TEMPLATE`` (a Modelfile or registry layer) renders as Ollama renders it; without
one, the GGUF's jinja chat template does (or always, with ``OLLAMA_GO_TEMPLATE=0``); a model
with neither sees Ollama's default ``{{ .Prompt }}``. A request's own ``template`` wins over all.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pollama.errors import APIError
from pollama.store.gguf import GGUFError, read_gguf
from pollama.store.models import StoredModel
from pollama.templates.gotemplate import ExecError, TemplateSyntaxError
from pollama.templates.jinja import ChatTemplateError, render_chat_template
from pollama.templates.model_template import DEFAULT_TEMPLATE, ModelTemplate, TemplateValues

__all__ = ["RenderedPrompt", "chat_prompt", "fill_in_middle_prompt", "parse_template"]

JINJA_THINKING_TAGS = ("<think>", "</think>")


@dataclass(frozen=True)
class RenderedPrompt:
    text: str
    thinking_tags: tuple[str, str] = ("", "")  # the tags a thinking answer opens and closes with, if known


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
) -> RenderedPrompt:
    """The prompt for a conversation, ending where the assistant's answer begins."""
    gguf = model.gguf()
    chat_template = gguf.chat_template if gguf else ""
    if template or (model.template is not None and go_template) or not chat_template:
        values = TemplateValues(messages=messages, tools=tools, **_think_values(think))
        parsed = _parse(template or model.template or DEFAULT_TEMPLATE)
        return RenderedPrompt(_execute(parsed, values), parsed.thinking_tags)
    bos, eos = _special_token_texts(model.model_path)
    variables = {} if not isinstance(think, bool) else {"enable_thinking": think}
    try:
        text = render_chat_template(
            chat_template, messages, tools=tools, bos_token=bos, eos_token=eos, variables=variables
        )
    except ChatTemplateError as error:
        raise APIError(500, str(error)) from None
    thinks = all(tag in chat_template for tag in JINJA_THINKING_TAGS)
    return RenderedPrompt(text, JINJA_THINKING_TAGS if thinks else ("", ""))


def fill_in_middle_prompt(model: StoredModel, prompt: str, suffix: str, *, template: str = "") -> str:
    """Generate's ``suffix``: the template sees only ``.Prompt`` and ``.Suffix``."""
    return _execute(
        _parse(template or model.template or DEFAULT_TEMPLATE), TemplateValues(prompt=prompt, suffix=suffix)
    )


def _think_values(think: bool | str | None) -> dict[str, Any]:
    return {
        "think": think is not None and think is not False,
        "think_level": think if isinstance(think, str) else "",
        "is_think_set": think is not None,
    }


def _parse(text: str) -> ModelTemplate:
    try:
        return parse_template(text)
    except TemplateSyntaxError as error:
        raise APIError(500, str(error)) from None


def _execute(template: ModelTemplate, values: TemplateValues) -> str:
    try:
        return template.execute(values)
    except ExecError as error:
        raise APIError(500, str(error)) from None


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
