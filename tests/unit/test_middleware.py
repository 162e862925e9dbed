"""HostAndOriginMiddleware: CORS as gin-contrib/cors v1.7.2 configured by Ollama, and allowedHostsMiddleware.

Go references: server/routes.go GenerateRoutes (cors.DefaultConfig + AllowWildcard + AllowBrowserExtensions +
AllowHeaders + AllowOrigins = envconfig.AllowedOrigins()), server/routes.go allowedHostsMiddleware/allowedHost,
gin-contrib/cors v1.7.2 config.go (applyCors, validateWildcardOrigin) and utils.go (generate*Headers).
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from pollama.config import _origins
from pollama.server import middleware
from pollama.server.middleware import HostAndOriginMiddleware

# The AllowHeaders list of Ollama's GenerateRoutes, as written there.
OLLAMA_ALLOW_HEADERS = [
    "Authorization",
    "Content-Type",
    "User-Agent",
    "Accept",
    "X-Requested-With",
    "OpenAI-Beta",
    "x-stainless-arch",
    "x-stainless-async",
    "x-stainless-custom-poll-interval",
    "x-stainless-helper-method",
    "x-stainless-lang",
    "x-stainless-os",
    "x-stainless-package-version",
    "x-stainless-poll-helper",
    "x-stainless-retry-count",
    "x-stainless-runtime",
    "x-stainless-runtime-version",
    "x-stainless-timeout",
]


def canonical_header_key(key: str) -> str:
    """Go's http.CanonicalHeaderKey."""
    return "-".join(part[:1].upper() + part[1:].lower() for part in key.split("-"))


# utils.go generatePreflightHeaders: normalize (trim, lower, dedupe) then convert
EXPECTED_ALLOW_HEADERS = ",".join(canonical_header_key(h.strip().lower()) for h in OLLAMA_ALLOW_HEADERS)
# cors.DefaultConfig().AllowMethods, upper-cased
EXPECTED_ALLOW_METHODS = "GET,POST,PUT,PATCH,DELETE,HEAD,OPTIONS"
EXPECTED_MAX_AGE = str(12 * 60 * 60)


async def endpoint(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"app {request.method}", headers={"x-app": "1"})


ROUTES = [Route("/{path:path}", endpoint, methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])]


def client(*, env: dict[str, str] | None = None, check_hosts: bool = False) -> TestClient:
    app = HostAndOriginMiddleware(Starlette(routes=ROUTES), origins=_origins(env or {}), check_hosts=check_hosts)
    return TestClient(app, base_url="http://127.0.0.1:11434")


def request(c: TestClient, method: str = "GET", path: str = "/api/tags", **headers: str) -> Any:
    return c.request(method, path, headers={k.replace("_", "-"): v for k, v in headers.items()})


def assert_forbidden(response: Any) -> None:
    assert response.status_code == 403
    assert response.content == b""
    assert "x-app" not in response.headers


def assert_passed_through(response: Any, method: str = "GET") -> None:
    assert response.status_code == 200
    assert response.headers["x-app"] == "1"
    if method != "HEAD":
        assert response.text == f"app {method}"


# --- origins list -------------------------------------------------------------------------------------------


def test_default_origins_match_envconfig() -> None:
    # envconfig.AllowedOrigins
    assert _origins({}) == (
        "http://localhost",
        "https://localhost",
        "http://localhost:*",
        "https://localhost:*",
        "http://127.0.0.1",
        "https://127.0.0.1",
        "http://127.0.0.1:*",
        "https://127.0.0.1:*",
        "http://0.0.0.0",
        "https://0.0.0.0",
        "http://0.0.0.0:*",
        "https://0.0.0.0:*",
        "app://*",
        "file://*",
        "tauri://*",
        "vscode-webview://*",
        "vscode-file://*",
    )
    extra = _origins({"OLLAMA_ORIGINS": "https://a.example,https://b.example"})
    assert extra[:2] == ("https://a.example", "https://b.example")
    assert extra[2:] == _origins({})


# --- CORS: requests without CORS ----------------------------------------------------------------------------


def test_no_origin_passes_through_without_cors_headers() -> None:
    response = request(client())
    assert_passed_through(response)
    assert "access-control-allow-origin" not in response.headers
    assert "vary" not in response.headers


def test_no_origin_options_passes_through() -> None:
    response = request(client(), "OPTIONS")
    assert_passed_through(response, "OPTIONS")


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_same_origin_is_not_cors(scheme: str) -> None:
    # applyCors: origin == "http://"+host || origin == "https://"+host -> not a CORS request
    c = client()
    response = request(c, origin=f"{scheme}://evil.example:8080", host="evil.example:8080")
    assert_passed_through(response)
    assert "access-control-allow-origin" not in response.headers
    response = request(c, "OPTIONS", origin=f"{scheme}://evil.example:8080", host="evil.example:8080")
    assert_passed_through(response, "OPTIONS")


