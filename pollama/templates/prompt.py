"""Messages to prompt text: the one place that decides how a model's prompt is built.

A model's own GGUF chat template (jinja) renders chats here. Go ``TEMPLATE`` layers arrive with
the prompt-rendering work (issue 4); until then a model that only has a Go template other than
the trivial ``{{ .Prompt }}`` cannot be prompted, and says so.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from pollama.errors import APIError
from pollama.store.gguf import GGUFError, read_gguf
from pollama.store.models import StoredModel
from pollama.templates.jinja import ChatTemplateError, render_chat_template

__all__ = ["chat_prompt", "plain_prompt"]

_TRIVIAL_GO_TEMPLATES = ("{{ .Prompt }}", "{{.Prompt}}")


def chat_prompt(
    model: StoredModel,
    messages: list[dict[str, Any]],
    *,
    tools: list[dict[str, Any]] | None = None,
    think: bool | None = None,
) -> str:
    """The prompt for a conversation, ending where the assistant's answer begins."""
    gguf = model.gguf()
    source = gguf.chat_template if gguf else ""
    if model.template is not None and model.template.strip() not in _TRIVIAL_GO_TEMPLATES and not source:
        raise APIError(501, "rendering Go TEMPLATEs is not supported yet; this model has no GGUF chat template")
    if not source:
        return plain_prompt(messages)
    bos, eos = _special_token_texts(model.model_path)
    variables = {} if think is None else {"enable_thinking": think}
    try:
        return render_chat_template(source, messages, tools=tools, bos_token=bos, eos_token=eos, variables=variables)
    except ChatTemplateError as error:
        raise APIError(500, str(error)) from None


def plain_prompt(messages: list[dict[str, Any]]) -> str:
    """A model without any template sees its user turns as plain text (Ollama's ``{{ .Prompt }}``)."""
    return "".join(str(message.get("content", "")) for message in messages if message.get("role") != "system")


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
