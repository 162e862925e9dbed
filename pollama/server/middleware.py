"""CORS and DNS-rebinding protection, as Ollama configures them (spec A.0).

CORS follows gin-contrib/cors: allowed origins with one ``*`` wildcard each,
403 for other origins, 204 for preflights. Host checking applies only when the
server listens on a loopback address: then the ``Host`` header must name this
machine or a local or private address.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Iterable, MutableMapping
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from pollama.config import split_host_port

__all__ = ["HostAndOriginMiddleware"]

log = logging.getLogger(__name__)

ALLOWED_METHODS = "GET,POST,PUT,PATCH,DELETE,HEAD,OPTIONS"
ALLOWED_HEADERS = ",".join(
    [
        "Authorization",
        "Content-Type",
        "User-Agent",
        "Accept",
        "X-Requested-With",
        "Openai-Beta",
        "X-Stainless-Arch",
        "X-Stainless-Async",
        "X-Stainless-Custom-Poll-Interval",
        "X-Stainless-Helper-Method",
        "X-Stainless-Lang",
        "X-Stainless-Os",
        "X-Stainless-Package-Version",
        "X-Stainless-Poll-Helper",
        "X-Stainless-Retry-Count",
        "X-Stainless-Runtime",
        "X-Stainless-Runtime-Version",
        "X-Stainless-Timeout",
    ]
)
MAX_AGE = str(12 * 3600)
_ORIGIN_SCHEMES = (
    "http://",
    "https://",
    "chrome-extension://",
    "safari-extension://",
    "moz-extension://",
    "ms-browser-extension://",
)
_LOCAL_SUFFIXES = (".localhost", ".local", ".internal")
# Go's netip.Addr.IsPrivate: RFC 1918 and IPv6 unique-local addresses.
_PRIVATE = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")]


class OriginPolicy:
    def __init__(self, origins: Iterable[str]) -> None:
        self.allow_all = False
        self.exact: set[str] = set()
        self.wildcards: list[tuple[str, str]] = []
        for raw in origins:
            origin = raw.strip().lower()
            if origin == "*":
                self.allow_all = True
            elif origin.count("*") > 1:
                log.warning("ignoring origin %r: only one * is allowed", raw)
            elif "*" in origin:
                prefix, _, suffix = origin.partition("*")
                self.wildcards.append((prefix, suffix))
            elif origin.startswith(_ORIGIN_SCHEMES):
                self.exact.add(origin)
            else:
                log.warning("ignoring origin %r: it must contain '*' or start with a known scheme", raw)

    def allows(self, origin: str) -> bool:
        if self.allow_all or origin in self.exact:
            return True
        for prefix, suffix in self.wildcards:
            if not prefix and origin.endswith(suffix):
                return True
            if not suffix and origin.startswith(prefix):
                return True
            if origin.startswith(prefix) and origin.endswith(suffix):
                return True
        return False


def _strip_port(host: str) -> str:
    split = split_host_port(host)
    return host if split is None else split[0]


def _machine_addresses() -> set[str]:
    try:
        _name, _aliases, addresses = socket.gethostbyname_ex(socket.gethostname())
    except OSError:
        return set()
    return set(addresses)


class HostAndOriginMiddleware:
    def __init__(self, app: ASGIApp, *, origins: Iterable[str], check_hosts: bool) -> None:
        self.app = app
        self.origins = OriginPolicy(origins)
        self.check_hosts = check_hosts
        self.hostname = socket.gethostname().lower()
        self.addresses = _machine_addresses() if check_hosts else set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        method = scope["method"]
        extra: list[tuple[bytes, bytes]] = []

        origin = headers.get("origin", "")
        host_header = headers.get("host", "")
        if origin and origin not in (f"http://{host_header}", f"https://{host_header}"):
            if not self.origins.allows(origin):
                await _respond(send, 403)
                return
            extra = self._allow_origin(origin)
            if method == "OPTIONS":
                preflight = [
                    (b"access-control-allow-methods", ALLOWED_METHODS.encode()),
                    (b"access-control-allow-headers", ALLOWED_HEADERS.encode()),
                    (b"access-control-max-age", MAX_AGE.encode()),
                ]
                if not self.origins.allow_all:
                    preflight += [
                        (b"vary", b"Access-Control-Request-Method"),
                        (b"vary", b"Access-Control-Request-Headers"),
                    ]
                await _respond(send, 204, [*extra, *preflight])
                return

        if self.check_hosts:
            verdict = self._host_verdict(_strip_port(host_header).lower())
            if verdict == "deny":
                # CORS headers are already set when the host check refuses, as with Gin's middleware chain.
                await _respond(send, 403, extra)
                return
            if verdict == "name" and method == "OPTIONS":
                await _respond(send, 204, extra)
                return

        if not extra:
            await self.app(scope, receive, send)
            return

        async def send_with_cors(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_cors)

    def _allow_origin(self, origin: str) -> list[tuple[bytes, bytes]]:
        if self.origins.allow_all:
            return [(b"access-control-allow-origin", b"*")]
        return [(b"access-control-allow-origin", origin.encode()), (b"vary", b"Origin")]

    def _host_verdict(self, host: str) -> str:
        """``ip`` or ``name`` for an allowed host, ``deny`` otherwise."""
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None
        if address is not None:
            if address.is_loopback or address.is_unspecified or str(address) in self.addresses:
                return "ip"
            if any(address in network for network in _PRIVATE if network.version == address.version):
                return "ip"
        if host in ("", "localhost", self.hostname) or host.endswith(_LOCAL_SUFFIXES):
            return "name"
        return "deny"


async def _respond(send: Send, status: int, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-length", b"0"), *(headers or [])],
        }
    )
    await send({"type": "http.response.body", "body": b""})
