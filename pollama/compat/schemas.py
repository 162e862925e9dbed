"""JSON schemas of the OpenAI and Anthropic request bodies, for the OpenAPI document.

The translations (``openai``, ``responses``, ``anthropic``) read these bodies field by field rather
than through pydantic models, so their shape is written down here, once: the fields they read and
the types they accept. Unknown fields are ignored, as the APIs' own servers do. ``Options`` and
``KeepAlive`` are shared components that ``pollama.server.openapi`` defines from the native API.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ANTHROPIC_ERROR", "OPENAI_ERROR", "REQUEST_BODIES"]

Schema = dict[str, Any]

_STRING: Schema = {"type": "string"}
_INTEGER: Schema = {"type": "integer"}
_NUMBER: Schema = {"type": "number"}
_BOOLEAN: Schema = {"type": "boolean"}
_OBJECT: Schema = {"type": "object"}
_STRINGS: Schema = {"type": "array", "items": _STRING}

_MODEL: Schema = {"type": "string", "description": "The name of a local model, as in /api/tags."}
_OPTIONS: Schema = {
    "$ref": "#/components/schemas/Options",
    "description": "Beyond the API: native model options, passed through (the named fields win over them).",
}
_KEEP_ALIVE: Schema = {"$ref": "#/components/schemas/KeepAlive"}


def _object(properties: Schema, *required: str) -> Schema:
    schema: Schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


def _tagged(kind: str, properties: Schema, *required: str) -> Schema:
    """An object told apart by its ``type`` field."""
    return _object({"type": {"const": kind}, **properties}, "type", *required)


# --- OpenAI Chat Completions -------------------------------------------------------------------

_FUNCTION_CALL = _object(
    {
        "id": _STRING,
        "type": {"const": "function"},
        "function": _object(
            {"name": _STRING, "arguments": {"anyOf": [_STRING, _OBJECT], "description": "JSON text or an object."}},
            "name",
        ),
    },
    "function",
)

_CHAT_PART: Schema = {
    "anyOf": [
        _tagged("text", {"text": _STRING}, "text"),
        _tagged(
            "image_url",
            {"image_url": {"anyOf": [_STRING, _object({"url": _STRING}, "url")], "description": "A base64 data URL."}},
            "image_url",
        ),
        _tagged("input_audio", {"input_audio": _object({"data": _STRING, "format": _STRING})}, "input_audio"),
    ]
}

_CHAT_MESSAGE = _object(
    {
        "role": {"enum": ["system", "developer", "user", "assistant", "tool"]},
        "content": {"anyOf": [_STRING, {"type": "array", "items": _CHAT_PART}, {"type": "null"}]},
        "name": _STRING,
        "reasoning": _STRING,
        "reasoning_content": _STRING,
        "tool_calls": {"type": "array", "items": _FUNCTION_CALL},
        "tool_call_id": _STRING,
    },
    "role",
)

_FUNCTION_TOOL = _tagged(
    "function",
    {"function": _object({"name": _STRING, "description": _STRING, "parameters": _OBJECT}, "name")},
    "function",
)

_REASONING_EFFORT: Schema = {"enum": ["none", "minimal", "low", "medium", "high", "xhigh", "max", "ultra"]}

_STOP: Schema = {"anyOf": [_STRING, _STRINGS]}

_SAMPLING: Schema = {
    "temperature": _NUMBER,
    "top_p": _NUMBER,
    "max_tokens": _INTEGER,
    "seed": _INTEGER,
    "frequency_penalty": _NUMBER,
    "presence_penalty": _NUMBER,
    "stop": _STOP,
    "stream": _BOOLEAN,
    "stream_options": _object({"include_usage": _BOOLEAN}),
    "keep_alive": _KEEP_ALIVE,
    "options": _OPTIONS,
}

CHAT_COMPLETION = _object(
    {
        "model": _MODEL,
        "messages": {"type": "array", "items": _CHAT_MESSAGE, "minItems": 1},
        **_SAMPLING,
        "max_completion_tokens": _INTEGER,
        "n": {"type": "integer", "minimum": 1, "maximum": 8},
        "response_format": _object(
            {
                "type": {"enum": ["text", "json_object", "json_schema"]},
                "json_schema": _object({"name": _STRING, "schema": _OBJECT}),
            },
            "type",
        ),
        "tools": {"type": "array", "items": _FUNCTION_TOOL},
        "tool_choice": {
            "anyOf": [
                {"enum": ["none", "auto", "required"]},
                _tagged("function", {"function": _object({"name": _STRING}, "name")}, "function"),
            ]
        },
        "reasoning_effort": _REASONING_EFFORT,
        "reasoning": _object({"effort": _REASONING_EFFORT}),
        "logprobs": _BOOLEAN,
        "top_logprobs": {"type": "integer", "minimum": 0, "maximum": 20},
        "logit_bias": {"type": "object", "additionalProperties": _NUMBER, "description": "Token ids to biases."},
    },
    "model",
    "messages",
)

COMPLETION = _object(
    {
        "model": _MODEL,
        "prompt": _STRING,
        "suffix": _STRING,
        **_SAMPLING,
        "logprobs": {"type": "integer", "minimum": 0, "maximum": 20},
    },
    "model",
)

EMBEDDINGS = _object(
    {
        "model": _MODEL,
        "input": {"anyOf": [_STRING, {"type": "array", "items": _STRING, "minItems": 1}]},
        "encoding_format": {"enum": ["float", "base64"]},
        "dimensions": _INTEGER,
        "keep_alive": _KEEP_ALIVE,
        "options": _OPTIONS,
    },
    "model",
    "input",
)

# --- OpenAI Responses --------------------------------------------------------------------------

_RESPONSE_PART: Schema = {
    "anyOf": [
        _object({"type": {"enum": ["input_text", "output_text", "text"]}, "text": _STRING}, "type", "text"),
        _tagged("input_image", {"image_url": {"type": "string", "description": "A base64 data URL."}}, "image_url"),
    ]
}

_RESPONSE_CONTENT: Schema = {"anyOf": [_STRING, {"type": "array", "items": _RESPONSE_PART}]}

_INPUT_ITEM: Schema = {
    "anyOf": [
        _object(
            {
                "type": {"const": "message"},
                "role": {"enum": ["system", "developer", "user", "assistant"]},
                "content": _RESPONSE_CONTENT,
            },
            "content",
        ),
        _tagged(
            "function_call",
            {"call_id": _STRING, "name": _STRING, "arguments": {"type": "string", "description": "JSON text."}},
            "name",
        ),
        _tagged("function_call_output", {"call_id": _STRING, "output": _RESPONSE_CONTENT}, "output"),
        _tagged(
            "reasoning",
            {"summary": {"type": "array", "items": _object({"text": _STRING})}, "encrypted_content": _STRING},
        ),
    ]
}

RESPONSE = _object(
    {
        "model": _MODEL,
        "input": {"anyOf": [_STRING, {"type": "array", "items": _INPUT_ITEM}]},
        "instructions": _STRING,
        "stream": _BOOLEAN,
        "temperature": _NUMBER,
        "top_p": _NUMBER,
        "max_output_tokens": _INTEGER,
        "tools": {
            "type": "array",
            "items": _tagged("function", {"name": _STRING, "description": _STRING, "parameters": _OBJECT}, "name"),
        },
        "tool_choice": {
            "anyOf": [{"enum": ["none", "auto", "required"]}, _tagged("function", {"name": _STRING}, "name")]
        },
        "text": _object(
            {"format": _object({"type": {"enum": ["text", "json_object", "json_schema"]}, "schema": _OBJECT}, "type")}
        ),
        "reasoning": _object({"effort": _REASONING_EFFORT, "summary": _STRING}),
        "metadata": {"type": "object", "additionalProperties": _STRING},
        "keep_alive": _KEEP_ALIVE,
        "options": _OPTIONS,
    },
    "model",
    "input",
)

# --- Anthropic Messages ------------------------------------------------------------------------

_TEXT_BLOCK = _tagged("text", {"text": _STRING}, "text")

_CONTENT_BLOCK: Schema = {
    "anyOf": [
        _TEXT_BLOCK,
        _tagged(
            "image",
            {"source": _object({"type": {"const": "base64"}, "media_type": _STRING, "data": _STRING}, "type", "data")},
            "source",
        ),
        _tagged("thinking", {"thinking": _STRING, "signature": _STRING}, "thinking"),
        _tagged("tool_use", {"id": _STRING, "name": _STRING, "input": _OBJECT}, "id", "name", "input"),
        _tagged(
            "tool_result",
            {"tool_use_id": _STRING, "content": {"anyOf": [_STRING, {"type": "array", "items": _TEXT_BLOCK}]}},
            "tool_use_id",
        ),
    ]
}

MESSAGES = _object(
    {
        "model": _MODEL,
        "max_tokens": {"type": "integer", "minimum": 1},
        "messages": {
            "type": "array",
            "minItems": 1,
            "items": _object(
                {
                    "role": {"enum": ["user", "assistant"]},
                    "content": {"anyOf": [_STRING, {"type": "array", "items": _CONTENT_BLOCK}]},
                },
                "role",
                "content",
            ),
        },
        "system": {"anyOf": [_STRING, {"type": "array", "items": _TEXT_BLOCK}]},
        "stream": _BOOLEAN,
        "temperature": _NUMBER,
        "top_p": _NUMBER,
        "top_k": _INTEGER,
        "stop_sequences": _STRINGS,
        "tools": {
            "type": "array",
            "items": _object({"name": _STRING, "description": _STRING, "input_schema": _OBJECT}, "name"),
        },
        "tool_choice": _object({"type": {"enum": ["auto", "any", "tool", "none"]}, "name": _STRING}, "type"),
        "thinking": _object({"type": {"enum": ["enabled", "disabled"]}, "budget_tokens": _INTEGER}, "type"),
        "output_config": _object({"effort": {"enum": ["low", "medium", "high", "xhigh", "max"]}}),
        "keep_alive": _KEEP_ALIVE,
        "options": _OPTIONS,
    },
    "model",
    "max_tokens",
    "messages",
)

REQUEST_BODIES: dict[str, Schema] = {
    "/v1/chat/completions": CHAT_COMPLETION,
    "/v1/completions": COMPLETION,
    "/v1/embeddings": EMBEDDINGS,
    "/v1/responses": RESPONSE,
    "/v1/messages": MESSAGES,
}

OPENAI_ERROR = _object(
    {
        "error": _object(
            {
                "message": _STRING,
                "type": _STRING,
                "param": {"type": "null"},
                "code": {"type": "null"},
            },
            "message",
            "type",
        )
    },
    "error",
)

ANTHROPIC_ERROR = _object(
    {"type": {"const": "error"}, "error": _object({"type": _STRING, "message": _STRING}, "type", "message")},
    "type",
    "error",
)
