"""Which replicas a request goes to, and how the answers of several become one (pure, no Ray).

A request that names a model goes to one replica chosen by Ray Serve's model multiplexing: one that
has the model loaded if there is one, else the least loaded. The cluster-wide views (``/api/tags``,
``/api/ps``, ``/v1/models``) ask every replica and merge what they say. Writes to the model stores
(``pull``, ``create``, ``copy``, ``delete``) are done on every replica so that the stores agree. Blob
uploads and ``push`` have no cluster meaning (a blob would have to reach every node) and are refused
with a message saying what to do instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from typing import Any

from pollama.store.names import parse_model_ref

__all__ = [
    "UNSUPPORTED",
    "Route",
    "RouteKind",
    "merge_openai_models",
    "merge_ps",
    "merge_tags",
    "model_id",
    "route",
]


class RouteKind(Enum):
    MODEL = "model"  # one replica, by model (multiplexed), model pulled and loaded there first
    ANY = "any"  # one replica, whichever (no model named: version, health, the web page, metrics)
    GATHER = "gather"  # every replica, answers merged
    EVERYWHERE = "everywhere"  # every replica, the first replica's answer streamed, failures added
    REFUSED = "refused"


@dataclass(frozen=True)
class Route:
    kind: RouteKind
    model: str = ""  # the multiplexed model id (MODEL), "" where the name is missing or invalid


UNSUPPORTED = (
    "{what} is not available through a pollama cluster: its nodes take models from a registry. Create "
    "the model on a pollama server, push it to a registry, and name it here: each node pulls it on first use"
)

_GATHERED = frozenset({("GET", "/api/tags"), ("GET", "/api/ps"), ("GET", "/v1/models")})
_EVERYWHERE = frozenset(
    {("POST", "/api/pull"), ("POST", "/api/create"), ("POST", "/api/copy"), ("DELETE", "/api/delete")}
)
_MODEL_PATHS = frozenset(
    {
        "/api/generate", "/api/chat", "/api/embed", "/api/embeddings", "/api/show", "/api/tokenize",
        "/api/detokenize", "/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses",
        "/v1/messages",
    }
)  # fmt: skip
_OPENAI_MODEL_PREFIX = "/v1/models/"


def model_id(name: str) -> str:
    """The multiplexed model id of a model name: its full form, lowercased (names compare without case),
    so that ``smollm2``, ``SmolLM2:latest`` and ``registry.ollama.ai/library/smollm2:latest`` share
    replicas. "" for a name that is not a valid model name: the replica's server then answers with
    Ollama's error for it."""
    try:
        host, namespace, model, tag = parse_model_ref(name).key
    except ValueError:
        return ""
    return f"{host}/{namespace}/{model}:{tag}"


def _named_model(body: bytes) -> str:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return ""
    if not isinstance(data, dict):
        return ""
    # /api/show and the oldest clients say "name"; every other API "model".
    name = data.get("model") or data.get("name")
    return name if isinstance(name, str) else ""


def route(method: str, path: str, body: bytes) -> Route:
    if (method, path) in _GATHERED:
        return Route(RouteKind.GATHER)
    if (method, path) in _EVERYWHERE:
        return Route(RouteKind.EVERYWHERE)
    if path.startswith("/api/blobs/") or (method, path) == ("POST", "/api/push"):
        return Route(RouteKind.REFUSED)
    if method == "GET" and path.startswith(_OPENAI_MODEL_PREFIX) and len(path) > len(_OPENAI_MODEL_PREFIX):
        return Route(RouteKind.MODEL, model_id(path[len(_OPENAI_MODEL_PREFIX) :]))
    if method == "POST" and path in _MODEL_PATHS:
        return Route(RouteKind.MODEL, model_id(_named_model(body)))
    return Route(RouteKind.ANY)


# --- merging the answers of every replica -------------------------------------------------------------


def merge_tags(answers: list[dict[str, Any]]) -> dict[str, Any]:
    """One ``/api/tags`` for the cluster: every model any node has, once (the newest copy where nodes
    disagree), newest first as Ollama lists them."""
    newest: dict[str, dict[str, Any]] = {}
    for answer in answers:
        for entry in answer.get("models") or []:
            name = str(entry.get("name") or entry.get("model") or "")
            if name not in newest or str(entry.get("modified_at", "")) > str(newest[name].get("modified_at", "")):
                newest[name] = entry
    models = sorted(newest.values(), key=lambda entry: str(entry.get("modified_at", "")), reverse=True)
    return {"models": models}


def merge_ps(answers: list[tuple[dict[str, str], dict[str, Any]]]) -> dict[str, Any]:
    """One ``/api/ps`` for the cluster: every loaded model of every replica, each with the replica and
    node that hold it (fields Ollama clients ignore), longest to expire first as Ollama sorts them."""
    models = [
        {**entry, **where}
        for where, answer in answers
        for entry in answer.get("models") or []
    ]  # fmt: skip
    models.sort(key=lambda entry: str(entry.get("expires_at", "")), reverse=True)
    return {"models": models}


def merge_openai_models(answers: list[dict[str, Any]]) -> dict[str, Any]:
    """One ``/v1/models`` list: each model id once."""
    seen: dict[str, dict[str, Any]] = {}
    for answer in answers:
        for entry in answer.get("data") or []:
            seen.setdefault(str(entry.get("id")), entry)
    return {"object": "list", "data": list(seen.values())}