def test_same_origin_check_is_exact() -> None:
    # the port is part of the comparison: a different port is cross-origin (and here not allowed)
    assert_forbidden(request(client(), origin="http://evil.example:9999", host="evil.example:8080"))


# --- CORS: allowed origins ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "origin",
    [
        "http://localhost",
        "https://localhost",
        "http://localhost:3000",
        "https://localhost:8443",
        "http://127.0.0.1",
        "http://127.0.0.1:5173",
        "https://127.0.0.1:1",
        "http://0.0.0.0",
        "http://0.0.0.0:8080",
        "app://obsidian.md",
        "app://",
        "file://",
        "file:///home/user/index.html",
        "tauri://localhost",
        "vscode-webview://1234abcd",
        "vscode-file://vscode-app",
        # the wildcard is a plain prefix match: "http://localhost:" followed by anything
        "http://localhost:not-a-port",
    ],
)
def test_allowed_origin_is_echoed(origin: str) -> None:
    response = request(client(), origin=origin)
    assert_passed_through(response)
    assert response.headers["access-control-allow-origin"] == origin
    assert response.headers.get_list("vary") == ["Origin"]
    # handleNormal sets no preflight headers and no credentials header
    assert "access-control-allow-methods" not in response.headers
    assert "access-control-allow-credentials" not in response.headers
    assert "access-control-max-age" not in response.headers


@pytest.mark.parametrize("method", ["POST", "DELETE", "PUT", "PATCH"])
def test_allowed_origin_other_methods(method: str) -> None:
    response = request(client(), method, origin="http://localhost:3000")
    assert_passed_through(response, method)
    assert response.headers["access-control-allow-origin"] == "http://localhost:3000"


def test_allowed_origin_head() -> None:
    response = request(client(), "HEAD", origin="http://localhost:3000")
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "http://localhost:3000"


