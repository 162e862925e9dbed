"""Answering a registry's ``401`` challenge (spec E.5, plus standard registries).

Three ways in, chosen per challenge:

* ``Basic`` challenge: the host's configured credentials.
* ``Bearer`` challenge with configured credentials: the standard Docker token
  exchange (the realm gets Basic auth and answers ``token``/``access_token``).
* ``Bearer`` challenge without credentials: Ollama's scheme, a token request
  signed with the ed25519 key, sent only to a realm on the registry's own host
  (CVE-2025-51471), with registry.ollama.ai → ollama.com allowed. A realm on any
  other host gets an anonymous token request, which carries no secret.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from pollama.registry.credentials import Credentials
from pollama.registry.errors import RegistryError
from pollama.registry.keys import Identity

__all__ = ["Authenticator", "Challenge", "parse_challenge"]

# The one cross-host realm Ollama's own registry uses.
REALM_ALLOWANCE = {"registry.ollama.ai": {"ollama.com", "www.ollama.com"}}

_PARAM = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?')


@dataclass(frozen=True)
class Challenge:
    scheme: str  # lower case: "bearer", "basic", ...
    params: dict[str, str]

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")


def parse_challenge(header: str) -> Challenge:
    """Parse ``WWW-Authenticate: Bearer realm="...",service="...",scope="..."``."""
    scheme, _, rest = header.strip().partition(" ")
    params: dict[str, str] = {}
    position = 0
    while position < len(rest):
        match = _PARAM.match(rest, position)
        if match is None or match.end() == position:
            break
        quoted, bare = match.group(2), match.group(3)
        params[match.group(1).lower()] = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare
        position = match.end()
    return Challenge(scheme.lower(), params)


def _realm_allowed(realm_host: str, registry_host: str) -> bool:
    realm, registry = realm_host.lower(), registry_host.lower()
    bare_registry = registry.split(":")[0]
    return realm == registry or realm.split(":")[0] in REALM_ALLOWANCE.get(bare_registry, set())


def _empty_body_digest() -> str:
    return base64.b64encode(hashlib.sha256(b"").hexdigest().encode()).decode()


class Authenticator:
    """Holds the ``Authorization`` header for one registry and renews it on a challenge."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        registry_host: str,
        *,
        identity: Callable[[], Identity | None],
        credentials: Credentials | None | Callable[[], Credentials | None],
    ) -> None:
        self._http = http
        self._registry_host = registry_host
        self._identity = identity
        # Looked up at the first challenge (a registry without auth never needs them), off the event loop.
        self._find_credentials = credentials if callable(credentials) else lambda: credentials
        self._credentials: Credentials | None = None
        self._looked_up = False
        self.authorization: str | None = None

    async def answer(self, header: str) -> None:
        """Set ``authorization`` to what the challenge in ``header`` asks for, or raise ``RegistryError``."""
        if not self._looked_up:
            self._credentials = await asyncio.to_thread(self._find_credentials)
            self._looked_up = True
        challenge = parse_challenge(header)
        if challenge.scheme == "basic":
            if self._credentials is None:
                raise RegistryError(f"401: registry {self._registry_host} wants a user name and password")
            self.authorization = self._credentials.basic()
        elif challenge.scheme == "bearer":
            self.authorization = "Bearer " + await self._token(challenge)
        else:
            raise RegistryError(f"401: unsupported authentication scheme {challenge.scheme!r}")

    def _token_url(self, challenge: Challenge, *, signed: bool) -> httpx.URL:
        url = httpx.URL(challenge.realm)
        params: list[tuple[str, str]] = list(url.params.multi_items())
        if "service" in challenge.params:
            params.append(("service", challenge.params["service"]))
        params += [("scope", scope) for scope in challenge.params.get("scope", "").split(" ") if scope]
        if signed:
            nonce = base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("=")
            params += [("ts", str(int(time.time()))), ("nonce", nonce)]
        params.sort(key=lambda item: item[0])  # Go's url.Values.Encode sorts by key
        return url.copy_with(params=params)

    async def _token(self, challenge: Challenge) -> str:
        try:
            realm = httpx.URL(challenge.realm)
        except httpx.InvalidURL:
            realm = None
        if realm is None or realm.scheme not in ("http", "https") or not realm.host:
            raise RegistryError(f"401: invalid authentication realm {challenge.realm!r}")
        headers: dict[str, str] = {}
        identity = None
        if self._credentials is not None:
            headers["Authorization"] = self._credentials.basic()
        elif _realm_allowed(realm.netloc.decode(), self._registry_host):
            identity = self._identity()
        url = self._token_url(challenge, signed=identity is not None)
        if identity is not None:
            headers["Authorization"] = identity.sign(f"GET,{url},{_empty_body_digest()}".encode())
        try:
            response = await self._http.get(url, headers=headers)
        except httpx.HTTPError as err:
            raise RegistryError(f"token request to {realm.host} failed: {err}") from None
        if response.status_code >= 400:
            body = response.text.strip()
            raise RegistryError(f"{response.status_code}: {body}" if body else str(response.status_code))
        try:
            data = response.json()
        except ValueError:
            raise RegistryError(f"invalid token response from {realm.host}") from None
        token = data.get("token") or data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"invalid token response from {realm.host}")
        return token
