"""Router-level behaviour every client relies on (spec A.0), on a real server."""

from __future__ import annotations

import httpx
import pytest

from tests.servers import ServerProcess


def test_root_answers_get_and_head(http: httpx.Client) -> None:
    response = http.get("/")
    assert (response.status_code, response.text) == (200, "Ollama is running")
    assert response.headers["content-type"].startswith("text/plain")
    assert http.head("/").status_code == 200


def test_version(http: httpx.Client) -> None:
    response = http.get("/api/version")
    assert response.status_code == 200
    assert response.content == b'{"version":"0.33.0"}'
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert http.head("/api/version").status_code == 200


def test_tags_on_an_empty_store_is_an_empty_list(fresh_server: ServerProcess) -> None:
    fresh_server.start()
    response = httpx.get(fresh_server.url + "/api/tags")
    assert response.json() == {"models": []}
    assert httpx.head(fresh_server.url + "/api/tags").status_code == 200


def test_unknown_path_is_plain_404(http: httpx.Client) -> None:
    response = http.get("/api/nothing-here")
    assert (response.status_code, response.text) == (404, "404 page not found")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/show"),
        ("POST", "/api/tags"),
        ("GET", "/api/create"),
        ("POST", "/api/delete"),
        ("PUT", "/api/copy"),
    ],
)
def test_wrong_method_is_plain_405(http: httpx.Client, method: str, path: str) -> None:
    response = http.request(method, path)
    assert (response.status_code, response.text) == (405, "405 method not allowed")


@pytest.mark.parametrize("path", ["/api/show", "/api/create", "/api/copy"])
def test_empty_body_is_missing_request_body(http: httpx.Client, path: str) -> None:
    response = http.post(path)
    assert (response.status_code, response.json()) == (400, {"error": "missing request body"})
    assert response.headers["content-type"] == "application/json; charset=utf-8"


def test_wrongly_typed_field_is_400(http: httpx.Client) -> None:
    response = http.post("/api/show", json={"model": 42})
    assert response.status_code == 400
    assert "model" in response.json()["error"]


def test_cors_allows_localhost_origins(http: httpx.Client) -> None:
    response = http.get("/api/version", headers={"Origin": "http://localhost:3000"})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "http://localhost:3000"
    preflight = http.options(
        "/api/chat", headers={"Origin": "vscode-webview://abc", "Access-Control-Request-Method": "POST"}
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "vscode-webview://abc"
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert preflight.headers["access-control-max-age"] == "43200"


def test_cors_rejects_other_origins(http: httpx.Client) -> None:
    response = http.get("/api/version", headers={"Origin": "https://evil.example"})
    assert (response.status_code, response.content) == (403, b"")


def test_origins_from_the_environment(fresh_server: ServerProcess) -> None:
    fresh_server.extra_env["OLLAMA_ORIGINS"] = "https://my.app,chrome-extension://*"
    fresh_server.start()
    for origin in ("https://my.app", "chrome-extension://abcdef"):
        response = httpx.get(fresh_server.url + "/api/version", headers={"Origin": origin})
        assert response.headers["access-control-allow-origin"] == origin
    assert httpx.get(fresh_server.url + "/", headers={"Origin": "https://other.app"}).status_code == 403


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("localhost", 200),
        ("127.0.0.1:11434", 200),
        ("192.168.1.20", 200),
        ("myapp.localhost", 200),
        ("box.local", 200),
        ("svc.internal", 200),
        ("evil.example.com", 403),
        ("8.8.8.8", 403),
    ],
)
def test_dns_rebinding_protection_on_loopback(http: httpx.Client, host: str, status: int) -> None:
    assert http.get("/api/version", headers={"Host": host}).status_code == status


def test_any_host_when_listening_on_all_interfaces(fresh_server: ServerProcess) -> None:
    fresh_server.extra_env["OLLAMA_HOST"] = f"0.0.0.0:{fresh_server.port}"
    fresh_server.start()
    response = httpx.get(fresh_server.url + "/api/version", headers={"Host": "evil.example.com"})
    assert response.status_code == 200
