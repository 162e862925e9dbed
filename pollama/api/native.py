"""Request and response bodies of Ollama's native API (``/api/*``).

Response models leave optional fields as ``None`` and are dumped with
``exclude_none``, which reproduces Go's ``omitempty``.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "ChatRequest",
    "ChatResponse",
    "CopyRequest",
    "CreateRequest",
    "DeleteRequest",
    "DetokenizeRequest",
    "DetokenizeResponse",
    "EmbedRequest",
    "EmbedResponse",
    "EmbeddingsRequest",
    "EmbeddingsResponse",
    "GenerateRequest",
    "ProcessModel",
    "ProcessResponse",
    "GenerateResponse",
    "ListModel",
    "ListResponse",
    "Message",
    "ModelDetails",
    "ProgressResponse",
    "PullRequest",
    "PushRequest",
    "ShowRequest",
    "ShowResponse",
    "Tensor",
    "TokenizeRequest",
    "TokenizeResponse",
    "VersionResponse",
]


class Request(BaseModel):
    # Unknown fields are ignored, as Go's JSON decoding does.
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class Response(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class ToolCallFunction(BaseModel):
    model_config = ConfigDict(extra="allow")
    index: int = 0
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class ToolCall(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str | None = None
    function: ToolCallFunction


def _checked_images(images: list[str] | None) -> list[str] | None:
    """Images arrive base64-encoded (Go decodes them into bytes): anything else is the client's error."""
    for image in images or ():
        try:
            base64.b64decode(image, validate=True)
        except binascii.Error:
            raise ValueError("invalid base64 image data") from None
    return images


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: str
    content: str = ""
    thinking: str | None = None
    images: list[str] | None = None
    tool_calls: list[ToolCall] | None = None
    tool_name: str | None = None
    tool_call_id: str | None = None

    @field_validator("role")
    @classmethod
    def _lower_role(cls, role: str) -> str:
        return role.lower()  # as Ollama's Message.UnmarshalJSON does

    @field_validator("images")
    @classmethod
    def _base64_images(cls, images: list[str] | None) -> list[str] | None:
        return _checked_images(images)

    def dump(self) -> dict[str, Any]:
        """As Ollama stores and returns messages: ``content`` always, the rest when set."""
        data = self.model_dump(mode="json", exclude_none=True)
        return {key: value for key, value in data.items() if key in ("role", "content") or value not in ("", [])}


class VersionResponse(Response):
    version: str


class ModelDetails(Response):
    parent_model: str = ""
    format: str = ""
    family: str = ""
    families: list[str] | None = None
    parameter_size: str = ""
    quantization_level: str = ""
    context_length: int | None = None
    embedding_length: int | None = None

    def dump(self) -> dict[str, Any]:
        data = super().dump()
        data["families"] = self.families  # Go writes null for a missing list
        return data


class ListModel(Response):
    name: str
    model: str
    remote_model: str | None = None
    remote_host: str | None = None
    modified_at: str
    size: int
    digest: str
    details: ModelDetails
    capabilities: list[str] | None = None


class ListResponse(Response):
    models: list[ListModel]

    def dump(self) -> dict[str, Any]:
        return {"models": [model.dump() | {"details": model.details.dump()} for model in self.models]}


class ProcessModel(Response):
    name: str
    model: str
    size: int
    digest: str
    details: ModelDetails
    expires_at: str
    size_vram: int
    context_length: int


class ProcessResponse(Response):
    models: list[ProcessModel]

    def dump(self) -> dict[str, Any]:
        return {"models": [model.dump() | {"details": model.details.dump()} for model in self.models]}


class ShowRequest(Request):
    model: str = ""
    name: str = ""  # deprecated alias of model
    system: str = ""
    template: str = ""  # deprecated, ignored
    verbose: bool = False
    options: dict[str, Any] | None = None


class Tensor(Response):
    name: str
    type: str
    shape: list[int]


class ShowResponse(Response):
    license: str | None = None
    modelfile: str | None = None
    parameters: str | None = None
    template: str | None = None
    system: str | None = None
    renderer: str | None = None
    parser: str | None = None
    details: ModelDetails
    messages: list[dict[str, Any]] | None = None
    remote_model: str | None = None
    remote_host: str | None = None
    model_info: dict[str, Any] = Field(default_factory=dict)
    projector_info: dict[str, Any] | None = None
    tensors: list[Tensor] | None = None
    capabilities: list[str] | None = None
    modified_at: str
    requires: str | None = None

    def dump(self) -> dict[str, Any]:
        data = super().dump()
        data["details"] = self.details.dump()
        data["model_info"] = self.model_info  # always present, even when empty
        return data


