"""The OpenAPI 3.1 document of the HTTP API (served at ``GET /openapi.json``), built from the app's routes.

FastAPI's generator walks the app's routes, so a new route cannot be left out; but it cannot see the
request bodies, which the handlers read by hand to answer bad JSON the way Ollama does. The bodies
and answers come from the tables here: the native API's pydantic models, and for the OpenAI
and Anthropic translations the hand-written schemas of ``pollama.compat.schemas``.
"""

from __future__ import annotations

import re
import warnings
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from pollama.api import native
from pollama.compat import schemas as compat
from pollama.model.options import MIROSTAT_MODES, OPTIONS, THINK_LEVELS, OptionKind
from pollama.version import OLLAMA_VERSION, __version__

__all__ = ["openapi_document"]

Schema = dict[str, Any]

_COMPONENTS = "#/components/schemas/"
_NON_WORD = re.compile(r"\W+")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

_NATIVE_BODIES: dict[str, type[BaseModel]] = {
    "/api/generate": native.GenerateRequest,
    "/api/chat": native.ChatRequest,
    "/api/embed": native.EmbedRequest,
    "/api/embeddings": native.EmbeddingsRequest,
    "/api/tokenize": native.TokenizeRequest,
    "/api/detokenize": native.DetokenizeRequest,
    "/api/show": native.ShowRequest,
    "/api/create": native.CreateRequest,
    "/api/copy": native.CopyRequest,
    "/api/delete": native.DeleteRequest,
    "/api/pull": native.PullRequest,
    "/api/push": native.PushRequest,
}

_RAW_BODIES: dict[str, Schema] = {
    "/api/blobs/{digest}": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
}

_OTHER_SUCCESSES: dict[tuple[str, str], dict[str, str]] = {
    ("POST", "/api/blobs/{digest}"): {"201": "The blob was stored (200: it already was)."},
}

_NATIVE_ANSWERS: dict[str, type[BaseModel]] = {
    "/api/version": native.VersionResponse,
    "/api/tags": native.ListResponse,
    "/api/ps": native.ProcessResponse,
    "/api/show": native.ShowResponse,
    "/api/generate": native.GenerateResponse,
    "/api/chat": native.ChatResponse,
    "/api/embed": native.EmbedResponse,
    "/api/embeddings": native.EmbeddingsResponse,
    "/api/tokenize": native.TokenizeResponse,
    "/api/detokenize": native.DetokenizeResponse,
    "/api/create": native.ProgressResponse,
    "/api/pull": native.ProgressResponse,
    "/api/push": native.ProgressResponse,
}

# These stream NDJSON lines of their answer unless the request says "stream": false.
_STREAMED = frozenset({"/api/generate", "/api/chat", "/api/create", "/api/pull", "/api/push"})

# The server errors answered on purpose, by route; any other 5xx is a bug.
_MODEL_FAILURES = {
    "500": "The model could not be loaded or run: it needs more memory than is free, or its runner crashed "
    "in every configuration tried, or it computed an embedding with NaN or Inf values. The error says which.",
    "503": "Too many requests are waiting (OLLAMA_MAX_QUEUE): try again later.",
}
_CORRUPT_MANIFEST = {"500": "The model's manifest in the store is corrupt."}
_REGISTRY_FAILURE = {"500": "The registry could not be reached, or refused the transfer."}
_PUSH_FAILURE = {"500": "The model is not in the store, or the registry could not be reached or refused it."}
_DELIBERATE_FAILURES: dict[str, dict[str, str]] = {
    **dict.fromkeys(
        (
            "/api/generate",
            "/api/chat",
            "/api/embed",
            "/api/embeddings",
            "/api/tokenize",
            "/api/detokenize",
            "/v1/chat/completions",
            "/v1/completions",
            "/v1/embeddings",
            "/v1/responses",
            "/v1/messages",
        ),
        _MODEL_FAILURES,
    ),
    "/api/show": _CORRUPT_MANIFEST,
    "/api/copy": _CORRUPT_MANIFEST,
    "/api/pull": _REGISTRY_FAILURE,
    "/api/push": _PUSH_FAILURE,
}

_OPTION_SCHEMAS: dict[OptionKind, Schema] = {
    OptionKind.INT: {"type": "integer"},
    OptionKind.FLOAT: {"type": "number"},
    OptionKind.BOOL: {"type": "boolean"},
    OptionKind.STRINGS: {"type": "array", "items": {"type": "string"}},
    OptionKind.THINK: {"anyOf": [{"type": "boolean"}, {"enum": list(THINK_LEVELS)}]},
}

_SHARED_COMPONENTS: dict[str, Schema] = {
    "Options": {
        "type": "object",
        "description": "Model options, over the model's own parameters. Unknown names are ignored.",
        "properties": {
            **{name: _OPTION_SCHEMAS[spec.kind] for name, spec in OPTIONS.items()},
            "mirostat": {"enum": list(MIROSTAT_MODES)},
        },
        "additionalProperties": True,
    },
    "KeepAlive": {
        "description": "How long the model stays loaded after the request: a negative value keeps it loaded.",
        "anyOf": [
            {
                "type": "string",
                "pattern": r"^[-+]?(0|((\d+(\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h))+)$",
                "description": 'A Go duration: "5m", "1h30m", "0".',
            },
            {"type": "number", "description": "Seconds."},
            {"type": "null"},
        ],
    },
    "Error": {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]},
    "OpenAIError": compat.OPENAI_ERROR,
    "AnthropicError": compat.ANTHROPIC_ERROR,
}

