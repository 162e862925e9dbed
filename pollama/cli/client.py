"""The HTTP client the CLI talks to the server with (Ollama's ``api/client.go``)."""

from __future__ import annotations

import json
import platform
import ssl
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import httpx

from pollama.config import Settings
from pollama.version import __version__

__all__ = ["Client", "ConnectError", "ResponseError", "Unauthorized"]

CONNECT_ERROR = "could not connect to ollama server, run 'pollama serve' to start it"
NO_KEY = "unauthorized: set OLLAMA_API_KEY to one of the server's keys"
WRONG_KEY = "unauthorized: the server refused OLLAMA_API_KEY; set it to one of the server's keys"
_UPLOAD_CHUNK = 1 << 20
# Failures to talk to the server at all, turned into words by _transport_error.
_TRANSPORT_ERRORS = (httpx.ConnectError, httpx.RemoteProtocolError)


class ResponseError(Exception):
    """The server answered with an error: its message, and the HTTP status."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class ConnectError(ResponseError):
    def __init__(self) -> None:
        super().__init__(CONNECT_ERROR)


class Unauthorized(ResponseError):
    """The server wants an API key (``POLLAMA_API_KEYS``) that we did not send, or sent wrong."""


def _tls_context(settings: Settings) -> ssl.SSLContext:
    """Certificates trusted for an https ``OLLAMA_HOST``: the system's, certifi's (httpx's own default),
    and ``SSL_CERT_FILE``'s (a self-signed server's certificate, a private CA)."""
    import certifi  # httpx's dependency

    context = ssl.create_default_context()
    context.load_verify_locations(cafile=certifi.where())
    if settings.ssl_cert_file is not None:
        try:
            context.load_verify_locations(cafile=str(settings.ssl_cert_file))
        except (OSError, ssl.SSLError) as err:
            raise ResponseError(f"SSL_CERT_FILE: cannot load {settings.ssl_cert_file}: {err}") from None
    return context


def _transport_error(err: httpx.TransportError, base_url: str) -> ResponseError:
    """A failure to talk to the server at all, said in words: TLS, a closed connection, nobody there."""
    cause: BaseException | None = err
    while cause is not None and not isinstance(cause, ssl.SSLError):
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, ssl.SSLCertVerificationError):
        return ResponseError(
            f"cannot verify the certificate of {base_url} ({cause.verify_message}); "
            "to trust a self-signed certificate, set SSL_CERT_FILE to it"
        )
    if isinstance(cause, ssl.SSLError):
        return ResponseError(f"TLS with {base_url} failed ({cause.reason or cause}); does the server serve https?")
    if isinstance(err, httpx.RemoteProtocolError) and base_url.startswith("http://"):
        return ResponseError(
            f"the server at {base_url} closed the connection without answering; "
            "if it serves https, set OLLAMA_HOST to https://..."
        )
    if isinstance(err, httpx.ConnectError):
        return ConnectError()
    return ResponseError(f"talking to the server at {base_url}: {err}")


def _user_agent() -> str:
    machine = platform.machine().lower()
    machine = {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
    return f"pollama/{__version__} ({machine} {sys.platform}) Python/{platform.python_version()}"


def _error_message(response: httpx.Response) -> str:
    text = response.text
    try:
        data = json.loads(text)
    except ValueError:
        return text.strip() or f"{response.status_code} {response.reason_phrase}"
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return data["error"]
    return text.strip()


class Client:
    def __init__(self, settings: Settings, *, timeout: float | None = None) -> None:
        self.base_url = settings.host.base_url
        self.api_key = settings.api_key
        headers = {"User-Agent": _user_agent()}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout, connect=10.0),
            headers=headers,
            trust_env=False,  # talking to our own server: never through a proxy
            verify=_tls_context(settings) if settings.host.scheme == "https" else True,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except _TRANSPORT_ERRORS as err:
            raise _transport_error(err, self.base_url) from None
        if response.status_code >= 400:
            raise self._error(response)
        return response

    def _error(self, response: httpx.Response) -> ResponseError:
        # Our own server's refusal (pollama.server.auth), not some other 401 a proxy might send.
        if response.status_code == 401 and response.headers.get("www-authenticate", "").lower().startswith("bearer"):
            return Unauthorized(WRONG_KEY if self.api_key else NO_KEY, 401)
        return ResponseError(_error_message(response), response.status_code)

    def _json(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self._request(method, path, json=body, headers={"Accept": "application/json"})
        return response.json() if response.content else None

    def stream(self, path: str, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """POST and yield each NDJSON line; an ``error`` line raises ``ResponseError``."""
        try:
            headers = {"Accept": "application/x-ndjson"}
            with self._http.stream("POST", path, json=body, headers=headers) as response:
                if response.status_code >= 400:
                    response.read()
                    raise self._error(response)
                for line in response.iter_lines():
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    if isinstance(event, dict) and event.get("error"):
                        raise ResponseError(str(event["error"]), response.status_code)
                    yield event
        except _TRANSPORT_ERRORS as err:
            raise _transport_error(err, self.base_url) from None

    def heartbeat(self) -> None:
        self._request("HEAD", "/")

    def version(self) -> str:
        return str(self._json("GET", "/api/version")["version"])

    def list(self) -> dict[str, Any]:
        return self._json("GET", "/api/tags")

    def running(self) -> dict[str, Any]:
        return self._json("GET", "/api/ps")

    def show(self, model: str, *, verbose: bool = False) -> dict[str, Any]:
        return self._json("POST", "/api/show", {"model": model, "verbose": verbose})

    def copy(self, source: str, destination: str) -> None:
        self._json("POST", "/api/copy", {"source": source, "destination": destination})

    def delete(self, model: str) -> None:
        self._json("DELETE", "/api/delete", {"model": model})

    def create(self, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
        return self.stream("/api/create", request)

    def generate(self, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
        return self.stream("/api/generate", request)

    def embed(self, request: dict[str, Any]) -> dict[str, Any]:
        return self._json("POST", "/api/embed", request)

    def chat(self, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
        return self.stream("/api/chat", request)

    def pull(self, model: str, *, insecure: bool = False) -> Iterator[dict[str, Any]]:
        return self.stream("/api/pull", {"model": model, "insecure": insecure})

    def push(self, model: str, *, insecure: bool = False) -> Iterator[dict[str, Any]]:
        return self.stream("/api/push", {"model": model, "insecure": insecure})

    def blob_exists(self, digest: str) -> bool:
        try:
            self._request("HEAD", f"/api/blobs/{digest}")
        except ResponseError as err:
            if err.status == 404:
                return False
            raise
        return True

    def upload_blob(self, digest: str, path: Path, on_progress: Callable[[int], None] | None = None) -> None:
        def chunks(handle: BinaryIO) -> Iterator[bytes]:
            sent = 0
            while chunk := handle.read(_UPLOAD_CHUNK):
                sent += len(chunk)
                if on_progress is not None:
                    on_progress(sent)
                yield chunk

        with path.open("rb") as handle:
            self._request("POST", f"/api/blobs/{digest}", content=chunks(handle))
