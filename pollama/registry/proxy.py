"""Which proxy a registry request goes through: Go's ``ProxyFromEnvironment`` rules.

``http://`` URLs use ``HTTP_PROXY``, ``https://`` URLs ``HTTPS_PROXY``; ``NO_PROXY``
lists hosts (``example.com`` also covers its subdomains, ``.example.com`` only
them), IP addresses, CIDR ranges, optional ``:port``s, or ``*``. Loopback
addresses and ``localhost`` never go through a proxy.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

__all__ = ["ProxyRules", "RoutingTransport"]


def _proxy_url(value: str) -> str:
    value = value.strip()
    return value if "://" in value else f"http://{value}"


@dataclass(frozen=True)
class _Exclusion:
    host: str  # lower case, without a leading dot; "" for an address range
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None
    port: int | None
    subdomains_only: bool

    def matches(self, host: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address | None, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.network is not None:
            return address is not None and address in self.network
        if host == self.host:
            return not self.subdomains_only
        return host.endswith("." + self.host)


def _exclusion(entry: str) -> _Exclusion | None:
    entry = entry.strip().lower()
    if not entry:
        return None
    try:
        return _Exclusion("", ipaddress.ip_network(entry.strip("[]"), strict=False), None, False)
    except ValueError:
        pass
    host, port = entry, None
    if entry.startswith("["):
        bracket = entry.find("]")
        host, rest = entry[1:bracket], entry[bracket + 1 :]
        port = int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    elif entry.count(":") == 1:
        host, _, port_text = entry.partition(":")
        port = int(port_text) if port_text.isdigit() else None
    try:
        return _Exclusion("", ipaddress.ip_network(host, strict=False), port, False)
    except ValueError:
        pass
    # "*.example.com" means ".example.com"; "*example.com" stays literal and matches nothing, as in Go.
    for prefix in ("*.", "."):
        if host.startswith(prefix):
            return _Exclusion(host.removeprefix(prefix), None, port, subdomains_only=True)
    return _Exclusion(host, None, port, subdomains_only=False)


@dataclass(frozen=True)
class ProxyRules:
    http_proxy: str = ""
    https_proxy: str = ""
    no_proxy: str = ""

    def proxy_for(self, url: httpx.URL) -> str | None:
        """The proxy URL for a request to ``url``, or None to connect directly."""
        proxy = {"http": self.http_proxy, "https": self.https_proxy}.get(url.scheme, "")
        if not proxy.strip():
            return None
        host = url.host.lower()
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None
        if host == "localhost" or (address is not None and address.is_loopback):
            return None
        entries = [entry.strip() for entry in self.no_proxy.split(",")]
        if "*" in entries:
            return None
        for entry in entries:
            exclusion = _exclusion(entry)
            if exclusion is not None and exclusion.matches(host, address, port):
                return None
        return _proxy_url(proxy)


class RoutingTransport(httpx.AsyncBaseTransport):
    """Sends each request directly or through the proxy its URL calls for."""

    def __init__(self, rules: ProxyRules, **transport_options: object) -> None:
        self._rules = rules
        self._options: Mapping[str, object] = transport_options
        self._direct = httpx.AsyncHTTPTransport(**transport_options)  # type: ignore[arg-type]
        self._proxied: dict[str, httpx.AsyncHTTPTransport] = {}

    def _transport(self, url: httpx.URL) -> httpx.AsyncHTTPTransport:
        proxy = self._rules.proxy_for(url)
        if proxy is None:
            return self._direct
        if proxy not in self._proxied:
            self._proxied[proxy] = httpx.AsyncHTTPTransport(proxy=proxy, **self._options)  # type: ignore[arg-type]
        return self._proxied[proxy]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._transport(request.url).handle_async_request(request)

    async def aclose(self) -> None:
        await self._direct.aclose()
        for transport in self._proxied.values():
            await transport.aclose()
