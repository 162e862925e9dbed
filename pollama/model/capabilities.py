"""What a model can do (spec H.5): completion, embedding, tools, insert, thinking, vision, audio.

Decided from the GGUF metadata, the config, and the template that will render
prompts: the model's Go TEMPLATE when it has one, else the GGUF chat template.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from pollama.store.gguf import GGUFFile
from pollama.store.models import StoredModel
from pollama.templates.gotemplate import Template, TemplateSyntaxError
from pollama.templates.model_template import infer_thinking_tags, template_vars

__all__ = ["capabilities_of", "chat_template_capabilities", "model_capabilities"]


def chat_template_capabilities(chat_template: str) -> list[str]:
    found = []
    if "tools" in chat_template or "tool_call" in chat_template:
        found.append("tools")
    splits_thinking = (
        ("content.split('</think>')" in chat_template or 'content.split("</think>")' in chat_template)
        and "reasoning_content" not in chat_template
        and "<SPECIAL_12>" not in chat_template
    )
    if ("<think>" in chat_template and "</think>" in chat_template) or splits_thinking:
        found.append("thinking")
    return found


@functools.lru_cache(maxsize=256)
def go_template_capabilities(template: str) -> list[str]:
    try:
        parsed = Template(template)
    except TemplateSyntaxError:
        return []
    identifiers = template_vars(parsed)
    found = []
    if "tools" in identifiers:
        found.append("tools")
    if "suffix" in identifiers:
        found.append("insert")
    opening, closing = infer_thinking_tags(parsed.tree.root)
    if opening and closing:
        found.append("thinking")
    return found


def model_capabilities(
    *,
    gguf: GGUFFile | None,
    go_template: str | None,
    config_capabilities: Iterable[str] = (),
    projector_count: int = 0,
    family: str = "",
) -> list[str]:
    found: list[str] = []

    def add(*names: str) -> None:
        found.extend(name for name in names if name not in found)

    add(*config_capabilities)
    if gguf is not None:
        if go_template is None:
            add(*chat_template_capabilities(gguf.chat_template))
        add("embedding" if gguf.has("pooling_type") else "completion")
        if gguf.has("vision.block_count"):
            add("vision")
        if gguf.has("audio.block_count"):
            add("audio")
    if projector_count:
        add("vision")
    if go_template is not None:
        add(*go_template_capabilities(go_template))
    if family in ("gptoss", "gpt-oss"):
        add("thinking")
    return found


def capabilities_of(model: StoredModel) -> list[str]:
    """What a stored model can do, from its weights, template, config and projectors."""
    return model_capabilities(
        gguf=model.gguf(),
        go_template=model.template,
        config_capabilities=model.config.capabilities,
        projector_count=len(model.projector_paths),
        family=model.config.model_family,
    )