# Path parameters are plain strings to FastAPI.
_PATH_PARAMETERS: dict[str, Schema] = {
    "digest": {
        "type": "string",
        "pattern": "^sha256[:-][0-9a-fA-F]{64}$",  # as pollama.store.blobs reads it
        "description": "The blob's SHA-256 digest: sha256:<64 hex digits>.",
    },
    "model": {"type": "string", "description": "The name of a local model."},
}

# Native request fields as the handlers read them, where pydantic knows them only as ``Any`` or without limits.
_FIELD_SCHEMAS: dict[str, Schema] = {
    "options": {"anyOf": [{"$ref": _COMPONENTS + "Options"}, {"type": "null"}]},
    "keep_alive": {"$ref": _COMPONENTS + "KeepAlive"},
    "format": {
        "description": 'The answer\'s format: "json", or a JSON schema it must follow.',
        "anyOf": [{"const": "json"}, {"type": "object"}, {"type": "null"}],
    },
    "think": {
        "description": "Whether a thinking model thinks first, or how hard.",
        "anyOf": [{"type": "boolean"}, {"enum": list(THINK_LEVELS)}, {"type": "null"}],
    },
    "input": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}, {"type": "null"}]},
    "top_logprobs": {"type": "integer", "minimum": 0, "maximum": 20},
}


def openapi_document(app: FastAPI) -> Schema:
    """The document for every route of ``app``."""
    with warnings.catch_warnings():
        # FastAPI gives the GET and HEAD of one route the same operation id; _describe sets unique ones.
        warnings.filterwarnings("ignore", "Duplicate Operation ID", UserWarning)
        document = get_openapi(
            title="pollama",
            version=__version__,
            openapi_version="3.1.0",
            description=f"Ollama's HTTP API (as of Ollama {OLLAMA_VERSION}), with OpenAI's and Anthropic's on top. "
            "Request bodies are JSON; unknown fields are ignored.",
            routes=app.routes,
        )
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            _describe(operation, path, method.upper())
    # FastAPI's own components only describe the 422s this app never answers (it reads bodies itself).
    document["components"] = {"schemas": {**_SHARED_COMPONENTS, **_model_schemas()}}
    return document


def _model_schemas() -> dict[str, Schema]:
    """The pydantic models' schemas (requests as they are read, answers as they are written), by name."""
    wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        *((model, "validation") for model in _NATIVE_BODIES.values()),
        *((model, "serialization") for model in _NATIVE_ANSWERS.values()),
    ]
    _refs, document = models_json_schema(wanted, ref_template=_COMPONENTS + "{model}")
    schemas: dict[str, Schema] = document["$defs"]
    for model in _NATIVE_BODIES.values():
        properties = schemas[model.__name__]["properties"]
        for name in properties.keys() & _FIELD_SCHEMAS.keys():
            properties[name] = _FIELD_SCHEMAS[name]
    return schemas


def _describe(operation: Schema, path: str, method: str) -> None:
    """Add what FastAPI cannot know to one of its operations: the body, the answers, the errors."""
    operation["operationId"] = method.lower() + "_" + (_NON_WORD.sub("_", path).strip("_") or "root")
    operation["tags"] = [_api_of(path)]
    operation["responses"] = _responses(path, method)
    for parameter in operation.get("parameters", ()):
        parameter["schema"] = _PATH_PARAMETERS.get(parameter["name"], parameter["schema"])
    if method in _BODY_METHODS and (content := _body_content(path)):
        operation["requestBody"] = {"required": True, "content": content}


def _api_of(path: str) -> str:
    if path == "/v1/messages":
        return "Anthropic"
    return "OpenAI" if path.startswith("/v1/") else "Ollama"


def _body_content(path: str) -> Schema | None:
    if path in _RAW_BODIES:
        return _RAW_BODIES[path]
    if path in _NATIVE_BODIES:
        return {"application/json": {"schema": {"$ref": _COMPONENTS + _NATIVE_BODIES[path].__name__}}}
    if path in compat.REQUEST_BODIES:
        return {"application/json": {"schema": compat.REQUEST_BODIES[path]}}
    return None


def _responses(path: str, method: str) -> Schema:
    answer: Schema = {"description": "The answer."}
    if method != "HEAD" and path in _NATIVE_ANSWERS:
        schema = {"$ref": _COMPONENTS + _NATIVE_ANSWERS[path].__name__}
        answer["content"] = {"application/json": {"schema": schema}}
        if path in _STREAMED:
            answer["description"] = "The answer; streamed as one JSON object a line unless stream is false."
            answer["content"]["application/x-ndjson"] = {"schema": schema}
    error = {"description": "The request was refused; the error says why.", "content": _error_content(path)}
    responses: Schema = {"200": answer, "4XX": error}
    for status, description in _OTHER_SUCCESSES.get((method, path), {}).items():
        responses[status] = {"description": description}
    for status, description in _DELIBERATE_FAILURES.get(path, {}).items():
        responses[status] = {"description": description, "content": _error_content(path)}
    return responses


def _error_content(path: str) -> Schema:
    name = {"Anthropic": "AnthropicError", "OpenAI": "OpenAIError", "Ollama": "Error"}[_api_of(path)]
    return {"application/json": {"schema": {"$ref": _COMPONENTS + name}}}
