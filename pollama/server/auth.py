"""Opt-in API keys (beyond Ollama): a bearer token on every API, off unless keys are configured.

Keys come from ``POLLAMA_API_KEYS`` and ``POLLAMA_API_KEYS_FILE`` (``pollama.config``). A request
presents one as ``Authorization: Bearer <key>``; under ``/v1/messages`` Anthropic's ``x-api-key``
header is accepted too. A missing or wrong key is a 401 in the error shape of the API asked (native,
OpenAI or Anthropic), with ``WWW-Authenticate: Bearer``.

Open without a key: the health check (``GET``/``HEAD /``), which clients use to see that a server is
up, the web page's files (``GET``/``HEAD /ui``, ``/ui/``, ``/ui/static/*``: code, no data), and
``OPTIONS``, which browsers send as a CORS preflight without credentials (the CORS middleware in front
answers those from other origins before they reach this one).

Keys are compared in constant time: the SHA-256 of what was presented against the SHA-256 of every
key with ``hmac.compare_digest``, without stopping at a match, so neither a key's length nor which
key matched shows in the timing.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Iterable
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from pollama.config import Settings
from pollama.gocompat import gojson

__all__ = ["ApiKeyAuth", "warn_if_open"]

log = logging.getLogger(__name__)

# The web page's files (server/routes/ui.py) hold no data, only code: served without a key, the page
# then asks for one when the API it calls answers 401.
_OPEN_PATHS = frozenset({"/", "/ui", "/ui/"})
_OPEN_PREFIX = "/ui/static/"
_OPEN_METHODS = frozenset({"GET", "HEAD"})
_ANTHROPIC = "/v1/messages"

MISSING = "unauthorized: missing API key (send one of the server's keys as 'Authorization: Bearer KEY')"
MISSING_ANTHROPIC = "unauthorized: missing API key (send one of the server's keys as 'x-api-key: KEY')"
INVALID = "unauthorized: invalid API key"


def _digest(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()


def _bearer(value: str) -> str | None:
    scheme, _, token = value.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _is_anthropic(path: str) -> bool:
    return path == _ANTHROPIC or path.startswith(_ANTHROPIC + "/")


def error_body(path: str, message: str) -> dict[str, Any]:
    """The 401's body in the shape of the API that ``path`` belongs to."""
    if _is_anthropic(path):
        return {"type": "error", "error": {"type": "authentication_error", "message": message}}
    if path.startswith("/v1/"):
        return {
            "error": {"message": message, "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}
        }
    return {"error": message}


class ApiKeyAuth:
    """Pure ASGI: a request without one of ``keys`` gets a 401; with no keys at all, nothing is checked."""

    def __init__(self, app: ASGIApp, *, keys: Iterable[str]) -> None:
        self.app = app
        self.digests = tuple(_digest(key.encode()) for key in keys)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.digests or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        if method == "OPTIONS" or ((path in _OPEN_PATHS or path.startswith(_OPEN_PREFIX)) and method in _OPEN_METHODS):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        presented = [token for value in headers.getlist("authorization") if (token := _bearer(value))]
        if _is_anthropic(path):
            presented += [value.strip() for value in headers.getlist("x-api-key") if value.strip()]
        if not presented:
            await _refuse(send, path, MISSING_ANTHROPIC if _is_anthropic(path) else MISSING)
            return
        if not any([self._matches(token) for token in presented]):  # a list: every token is checked
            await _refuse(send, path, INVALID)
            return
        await self.app(scope, receive, send)

    def _matches(self, token: str) -> bool:
        presented = _digest(token.encode("latin-1"))  # the header's own bytes (ASGI headers are latin-1)
        matched = False
        for digest in self.digests:  # no early exit: every key costs the same
            matched |= hmac.compare_digest(presented, digest)
        return matched


async def _refuse(send: Send, path: str, message: str) -> None:
    # The request's body is left unread and the connection closed: an unauthenticated client cannot
    # make the server read, or wait for, an upload.
    body = gojson.dumps(error_body(path, message))
    headers = [
        (b"content-type", b"application/json; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"www-authenticate", b"Bearer"),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": 401, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def warn_if_open(settings: Settings) -> None:
    """One warning at start when the server listens beyond this machine with no keys configured."""
    if settings.api_keys or settings.host.is_loopback():
        return
    log.warning(
        "listening on %s without API keys: anyone who can reach this port can use the server "
        "(pull, delete and run models); set POLLAMA_API_KEYS or POLLAMA_API_KEYS_FILE to require a key",
        settings.host.hostport,
    )
