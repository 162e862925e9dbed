"""API keys: reading them (``pollama.config``) and the middleware that asks for them (``pollama.server.auth``).

The real server, the official clients and the CLI are in ``tests/integration/test_auth.py``; this is
the parsing and the per-path rules, on a bare Starlette app.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from pollama.config import ConfigError, Settings, parse_host
from pollama.server.auth import INVALID, MISSING, ApiKeyAuth, warn_if_open


def settings(**env: str) -> Settings:
    return Settings.from_env({"HOME": "/home/tester", **env})


def test_keys_from_the_environment_are_comma_separated_and_trimmed() -> None:
    assert settings(POLLAMA_API_KEYS=" one , two,,three ").api_keys == ("one", "two", "three")
    assert settings(POLLAMA_API_KEYS="").api_keys == ()
    assert settings().api_keys == ()


def test_keys_never_show_in_repr_or_describe() -> None:
    configured = settings(POLLAMA_API_KEYS="sekrit-one,sekrit-two", OLLAMA_API_KEY="sekrit-client")
    assert "sekrit" not in repr(configured)
    described = configured.describe()
    assert "sekrit" not in str(described)
    assert described["POLLAMA_API_KEYS"] == "2 keys"
    assert settings().describe()["POLLAMA_API_KEYS"] == "off"


def test_key_file_lines_comments_and_blanks(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text("# the team's keys\n\n  alpha  \n#beta\nga#mma\n")
    loaded = settings(POLLAMA_API_KEYS="env-key", POLLAMA_API_KEYS_FILE=str(path)).read_api_keys_file()
    assert loaded.api_keys == ("env-key", "alpha", "ga#mma")
    assert loaded.api_keys_file is None
    assert loaded.read_api_keys_file() is loaded


@pytest.mark.parametrize(
    ("content", "error"),
    [(None, "cannot read"), ("", "holds no keys"), ("# only a comment\n\n", "holds no keys")],
)
def test_unusable_key_file_is_an_error(tmp_path: Path, content: str | None, error: str) -> None:
    path = tmp_path / "keys"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=f"POLLAMA_API_KEYS_FILE: .*{error}"):
        settings(POLLAMA_API_KEYS_FILE=str(path)).read_api_keys_file()


def test_client_and_tls_settings() -> None:
    configured = settings(
        OLLAMA_API_KEY="'k'", POLLAMA_TLS_CERT="/c.pem", POLLAMA_TLS_KEY="/k.pem", SSL_CERT_FILE="/ca.pem"
    )
    assert configured.api_key == "k"
    assert (configured.tls_cert, configured.tls_key, configured.ssl_cert_file) == (
        Path("/c.pem"),
        Path("/k.pem"),
        Path("/ca.pem"),
    )
    assert settings(OLLAMA_HOST="https://127.0.0.1:8443").host.port == 8443


def app(keys: tuple[str, ...]) -> TestClient:
    async def ok(_request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    routes = [Route("/{path:path}", ok, methods=["GET", "HEAD", "POST", "OPTIONS"])]
    return TestClient(ApiKeyAuth(Starlette(routes=routes), keys=keys))


def test_no_keys_means_no_checks() -> None:
    assert app(()).get("/api/tags").status_code == 200


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/tags", {"error": MISSING}),
        ("/metrics", {"error": MISSING}),
        (
            "/v1/models",
            {"error": {"message": MISSING, "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}},
        ),
    ],
)
def test_missing_key_in_each_apis_shape(path: str, body: dict) -> None:
    response = app(("k1",)).get(path)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == body


def test_anthropic_shape_and_x_api_key() -> None:
    client = app(("k1", "k2"))
    refused = client.post("/v1/messages", headers={"x-api-key": "wrong"})
    assert refused.status_code == 401
    assert refused.json() == {"type": "error", "error": {"type": "authentication_error", "message": INVALID}}
    assert client.post("/v1/messages", headers={"x-api-key": "k2"}).status_code == 200
    assert client.post("/v1/messages/count_tokens", headers={"x-api-key": "k1"}).status_code == 200
    # x-api-key is Anthropic's header: elsewhere only a bearer token counts.
    assert client.get("/api/tags", headers={"x-api-key": "k1"}).status_code == 401


def test_bearer_tokens() -> None:
    client = app(("k1", "k2"))
    assert client.get("/api/tags", headers={"Authorization": "Bearer k2"}).status_code == 200
    assert client.get("/api/tags", headers={"Authorization": "bearer k1"}).status_code == 200
    assert client.get("/api/tags", headers={"Authorization": "Bearer k1x"}).json() == {"error": INVALID}
    assert client.get("/api/tags", headers={"Authorization": "Basic azE6"}).json() == {"error": MISSING}
    assert client.get("/api/tags", headers={"Authorization": "Bearer "}).json() == {"error": MISSING}


def test_non_ascii_key_matches_its_utf8_bytes() -> None:
    client = app(("clé",))
    assert client.get("/", headers={"Authorization": "Bearer clé".encode()}).status_code == 200
    assert client.get("/api/tags", headers={"Authorization": "Bearer clé".encode()}).status_code == 200


def test_health_and_preflights_are_open() -> None:
    client = app(("k1",))
    assert client.get("/").status_code == 200
    assert client.head("/").status_code == 200
    assert client.options("/api/chat").status_code == 200
    assert client.post("/").status_code == 401


def test_open_server_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="pollama.server.auth"):
        warn_if_open(Settings(host=parse_host("127.0.0.1:11434")))
        warn_if_open(Settings(host=parse_host("0.0.0.0"), api_keys=("k",)))
        assert not caplog.records
        warn_if_open(Settings(host=parse_host("0.0.0.0")))
    assert len(caplog.records) == 1
    assert "anyone who can reach this port" in caplog.records[0].getMessage()