class CreateRequest(Request):
    model: str = ""
    name: str = ""  # deprecated alias of model
    stream: bool | None = None
    quantize: str = ""
    quantization: str = ""  # deprecated alias of quantize
    draft_quantize: str = ""
    from_: str = Field(default="", alias="from")
    remote_host: str = ""
    files: dict[str, str] | None = None
    draft_files: dict[str, str] | None = None
    adapters: dict[str, str] | None = None
    template: str = ""
    license: str | list[str] | None = None
    system: str = ""
    parameters: dict[str, Any] | None = None
    messages: list[Message] | None = None
    renderer: str = ""
    parser: str = ""
    requires: str = ""
    info: dict[str, Any] | None = None


class ProgressResponse(Response):
    status: str
    digest: str | None = None
    total: int | None = None
    completed: int | None = None


class PullRequest(Request):
    model: str = ""
    name: str = ""  # deprecated alias of model
    insecure: bool = False
    stream: bool | None = None
    # username and password are deprecated and ignored, as in Ollama.


class PushRequest(PullRequest):
    pass


class CopyRequest(Request):
    source: str = ""
    destination: str = ""


class DeleteRequest(Request):
    model: str = ""
    name: str = ""  # deprecated alias of model


class _InferenceRequest(Request):
    """Fields generate and chat share. Loosely typed fields are checked by the handler, with Ollama's messages."""

    model: str = ""
    stream: bool | None = None
    format: Any = None
    keep_alive: Any = None
    options: dict[str, Any] | None = None
    think: Any = None
    truncate: bool | None = None
    shift: bool | None = None
    logprobs: bool = False
    top_logprobs: int = 0
    debug_render_only: bool = Field(False, alias="_debug_render_only")


class GenerateRequest(_InferenceRequest):
    prompt: str = ""
    suffix: str = ""
    system: str = ""
    template: str = ""
    context: list[int] | None = None
    raw: bool = False
    images: list[str] | None = None

    @field_validator("images")
    @classmethod
    def _base64_images(cls, images: list[str] | None) -> list[str] | None:
        return _checked_images(images)


class ChatRequest(_InferenceRequest):
    messages: list[Message] = Field(default_factory=list)
    tools: list[dict[str, Any]] | None = None


class GenerateResponse(Response):
    model: str
    created_at: str
    response: str = ""
    thinking: str | None = None
    done: bool
    done_reason: str | None = None
    context: list[int] | None = None
    total_duration: int | None = None
    load_duration: int | None = None
    prompt_eval_count: int | None = None
    prompt_cached_count: int | None = None  # beyond Ollama: how much of the prompt came from the prompt cache
    prompt_eval_duration: int | None = None
    eval_count: int | None = None
    eval_duration: int | None = None
    tool_calls: list[ToolCall] | None = None
    debug_info: dict[str, Any] | None = Field(None, alias="_debug_info")
    logprobs: list[dict[str, Any]] | None = None
    truncated: bool | None = None  # beyond Ollama: older history was left out to fit num_ctx


class ChatResponse(Response):
    model: str
    created_at: str
    message: dict[str, Any]
    done: bool
    done_reason: str | None = None
    debug_info: dict[str, Any] | None = Field(None, alias="_debug_info")
    logprobs: list[dict[str, Any]] | None = None
    total_duration: int | None = None
    load_duration: int | None = None
    prompt_eval_count: int | None = None
    prompt_cached_count: int | None = None  # beyond Ollama: how much of the prompt came from the prompt cache
    prompt_eval_duration: int | None = None
    eval_count: int | None = None
    eval_duration: int | None = None
    truncated: bool | None = None  # beyond Ollama: older history was left out to fit num_ctx


class _ModelRequest(Request):
    """A request that runs on a model: which one, how long to keep it, its options."""

    model: str = ""
    keep_alive: Any = None
    options: dict[str, Any] | None = None


class EmbedRequest(_ModelRequest):
    input: Any = None
    truncate: bool | None = None
    dimensions: int | None = None


class EmbedResponse(Response):
    model: str
    embeddings: list[list[float]]
    total_duration: int | None = None
    load_duration: int | None = None
    prompt_eval_count: int | None = None


class EmbeddingsRequest(_ModelRequest):
    prompt: str = ""


class EmbeddingsResponse(Response):
    embedding: list[float]


class TokenizeRequest(_ModelRequest):
    content: str = ""
    add_special: bool = False


class TokenizeResponse(Response):
    model: str
    tokens: list[int]


class DetokenizeRequest(_ModelRequest):
    tokens: list[int] = Field(default_factory=list)


class DetokenizeResponse(Response):
    model: str
    content: str