# --- CORS: disallowed origins -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "origin",
    [
        "http://evil.example",
        "https://evil.example:443",
        "http://localhost.evil.example",  # not "http://localhost:" + anything
        "http://localhost@evil.example",
        "http://127.0.0.2",
        "http://127.0.0.1.evil.example",
        "http://192.168.1.10:3000",
        "http://[::1]:3000",
        "null",
        "HTTP://LOCALHOST",  # origins are compared as sent
        "chrome-extension://abcdefghijklmnop",  # an extension scheme is valid syntax, but must be listed
        "moz-extension://1234",
        "ws://localhost:3000",
        "https://app.example",
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST", "OPTIONS"])
def test_disallowed_origin_forbidden(origin: str, method: str) -> None:
    response = request(client(), method, origin=origin)
    assert_forbidden(response)
    assert "access-control-allow-origin" not in response.headers


# --- CORS: preflight ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("origin", ["http://localhost:3000", "app://x", "https://127.0.0.1"])
def test_preflight(origin: str) -> None:
    response = request(
        client(),
        "OPTIONS",
        "/api/chat",
        origin=origin,
        access_control_request_method="POST",
        access_control_request_headers="content-type,x-stainless-os",
    )
    assert response.status_code == 204
    assert response.content == b""
    assert "x-app" not in response.headers  # the chain is aborted
    assert response.headers["access-control-allow-origin"] == origin
    assert response.headers["access-control-allow-methods"] == EXPECTED_ALLOW_METHODS
    assert response.headers["access-control-allow-headers"] == EXPECTED_ALLOW_HEADERS
    assert response.headers["access-control-max-age"] == EXPECTED_MAX_AGE
    assert response.headers.get_list("vary") == [
        "Origin",
        "Access-Control-Request-Method",
        "Access-Control-Request-Headers",
    ]
    assert "access-control-allow-credentials" not in response.headers
    assert "access-control-allow-private-network" not in response.headers


def test_preflight_allow_headers_value() -> None:
    assert EXPECTED_ALLOW_HEADERS == (
        "Authorization,Content-Type,User-Agent,Accept,X-Requested-With,Openai-Beta,X-Stainless-Arch,"
        "X-Stainless-Async,X-Stainless-Custom-Poll-Interval,X-Stainless-Helper-Method,X-Stainless-Lang,"
        "X-Stainless-Os,X-Stainless-Package-Version,X-Stainless-Poll-Helper,X-Stainless-Retry-Count,"
        "X-Stainless-Runtime,X-Stainless-Runtime-Version,X-Stainless-Timeout"
    )
    assert middleware.ALLOWED_HEADERS == EXPECTED_ALLOW_HEADERS


def test_preflight_without_request_method_is_still_preflight() -> None:
    # gin-contrib/cors treats every OPTIONS with an allowed Origin as a preflight
    response = request(client(), "OPTIONS", "/anything", origin="http://localhost")
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "http://localhost"


def test_preflight_happens_before_host_check() -> None:
    # cors.New runs before allowedHostsMiddleware and aborts with 204
    response = request(client(check_hosts=True), "OPTIONS", origin="http://localhost:3000", host="evil.example")
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "http://localhost:3000"


def test_disallowed_origin_checked_before_host() -> None:
    response = request(client(check_hosts=True), origin="http://evil.example", host="localhost:11434")
    assert_forbidden(response)


# --- CORS: OLLAMA_ORIGINS -----------------------------------------------------------------------------------


def test_ollama_origins_exact_extra() -> None:
    c = client(env={"OLLAMA_ORIGINS": "https://app.example,chrome-extension://abcdef"})
    for origin in ("https://app.example", "chrome-extension://abcdef", "http://localhost:1"):
        response = request(c, origin=origin)
        assert_passed_through(response)
        assert response.headers["access-control-allow-origin"] == origin
    assert_forbidden(request(c, origin="https://app.example:8443"))
    assert_forbidden(request(c, origin="http://app.example"))
    assert_forbidden(request(c, origin="chrome-extension://other"))


def test_ollama_origins_are_normalized() -> None:
    # utils.go normalize: TrimSpace + ToLower on the configured exact origins (Validate has already
    # required them to start with a scheme, so a leading space would make Ollama panic; a trailing one is fine)
    c = client(env={"OLLAMA_ORIGINS": "https://App.Example ,https://b.example"})
    assert request(c, origin="https://app.example").status_code == 200
    assert request(c, origin="https://b.example").status_code == 200


@pytest.mark.parametrize(
    ("pattern", "allowed", "denied"),
    [
        (
            "https://*.example.com",
            ["https://api.example.com", "https://a.b.example.com"],
            ["http://api.example.com", "https://example.com.evil"],
        ),
        ("*.example.com", ["https://api.example.com", "http://x.example.com"], ["https://example.org"]),
        ("https://example.com:*", ["https://example.com:8443"], ["https://example.com", "https://example.company"]),
        ("moz-extension://*", ["moz-extension://abc-123"], ["chrome-extension://abc"]),
    ],
)
def test_ollama_origins_wildcards(pattern: str, allowed: list[str], denied: list[str]) -> None:
    c = client(env={"OLLAMA_ORIGINS": pattern})
    for origin in allowed:
        response = request(c, origin=origin)
        assert_passed_through(response)
        assert response.headers["access-control-allow-origin"] == origin
    for origin in denied:
        assert_forbidden(request(c, origin=origin))


def test_ollama_origins_star_allows_every_origin() -> None:
    # newCors: "*" in AllowOrigins sets AllowAllOrigins; then Access-Control-Allow-Origin is "*" (not the
    # echoed origin) and no Vary header is set (utils.go generateNormalHeaders / generatePreflightHeaders).
    c = client(env={"OLLAMA_ORIGINS": "*"})
    for origin in ("http://evil.example", "null", "https://whatever.example:1234"):
        response = request(c, origin=origin)
        assert_passed_through(response)
        assert response.headers["access-control-allow-origin"] == "*"
        assert "vary" not in response.headers
    preflight = request(c, "OPTIONS", origin="http://evil.example", access_control_request_method="POST")
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert preflight.headers["access-control-allow-methods"] == EXPECTED_ALLOW_METHODS
    assert preflight.headers["access-control-allow-headers"] == EXPECTED_ALLOW_HEADERS
    assert preflight.headers["access-control-max-age"] == EXPECTED_MAX_AGE
    assert "vary" not in preflight.headers


def test_ollama_origins_star_still_allows_requests() -> None:
    # whatever headers are sent, "*" lets every origin through to the app
    c = client(env={"OLLAMA_ORIGINS": "https://x.example,*"})
    assert_passed_through(request(c, origin="http://anything.example"))
    assert request(c, "OPTIONS", origin="http://anything.example").status_code == 204


def test_invalid_configured_origins_do_not_allow_anything() -> None:
    # Ollama's cors.New panics on these ("bad origin" / "only one * is allowed"); pollama ignores them.
    c = client(env={"OLLAMA_ORIGINS": "evil.example,http://*.a.*.example"})
    assert_forbidden(request(c, origin="evil.example"))
    assert_forbidden(request(c, origin="http://x.a.y.example"))
    assert request(c, origin="http://localhost").status_code == 200


# --- allowed hosts (allowedHostsMiddleware) -----------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    ["evil.example", "evil.example:11434", "8.8.8.8", "[2001:4860::8888]:80", "localhost.evil.example"],
)
def test_hosts_not_checked_when_disabled(host: str) -> None:
    # allowedHostsMiddleware only acts when the listener is on a loopback address
    c = client(check_hosts=False)
    assert_passed_through(request(c, host=host))
    assert_passed_through(request(c, "OPTIONS", host=host), "OPTIONS")


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.0.0.1:11434",
        "127.255.255.254:80",
        "[::1]:11434",
        "::1",
        "0.0.0.0:11434",
        "[::]:11434",
        "10.0.0.1",
        "10.255.255.255:11434",
        "172.16.0.1",
        "172.31.255.255:1",
        "192.168.1.20:11434",
        "[fd00::1]:11434",
    ],
)
def test_loopback_private_unspecified_ips_allowed(host: str) -> None:
    c = client(check_hosts=True)
    assert_passed_through(request(c, host=host))
    # IP hosts call c.Next() even for OPTIONS: the request reaches the router
    assert_passed_through(request(c, "OPTIONS", host=host), "OPTIONS")


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "localhost:11434",
        "LOCALHOST:11434",
        "app.localhost",
        "a.b.localhost:3000",
        "printer.local",
        "mybox.local:11434",
        "host.docker.internal:11434",
        "metadata.google.internal",
        "X.INTERNAL",
    ],
)
def test_local_names_allowed_and_options_is_204(host: str) -> None:
    c = client(check_hosts=True)
    assert_passed_through(request(c, host=host))
    response = request(c, "OPTIONS", host=host)
    assert response.status_code == 204
    assert response.content == b""
    assert "x-app" not in response.headers


