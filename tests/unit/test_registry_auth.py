"""pollama.registry.auth: parsing ``WWW-Authenticate`` and answering a registry's 401 challenge.

Go references: server/auth.go (registryChallenge.URL, getAuthorizationToken), auth/auth.go (Sign, NewNonce).
The token server is an ``httpx.MockTransport``: nothing leaves the process.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
from collections.abc import Callable, Coroutine
from typing import Any

import httpx
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from pollama.registry.auth import Authenticator, Challenge, parse_challenge
from pollama.registry.credentials import Credentials
from pollama.registry.errors import RegistryError
from pollama.registry.keys import Identity

EMPTY_BODY_DIGEST = base64.b64encode(hashlib.sha256(b"").hexdigest().encode()).decode()


def run(coroutine: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, 5))


# --- parse_challenge ---------------------------------------------------------------------------------------------


def test_parse_bearer_with_realm_service_scope() -> None:
    challenge = parse_challenge(
        'Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull"'
    )
    assert challenge == Challenge(
        "bearer",
        {"realm": "https://auth.example.com/token", "service": "registry.example.com", "scope": "repository:a/b:pull"},
    )
    assert challenge.realm == "https://auth.example.com/token"


def test_parse_quoted_value_keeps_commas_and_spaces() -> None:
    challenge = parse_challenge(
        'Bearer realm="https://r/token",scope="repository:a/b:pull,push repository:c/d:pull",service="svc"'
    )
    assert challenge.params["scope"] == "repository:a/b:pull,push repository:c/d:pull"
    assert challenge.params["service"] == "svc"


def test_parse_escaped_quotes_and_backslashes() -> None:
    challenge = parse_challenge(r'Bearer realm="https://r/token",error="say \"hi\" \\ now",service="s"')
    assert challenge.params["error"] == 'say "hi" \\ now'
    assert challenge.params["service"] == "s"


def test_parse_spaces_around_separators_and_unquoted_values() -> None:
    challenge = parse_challenge('  Bearer  realm = "https://r/token" ,  service=registry.io , scope=repo:x:pull  ')
    assert challenge.scheme == "bearer"
    assert challenge.params == {"realm": "https://r/token", "service": "registry.io", "scope": "repo:x:pull"}


@pytest.mark.parametrize("scheme", ["Bearer", "BEARER", "bearer", "bEaReR"])
def test_parse_scheme_is_case_insensitive(scheme: str) -> None:
    assert parse_challenge(f'{scheme} realm="https://r/t"').scheme == "bearer"


def test_parse_parameter_names_are_lower_cased() -> None:
    challenge = parse_challenge('Bearer Realm="https://r/t",SERVICE="s"')
    assert challenge.params == {"realm": "https://r/t", "service": "s"}


def test_parse_basic() -> None:
    challenge = parse_challenge('Basic realm="Registry Realm"')
    assert challenge.scheme == "basic"
    assert challenge.realm == "Registry Realm"


@pytest.mark.parametrize("header", ["Bearer", "Bearer ", "Basic"])
def test_parse_missing_params(header: str) -> None:
    challenge = parse_challenge(header)
    assert challenge.params == {}
    assert challenge.realm == ""


def test_parse_empty_header() -> None:
    assert parse_challenge("") == Challenge("", {})


def test_parse_empty_quoted_value() -> None:
    assert parse_challenge('Bearer realm="https://r/t",scope=""').params == {"realm": "https://r/t", "scope": ""}


# --- Authenticator.answer ---------------------------------------------------------------------------------------


class TokenServer:
    """Records each request and answers with ``respond``."""

    def __init__(self, respond: Callable[[httpx.Request], httpx.Response] | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self._respond = respond or (lambda request: httpx.Response(200, json={"token": "tok-123"}))

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self._respond(request)

    @property
    def request(self) -> httpx.Request:
        assert len(self.requests) == 1
        return self.requests[0]


@pytest.fixture(scope="module")
def identity() -> Identity:
    return Identity(Ed25519PrivateKey.generate())


def answer(
    header: str,
    server: TokenServer,
    *,
    host: str = "registry.example.com",
    identity: Identity | None = None,
    credentials: Credentials | None = None,
) -> Authenticator:
    async def go() -> Authenticator:
        async with httpx.AsyncClient(transport=httpx.MockTransport(server)) as http:
            auth = Authenticator(http, host, identity=lambda: identity, credentials=credentials)
            await auth.answer(header)
            return auth

    return run(go())


def public_key_of(blob_b64: str) -> Ed25519PublicKey:
    key = serialization.load_ssh_public_key(b"ssh-ed25519 " + blob_b64.encode())
    assert isinstance(key, Ed25519PublicKey)
    return key


def query_keys(request: httpx.Request) -> list[str]:
    return [key for key, _ in request.url.params.multi_items()]


def test_signed_token_request_on_registry_host(identity: Identity) -> None:
    server = TokenServer()
    auth = answer(
        'Bearer realm="https://registry.example.com/token",service="registry.example.com",'
        'scope="repository:library/a:pull repository:library/b:pull,push"',
        server,
        identity=identity,
    )
    assert auth.authorization == "Bearer tok-123"
    request = server.request
    assert request.method == "GET"
    assert request.url.host == "registry.example.com"
    assert request.url.path == "/token"

    params = request.url.params
    assert params.get("service") == "registry.example.com"
    assert params.get_list("scope") == ["repository:library/a:pull", "repository:library/b:pull,push"]
    assert re.fullmatch(r"\d+", params["ts"])
    nonce = params["nonce"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", nonce), nonce  # 16 bytes, urlsafe, no padding
    assert len(base64.urlsafe_b64decode(nonce + "==")) == 16
    keys = query_keys(request)
    assert keys == sorted(keys)
    assert keys == ["nonce", "scope", "scope", "service", "ts"]

    public_blob, _, signature = request.headers["Authorization"].partition(":")
    assert public_blob == identity.public_line.split()[1]
    message = f"GET,{request.url},{EMPTY_BODY_DIGEST}".encode()
    public_key_of(public_blob).verify(base64.b64decode(signature), message)
    with pytest.raises(InvalidSignature):
        public_key_of(public_blob).verify(base64.b64decode(signature), message + b"x")


def test_each_request_gets_a_fresh_nonce(identity: Identity) -> None:
    server = TokenServer()
    for _ in range(2):
        answer('Bearer realm="https://registry.example.com/token"', server, identity=identity)
    nonces = [request.url.params["nonce"] for request in server.requests]
    assert len(set(nonces)) == 2


def test_realm_query_is_kept_and_sorted_with_the_rest(identity: Identity) -> None:
    server = TokenServer()
    answer(
        'Bearer realm="https://registry.example.com/token?zeta=1&account=me",service="svc",scope="s1"',
        server,
        identity=identity,
    )
    request = server.request
    assert query_keys(request) == ["account", "nonce", "scope", "service", "ts", "zeta"]
    assert request.url.params["zeta"] == "1"
    assert request.url.params["account"] == "me"
    public_blob, _, signature = request.headers["Authorization"].partition(":")
    public_key_of(public_blob).verify(base64.b64decode(signature), f"GET,{request.url},{EMPTY_BODY_DIGEST}".encode())


def test_signed_when_realm_has_the_registry_host_and_port(identity: Identity) -> None:
    server = TokenServer()
    answer('Bearer realm="http://localhost:5000/token"', server, host="localhost:5000", identity=identity)
    assert "nonce" in server.request.url.params
    assert "Authorization" in server.request.headers


def test_realm_host_compare_is_case_insensitive(identity: Identity) -> None:
    server = TokenServer()
    answer('Bearer realm="https://Registry.Example.com/token"', server, host="REGISTRY.example.com", identity=identity)
    assert "Authorization" in server.request.headers


def test_realm_on_another_host_gets_an_anonymous_request(identity: Identity) -> None:
    server = TokenServer()
    auth = answer(
        'Bearer realm="https://auth.elsewhere.io/token",service="registry.example.com",scope="repository:a/b:pull"',
        server,
        identity=identity,
    )
    assert auth.authorization == "Bearer tok-123"
    request = server.request
    assert request.url.host == "auth.elsewhere.io"
    assert "Authorization" not in request.headers
    assert "ts" not in request.url.params
    assert "nonce" not in request.url.params
    assert request.url.params["service"] == "registry.example.com"
    assert request.url.params.get_list("scope") == ["repository:a/b:pull"]


def test_realm_on_same_host_other_port_is_another_host(identity: Identity) -> None:
    server = TokenServer()
    answer('Bearer realm="https://registry.example.com:8443/token"', server, identity=identity)
    assert "Authorization" not in server.request.headers
    assert "nonce" not in server.request.url.params


def test_realm_on_a_look_alike_host_is_not_trusted(identity: Identity) -> None:
    server = TokenServer()
    answer('Bearer realm="https://registry.example.com.evil.io/token"', server, identity=identity)
    assert "Authorization" not in server.request.headers


@pytest.mark.parametrize("realm_host", ["ollama.com", "www.ollama.com"])
def test_ollama_registry_may_send_to_ollama_com(identity: Identity, realm_host: str) -> None:
    server = TokenServer()
    answer(
        f'Bearer realm="https://{realm_host}/token",service="ollama.com",scope="repository:library/x:pull"',
        server,
        host="registry.ollama.ai",
        identity=identity,
    )
    request = server.request
    assert request.url.host == realm_host
    public_blob, _, signature = request.headers["Authorization"].partition(":")
    public_key_of(public_blob).verify(base64.b64decode(signature), f"GET,{request.url},{EMPTY_BODY_DIGEST}".encode())


def test_the_ollama_allowance_is_not_for_other_registries(identity: Identity) -> None:
    server = TokenServer()
    answer('Bearer realm="https://ollama.com/token"', server, host="registry.example.com", identity=identity)
    assert "Authorization" not in server.request.headers


def test_no_identity_means_anonymous_even_on_own_host() -> None:
    server = TokenServer()
    auth = answer('Bearer realm="https://registry.example.com/token"', server, identity=None)
    assert auth.authorization == "Bearer tok-123"
    assert "Authorization" not in server.request.headers
    assert "nonce" not in server.request.url.params


def test_credentials_go_to_the_realm_as_basic_auth(identity: Identity) -> None:
    credentials = Credentials("alice", "s3cret:with:colons")
    server = TokenServer()
    auth = answer(
        'Bearer realm="https://auth.elsewhere.io/token",service="svc",scope="repository:a/b:pull"',
        server,
        identity=identity,
        credentials=credentials,
    )
    assert auth.authorization == "Bearer tok-123"
    request = server.request
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(b"alice:s3cret:with:colons").decode()
    assert "nonce" not in request.url.params  # the docker token exchange is not signed
    assert "ts" not in request.url.params


def test_access_token_answer_is_accepted() -> None:
    server = TokenServer(lambda request: httpx.Response(200, json={"access_token": "at-9", "expires_in": 300}))
    auth = answer('Bearer realm="https://auth.io/token"', server, credentials=Credentials("u", "p"))
    assert auth.authorization == "Bearer at-9"


def test_token_is_preferred_to_access_token() -> None:
    server = TokenServer(lambda request: httpx.Response(200, json={"token": "t", "access_token": "a"}))
    assert answer('Bearer realm="https://auth.io/token"', server).authorization == "Bearer t"


def test_basic_challenge_with_credentials_sends_nothing() -> None:
    server = TokenServer()
    auth = answer('Basic realm="Registry"', server, credentials=Credentials("bob", "pw"))
    assert auth.authorization == "Basic " + base64.b64encode(b"bob:pw").decode()
    assert server.requests == []


def test_basic_challenge_without_credentials_fails() -> None:
    server = TokenServer()
    with pytest.raises(RegistryError, match=r"^401: .*registry\.example\.com"):
        answer('Basic realm="Registry"', server)
    assert server.requests == []


def test_unsupported_scheme_fails() -> None:
    with pytest.raises(RegistryError, match="unsupported authentication scheme 'negotiate'"):
        answer("Negotiate abc", TokenServer())


def test_token_endpoint_401_reports_status_and_body() -> None:
    server = TokenServer(lambda request: httpx.Response(401, text='{"errors":[{"code":"UNAUTHORIZED"}]}\n'))
    with pytest.raises(RegistryError) as caught:
        answer('Bearer realm="https://auth.io/token"', server)
    assert caught.value.message == '401: {"errors":[{"code":"UNAUTHORIZED"}]}'


def test_token_endpoint_error_without_body() -> None:
    server = TokenServer(lambda request: httpx.Response(503))
    with pytest.raises(RegistryError) as caught:
        answer('Bearer realm="https://auth.io/token"', server)
    assert caught.value.message == "503"


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"",
        json.dumps({"tok": "x"}).encode(),
        json.dumps({"token": ""}).encode(),
        json.dumps({"token": 12}).encode(),
        json.dumps(["token"]).encode(),
        json.dumps("token").encode(),
    ],
)
def test_invalid_token_answers_fail(body: bytes) -> None:
    server = TokenServer(lambda request: httpx.Response(200, content=body))
    with pytest.raises(RegistryError, match=r"^invalid token response from auth\.io$"):
        answer('Bearer realm="https://auth.io/token"', server)


def test_transport_failure_becomes_registry_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(RegistryError, match=r"^token request to auth\.io failed: connection refused"):
        answer('Bearer realm="https://auth.io/token"', TokenServer(refuse))


@pytest.mark.parametrize(
    "realm",
    ["", "not a url", "ftp://registry.example.com/token", "https://", "//registry.example.com/t", "https://[::1/t"],
)
def test_invalid_realm_fails_without_a_request(realm: str, identity: Identity) -> None:
    server = TokenServer()
    header = f'Bearer realm="{realm}",service="svc"' if realm else 'Bearer service="svc"'
    with pytest.raises(RegistryError, match=r"^401: invalid authentication realm"):
        answer(header, server, identity=identity)
    assert server.requests == []


def test_a_new_challenge_replaces_the_authorization() -> None:
    tokens = iter(["first", "second"])
    server = TokenServer(lambda request: httpx.Response(200, json={"token": next(tokens)}))

    async def go() -> list[str | None]:
        async with httpx.AsyncClient(transport=httpx.MockTransport(server)) as http:
            auth = Authenticator(http, "r.io", identity=lambda: None, credentials=None)
            seen = [auth.authorization]
            for _ in range(2):
                await auth.answer('Bearer realm="https://r.io/token"')
                seen.append(auth.authorization)
            return seen

    assert run(go()) == [None, "Bearer first", "Bearer second"]
