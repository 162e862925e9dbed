"""The HTTP-level limits on one request: header and body read timeouts, the JSON body size.

Ollama sets none of these; without them a slow or half-open client holds a connection forever and a
huge body is read whole into memory. The JSON-level limits (depth, numbers) are in ``bodies``.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from pollama.config import Limits
from pollama.errors import RequestTimeout, TooLarge

__all__ = ["BODY_TIMED_OUT", "BODY_TOO_LARGE", "RequestBodyLimits", "protocol_with_header_timeout"]

log = logging.getLogger(__name__)

BODY_TOO_LARGE = "http: request body too large"  # Go's http.MaxBytesReader
BODY_TIMED_OUT = "timed out reading the request body"
# Blobs are model weights, gigabytes by design; they stream to disk and are checked by digest.
_UNLIMITED_PATHS = ("/api/blobs/",)


class RequestBodyLimits:
    """413 for a JSON body over ``max_body_bytes``; 408 when a body stops arriving for ``body_timeout``.

    Both are raised as domain errors from ``receive`` so they reach the client through the app's
    error handling, whichever route is reading; the connection is then closed, as the rest of the
    body will not be read.
    """

    def __init__(self, app: ASGIApp, *, limits: Limits) -> None:
        self.app = app
        self.max_body_bytes = limits.max_body_bytes
        self.body_timeout = limits.body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limited = not scope["path"].startswith(_UNLIMITED_PATHS)
        declared = Headers(scope=scope).get("content-length", "")
        if limited and declared.isdigit() and int(declared) > self.max_body_bytes:
            await _refuse(send, 413, BODY_TOO_LARGE)
            return

        received = 0
        body_done = False
        refused = False

        async def limited_receive() -> Message:
            nonlocal received, body_done, refused
            if body_done:
                return await receive()  # after the body: only the wait for a disconnect, which has no limit
            try:
                async with asyncio.timeout(self.body_timeout):
                    message = await receive()
            except TimeoutError:
                refused = True
                raise RequestTimeout(BODY_TIMED_OUT) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                body_done = not message.get("more_body", False)
                if limited and received > self.max_body_bytes:
                    refused = True
                    raise TooLarge(BODY_TOO_LARGE)
            return message

        async def closing_send(message: Message) -> None:
            if refused and message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        await self.app(scope, limited_receive, closing_send)


async def _refuse(send: Send, status: int, message: str) -> None:
    body = b'{"error":"' + message.encode() + b'"}'
    headers = [
        (b"content-type", b"application/json; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol, closing a connection whose request headers do not arrive in time.

    uvicorn times out only idle keep-alive connections; one that never sends a byte, or stops halfway
    through its headers, would otherwise stay open forever.
    """

    header_timeout: float = Limits().header_timeout
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_timer is None:
            self._arm_header_timer()

    def on_headers_complete(self) -> None:
        self._disarm_header_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def shutdown(self) -> None:
        # An idle HTTPS connection closed politely waits for the client's TLS close_notify, which an idle
        # client (a pooled keep-alive connection) never sends: the server's shutdown would wait out its
        # whole grace period. Between requests nothing is lost by cutting the connection instead.
        idle = self.cycle is None or self.cycle.response_complete
        if idle and self.transport.get_extra_info("sslcontext") is not None:
            self.transport.abort()
            return
        super().shutdown()

    def _arm_header_timer(self) -> None:
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_timed_out)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_timed_out(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            log.debug("closing a connection whose request headers took over %gs", self.header_timeout)
            self.transport.close()


def protocol_with_header_timeout(seconds: float) -> type[HttpToolsProtocol]:
    """The protocol class uvicorn should use (``uvicorn.Config(http=...)``)."""
    return type("HeaderTimeoutProtocol", (_HeaderTimeoutProtocol,), {"header_timeout": seconds})