def test_machine_hostname_allowed() -> None:
    hostname = socket.gethostname()
    c = client(check_hosts=True)
    for host in (hostname, hostname.upper(), f"{hostname}:11434"):
        assert_passed_through(request(c, host=host))
        assert request(c, "OPTIONS", host=host).status_code == 204


def test_machine_addresses_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    # isLocalIP: an address of one of this machine's interfaces is allowed even when public
    monkeypatch.setattr(middleware, "_machine_addresses", lambda: {"203.0.113.7"})
    c = client(check_hosts=True)
    assert_passed_through(request(c, host="203.0.113.7:11434"))
    assert_forbidden(request(c, host="203.0.113.8:11434"))


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",
        "evil.example:11434",
        "localhost.evil.example",
        "evillocalhost",
        "local",
        "internal",
        "localhost.",
        "example.localhost.com",
        "8.8.8.8",
        "8.8.8.8:11434",
        "1.1.1.1",
        "172.32.0.1",
        "172.15.255.255",
        "11.0.0.1",
        "192.169.0.1",
        "169.254.169.254",  # link-local is not IsPrivate
        "100.64.0.1",  # CGNAT is not IsPrivate
        "[2001:4860:4860::8888]:11434",
        "[fe80::1]:11434",
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST", "OPTIONS"])
def test_other_hosts_forbidden(host: str, method: str) -> None:
    assert_forbidden(request(client(check_hosts=True), method, host=host))


def test_empty_host_allowed() -> None:
    # allowedHost: host == "" is allowed (an HTTP/1.0 request without Host)
    app = HostAndOriginMiddleware(Starlette(routes=ROUTES), origins=_origins({}), check_hosts=True)
    sent: list[dict[str, Any]] = []

    async def run(method: str) -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.0",
            "method": method,
            "scheme": "http",
            "path": "/api/tags",
            "raw_path": b"/api/tags",
            "query_string": b"",
            "root_path": "",
            "headers": [],
            "client": ("127.0.0.1", 5000),
            "server": ("127.0.0.1", 11434),
        }

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app(scope, receive, send)

    asyncio.run(run("GET"))
    assert sent[0]["status"] == 200
    sent.clear()
    asyncio.run(run("OPTIONS"))
    assert sent[0]["status"] == 204


def test_cors_headers_kept_on_host_rejection() -> None:
    # cors.New has already set Access-Control-Allow-Origin and Vary when allowedHostsMiddleware aborts with 403
    response = request(client(check_hosts=True), origin="http://localhost:3000", host="evil.example")
    assert_forbidden(response)
    assert response.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert response.headers.get_list("vary") == ["Origin"]


def test_cors_and_allowed_host_together() -> None:
    response = request(client(check_hosts=True), origin="http://localhost:3000", host="localhost:11434")
    assert_passed_through(response)
    assert response.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert response.headers.get_list("vary") == ["Origin"]


def test_non_http_scopes_pass_through() -> None:
    seen: list[str] = []

    async def inner(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    app = HostAndOriginMiddleware(inner, origins=_origins({}), check_hosts=True)
    asyncio.run(app({"type": "lifespan"}, None, None))
    assert seen == ["lifespan"]
