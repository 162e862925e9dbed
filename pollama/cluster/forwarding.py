"""What travels between the ingress and a replica, and the error that ends a cut stream (pure, no Ray).

A replica answers a forwarded request with a ``ResponseHead`` and then the body's bytes as its server
wrote them, so that a stream reaches the client token by token. If the replica dies after the head has
gone out, the status is already sent: the stream is ended with one error in the format the client is
reading (an NDJSON line, an OpenAI or Anthropic server-sent event), as pollama's own streams end on an
error.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from pollama.compat import anthropic, openai

__all__ = ["ForwardRequest", "ResponseHead", "client_headers", "response_headers", "stream_error"]

Headers = tuple[tuple[str, str], ...]

# Hop-by-hop (RFC 9110 7.6.1) or set again by whoever sends the message on.
_NOT_FORWARDED = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "host",
     "content-length", "proxy-authenticate", "proxy-authorization"}
)  # fmt: skip
_CREDENTIALS = frozenset({"authorization", "x-api-key"})


@dataclass(frozen=True)
class ForwardRequest:
    method: str
    path: str
    query: str
    headers: Headers
    body: bytes


@dataclass(frozen=True)
class ResponseHead:
    status: int
    headers: Headers


def client_headers(headers: Iterable[tuple[str, str]], *, internal_key: str, keep_credentials: bool) -> Headers:
    """The headers a replica's server gets. Without API keys of the cluster's own, the client's
    credentials (meant for nobody) are replaced by the cluster's internal key; with them, the client's
    are passed on for the replica's server to check, which also knows the internal key."""
    kept = tuple(
        (name, value)
        for name, value in headers
        if name.lower() not in _NOT_FORWARDED and (keep_credentials or name.lower() not in _CREDENTIALS)
    )
    return kept if keep_credentials else (*kept, ("authorization", f"Bearer {internal_key}"))


def response_headers(headers: Iterable[tuple[str, str]]) -> Headers:
    return tuple((name, value) for name, value in headers if name.lower() not in _NOT_FORWARDED)


def stream_error(path: str, content_type: str, message: str) -> bytes:
    """The last bytes of a stream cut by a replica's failure, in the stream's own format."""
    if content_type.startswith("text/event-stream"):
        if path.startswith("/v1/messages"):
            data = json.dumps(anthropic.error_body(503, message))
            return f"event: error\ndata: {data}\n\n".encode()
        return b"data: " + json.dumps(openai.error_body(503, message)).encode() + b"\n\ndata: [DONE]\n\n"
    return json.dumps({"error": message}).encode() + b"\n"
