"""pollama.registry.proxy: which proxy a request goes through.

Reference: Go's golang.org/x/net/http/httpproxy (``Config.ProxyFunc``, ``useProxy``, ``config.init``),
which Ollama uses through ``http.ProxyFromEnvironment``.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from pollama.registry.proxy import ProxyRules, RoutingTransport

HTTP_PROXY = "http://http-proxy:3128"
HTTPS_PROXY = "http://https-proxy:3129"


def proxy_for(url: str, no_proxy: str = "", *, http: str = HTTP_PROXY, https: str = HTTPS_PROXY) -> str | None:
    return ProxyRules(http_proxy=http, https_proxy=https, no_proxy=no_proxy).proxy_for(httpx.URL(url))


def expected(url: str) -> str:
    return HTTPS_PROXY if url.startswith("https:") else HTTP_PROXY


def test_scheme_picks_the_variable() -> None:
    assert proxy_for("http://registry.example.com/v2/") == HTTP_PROXY
    assert proxy_for("https://registry.example.com/v2/") == HTTPS_PROXY


def test_https_does_not_fall_back_to_http_proxy() -> None:
    assert proxy_for("https://registry.example.com/", https="") is None
    assert proxy_for("http://registry.example.com/", http="") is None
    assert proxy_for("http://registry.example.com/", http="   ") is None
    assert proxy_for("https://registry.example.com/", http="", https=HTTPS_PROXY) == HTTPS_PROXY


def test_no_proxies_configured() -> None:
    assert ProxyRules().proxy_for(httpx.URL("https://registry.example.com/")) is None


@pytest.mark.parametrize(
    ("configured", "used"),
    [
        ("proxy.corp:3128", "http://proxy.corp:3128"),
        ("  proxy.corp:3128  ", "http://proxy.corp:3128"),
        ("10.1.2.3:8080", "http://10.1.2.3:8080"),
        ("http://proxy.corp:3128", "http://proxy.corp:3128"),
        ("https://proxy.corp:443", "https://proxy.corp:443"),
        ("socks5://proxy.corp:1080", "socks5://proxy.corp:1080"),
    ],
)
def test_proxy_without_scheme_gets_http(configured: str, used: str) -> None:
    assert proxy_for("https://registry.example.com/", https=configured) == used


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost/",
        "https://localhost:5000/v2/",
        "https://LOCALHOST:5000/v2/",
        "http://127.0.0.1:11434/",
        "http://127.8.9.10/",
        "https://[::1]:5000/",
    ],
)
def test_loopback_is_never_proxied(url: str) -> None:
    assert proxy_for(url) is None


def test_non_loopback_addresses_are_proxied() -> None:
    assert proxy_for("http://10.0.0.5/") == HTTP_PROXY
    assert proxy_for("https://[2001:db8::1]:5000/") == HTTPS_PROXY
    assert proxy_for("http://localhost.example.com/") == HTTP_PROXY


# Go's config.init: ``if p == "*"`` on any trimmed entry switches every matcher to allMatch.
@pytest.mark.parametrize(
    "no_proxy", ["*", " * ", "*,", ",*", "example.org,*", "*,example.org", "example.org, * ,10.0.0.0/8"]
)
def test_star_disables_proxying(no_proxy: str) -> None:
    assert proxy_for("https://registry.example.com/", no_proxy) is None
    assert proxy_for("http://10.0.0.1:8080/", no_proxy) is None


def test_a_double_star_is_not_the_wildcard() -> None:
    assert proxy_for("https://registry.example.com/", "**") == HTTPS_PROXY


# Go strips only a leading "*." ; "*example.com" becomes the suffix ".*example.com", which no host name has.
@pytest.mark.parametrize("url", ["https://example.com/", "https://registry.example.com/"])
def test_star_without_a_dot_is_literal(url: str) -> None:
    assert proxy_for(url, "*example.com") == HTTPS_PROXY


# (url, NO_PROXY, direct?) -- each row as Go's useProxy decides it.
CASES = [
    # a domain: itself and its subdomains, not look-alikes
    ("https://example.com/", "example.com", True),
    ("https://registry.example.com/", "example.com", True),
    ("https://a.b.example.com/", "example.com", True),
    ("https://notexample.com/", "example.com", False),
    ("https://example.com.evil.io/", "example.com", False),
    ("https://example.org/", "example.com", False),
    # a leading dot: subdomains only
    ("https://example.com/", ".example.com", False),
    ("https://registry.example.com/", ".example.com", True),
    ("https://notexample.com/", ".example.com", False),
    # *.domain: the same as .domain
    ("https://example.com/", "*.example.com", False),
    ("https://registry.example.com/", "*.example.com", True),
    # case and spaces do not matter
    ("https://Registry.Example.com/", "EXAMPLE.COM", True),
    ("https://registry.example.com/", "  other.io ,  example.com  ", True),
    ("https://other.io/", "  other.io ,  example.com  ", True),
    ("https://third.io/", "  other.io ,  example.com  ", False),
    ("https://registry.example.com/", ",,example.com,,", True),
    # host:port covers only that port, the scheme's default port included
    ("https://registry.example.com:5000/", "registry.example.com:5000", True),
    ("https://registry.example.com/", "registry.example.com:5000", False),
    ("https://registry.example.com:5001/", "registry.example.com:5000", False),
    ("https://registry.example.com/", "registry.example.com:443", True),
    ("http://registry.example.com/", "registry.example.com:443", False),
    ("http://registry.example.com/", "registry.example.com:80", True),
    ("https://sub.example.com:5000/", "example.com:5000", True),
    ("https://sub.example.com:5000/", ".example.com:5000", True),
    ("https://sub.example.com:5001/", ".example.com:5000", False),
    # IP addresses
    ("http://10.1.2.3/", "10.1.2.3", True),
    ("http://10.1.2.4/", "10.1.2.3", False),
    ("http://10.1.2.3:8080/", "10.1.2.3:8080", True),
    ("http://10.1.2.3:8081/", "10.1.2.3:8080", False),
    ("http://10.1.2.3/", "10.1.2.3:80", True),
    # CIDR ranges
    ("http://10.200.3.4/", "10.0.0.0/8", True),
    ("http://11.0.0.1/", "10.0.0.0/8", False),
    ("https://192.168.1.77:5000/", "192.168.1.0/24", True),
    ("https://192.168.2.77:5000/", "192.168.1.0/24", False),
    ("https://[2001:db8::42]/", "2001:db8::/32", True),
    ("https://[2001:db9::42]/", "2001:db8::/32", False),
    # a CIDR range says nothing about host names
    ("https://registry.example.com/", "10.0.0.0/8", False),
    # IPv6
    ("https://[2001:db8::1]/", "2001:db8::1", True),
    ("https://[2001:db8::1]:5000/", "[2001:db8::1]:5000", True),
    ("https://[2001:db8::1]:5001/", "[2001:db8::1]:5000", False),
    ("https://[2001:db8::2]:5000/", "[2001:db8::1]:5000", False),
    # an IP entry does not cover names
    ("https://registry.example.com/", "10.1.2.3", False),
]


@pytest.mark.parametrize(("url", "no_proxy", "direct"), CASES)
def test_no_proxy_rules(url: str, no_proxy: str, direct: bool) -> None:
    assert proxy_for(url, no_proxy) == (None if direct else expected(url))


@pytest.mark.parametrize("url", ["https://[2001:db8::1]/", "https://[2001:db8::1]:5000/"])
def test_bracketed_ipv6_entry_without_port(url: str) -> None:
    # Go's httpproxy keeps the brackets when there is no port, so "[2001:db8::1]" never matches there;
    # pollama reads it as the address, which is what a user writing it means.
    assert proxy_for(url, "[2001:db8::1]") is None


def test_routing_transport_uses_one_proxied_transport_per_proxy() -> None:
    rules = ProxyRules(http_proxy=HTTP_PROXY, https_proxy=HTTPS_PROXY, no_proxy="direct.io")

    async def go() -> None:
        transport = RoutingTransport(rules)
        try:
            direct = transport._transport(httpx.URL("https://direct.io/"))
            assert direct is transport._direct
            assert transport._transport(httpx.URL("http://localhost/")) is transport._direct
            via_https = transport._transport(httpx.URL("https://a.io/"))
            assert via_https is not transport._direct
            assert transport._transport(httpx.URL("https://b.io/")) is via_https
            via_http = transport._transport(httpx.URL("http://a.io/"))
            assert via_http is not via_https
            assert set(transport._proxied) == {HTTP_PROXY, HTTPS_PROXY}
        finally:
            await transport.aclose()

    asyncio.run(asyncio.wait_for(go(), 5))
