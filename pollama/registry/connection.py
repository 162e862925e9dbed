"""Requests to one registry repository, with Ollama's retry-once-on-401 and error wording."""

from __future__ import annotations

import platform
import ssl
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import certifi
import httpx

from pollama.config import Settings
from pollama.registry.auth import Authenticator
from pollama.registry.credentials import find_credentials
from pollama.registry.errors import NotFound, RegistryError
from pollama.registry.keys import load_identity
from pollama.registry.proxy import ProxyRules, RoutingTransport
from pollama.store.names import ModelName
from pollama.version import __version__

__all__ = ["Body", "Connection", "RegistryClientFactory", "make_http_client", "user_agent"]

# A body is rebuilt for each attempt, so a request can be replayed after a 401.
Body = Callable[[], bytes | AsyncIterator[bytes]]


def user_agent() -> str:
    machine = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine().lower(), platform.machine().lower())
    return f"ollama/{__version__} ({machine} {sys.platform}) pollama Python/{platform.python_version()}"


def _tls_context(settings: Settings) -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.load_verify_locations(certifi.where())
    if settings.registry_ca is not None:
        context.load_verify_locations(str(settings.registry_ca))
    return context


def make_http_client(settings: Settings) -> httpx.AsyncClient:
    """The server's one registry HTTP client: proxies, CA bundle, no automatic redirects."""
    rules = ProxyRules(settings.http_proxy, settings.https_proxy, settings.no_proxy)
    transport = RoutingTransport(rules, verify=_tls_context(settings), retries=0)
    return httpx.AsyncClient(
        transport=transport,
        follow_redirects=False,
        trust_env=False,  # the settings object already read the environment
        timeout=httpx.Timeout(30.0, connect=30.0),
        headers={"User-Agent": user_agent()},
    )


async def _error_for(response: httpx.Response) -> RegistryError:
    if response.status_code == 404:
        return NotFound()
    body = (await response.aread()).decode(errors="replace").strip()
    return RegistryError(f"{response.status_code}: {body}")


@dataclass
class Connection:
    """A model's repository on its registry: ``<scheme>://<host>/v2/<namespace>/<model>/``."""

    http: httpx.AsyncClient
    name: ModelName
    scheme: str
    auth: Authenticator

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.name.host}"

    def url(self, *path: str) -> str:
        return "/".join([self.base_url, "v2", self.name.namespace, self.name.model, *path])

    def same_host(self, url: httpx.URL | str) -> bool:
        return httpx.URL(url).netloc.decode().lower() == self.name.host.lower()

    def auth_headers(self, url: httpx.URL | str) -> dict[str, str]:
        """The credentials for ``url``: only ever sent to the registry's own host."""
        if self.auth.authorization and self.same_host(url):
            return {"Authorization": self.auth.authorization}
        return {}

    async def send(
        self,
        method: str,
        url: httpx.URL | str,
        *,
        headers: dict[str, str] | None = None,
        body: Body | None = None,
        stream: bool = False,
        allow: tuple[int, ...] = (),
    ) -> httpx.Response:
        """Send, answering one auth challenge. 404 raises ``NotFound``, other errors ``RegistryError``
        (statuses in ``allow`` are returned instead). A streamed response must be closed by the caller."""
        url = httpx.URL(url)
        if self.scheme == "http" and url.scheme == "https" and self.same_host(url):
            url = url.copy_with(scheme="http")
        for attempt in range(2):
            request = self.http.build_request(
                method,
                url,
                headers={**(headers or {}), **self.auth_headers(url)},
                content=body() if body is not None else None,
            )
            try:
                response = await self.http.send(request, stream=True)
            except httpx.HTTPError as err:
                raise RegistryError(f'{method.title()} "{url}": {err or err.__class__.__name__}') from None
            if response.status_code == 401 and attempt == 0 and response.status_code not in allow:
                challenge = response.headers.get("WWW-Authenticate", "")
                await response.aclose()
                await self.auth.answer(challenge)
                continue
            if response.status_code >= 400 and response.status_code not in allow:
                try:
                    raise await _error_for(response)
                finally:
                    await response.aclose()
            if not stream:
                await response.aread()
                await response.aclose()
            return response
        raise RegistryError("unauthorized: access denied")


class RegistryClientFactory:
    """Builds a ``Connection`` per pull or push from the server's settings and HTTP client."""

    def __init__(self, settings: Settings, http: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        self.http = http or make_http_client(settings)

    def connect(self, name: ModelName, *, insecure: bool) -> Connection:
        if name.scheme == "http" and not insecure:
            raise RegistryError("insecure protocol http")
        files = [self.settings.docker_config]
        if self.settings.registry_auth_file is not None:
            files.append(self.settings.registry_auth_file)
        home = self.settings.home
        auth = Authenticator(
            self.http,
            name.host,
            identity=lambda: load_identity(home),
            credentials=lambda: find_credentials(name.host, files),
        )
        return Connection(self.http, name, "http" if insecure else "https", auth)

    async def aclose(self) -> None:
        await self.http.aclose()
