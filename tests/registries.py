"""Registries for pull/push tests, all on loopback and all owned by the test that starts them.

* ``DockerRegistry``: the real CNCF distribution server (Debian's ``docker-registry``), so the
  client is checked against a registry it did not co-evolve with; optionally behind htpasswd.
* ``FakeOllamaRegistry``: an in-process imitation of registry.ollama.ai, with the parts a
  standard registry lacks: signed ed25519 token requests, blob downloads redirected to a
  "storage" host on a different URL host, redirected upload parts, and counters and fault
  switches (throttling, dropped connections, corrupted blobs) for the tests to steer by.
* ``ForwardProxy``: a threaded ``HTTP_PROXY``-style forward proxy (absolute-URI requests and
  ``CONNECT``) that records what it relayed and can throttle or cut a transfer once.

Helpers build Ollama-shaped models (``ollama_model``), write an Ollama key pair
(``write_ollama_key``), and make a throwaway CA plus server certificate (``make_tls_files``).
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import hashlib
import ipaddress
import json
import os
import re
import secrets
import selectors
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http.client import HTTPConnection, HTTPResponse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Self
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "CONFIG_MEDIA_TYPE",
    "MANIFEST_MEDIA_TYPE",
    "MODEL_MEDIA_TYPE",
    "DockerRegistry",
    "FakeOllamaRegistry",
    "ForwardProxy",
    "Layer",
    "LoggedRequest",
    "ModelArtifact",
    "ProxiedRequest",
    "TLSFiles",
    "TokenRequest",
    "UploadRecord",
    "bcrypt_hash",
    "ensure_docker_registry",
    "flip_bytes",
    "free_port",
    "make_tls_files",
    "ollama_model",
    "parse_range",
    "sha256_digest",
    "write_ollama_key",
]

MANIFEST_MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_MEDIA_TYPE = "application/vnd.docker.container.image.v1+json"
MODEL_MEDIA_TYPE = "application/vnd.ollama.image.model"

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_CONTENT_RANGE = re.compile(r"(\d+)-(\d+)")
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)


# --------------------------------------------------------------------------- small helpers


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (for servers that must be told their port up front)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def flip_bytes(path: Path, offset: int = 0, count: int = 16) -> None:
    """Invert ``count`` bytes of ``path`` from ``offset``: the size stays, so only a digest check notices."""
    with path.open("r+b") as handle:
        handle.seek(offset)
        original = handle.read(count)
        handle.seek(offset)
        handle.write(bytes(byte ^ 0xFF for byte in original))


def parse_range(header: str, size: int) -> tuple[int, int]:
    """First and last byte (inclusive) of a single ``bytes=a-b`` / ``bytes=a-`` / ``bytes=-n`` range.

    Raises ``ValueError`` when the range is malformed or unsatisfiable (the caller answers 416).
    """
    match = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", header)
    if match is None or match.group(1) == match.group(2) == "":
        raise ValueError(f"bad range {header!r}")
    first, last = match.group(1), match.group(2)
    if first == "":
        start, end = max(0, size - int(last)), size - 1
    else:
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
    if start >= size or start > end:
        raise ValueError(f"unsatisfiable range {header!r} for {size} bytes")
    return start, end


def _iter_body(rfile: BinaryIO, headers: Mapping[str, str], chunk_size: int = 65536) -> Iterator[bytes]:
    """The request body in pieces, de-chunked, so proxies can stream it and servers can drain it."""
    if "chunked" in headers.get("Transfer-Encoding", "").lower():
        while True:
            size = int(rfile.readline(65537).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return
            remaining = size
            while remaining:
                piece = rfile.read(min(chunk_size, remaining))
                if not piece:
                    raise ConnectionError("client closed mid-chunk")
                remaining -= len(piece)
                yield piece
            rfile.readline()
    remaining = int(headers.get("Content-Length") or 0)
    while remaining > 0:
        piece = rfile.read(min(chunk_size, remaining))
        if not piece:
            raise ConnectionError("client closed mid-body")
        remaining -= len(piece)
        yield piece


def _hard_close(connection: socket.socket) -> None:
    with contextlib.suppress(OSError):
        connection.shutdown(socket.SHUT_RDWR)


class _Running:
    """A test server on loopback: ``with`` starts it and stops it, whatever happened."""

    _port = 0

    @property
    def scheme(self) -> str:
        return "http"

    @property
    def port(self) -> int:
        assert self._port, "not started"
        return self._port

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class _RateLimiter:
    """Paces writes across all connections, so ``rate`` is the total bandwidth, as a slow link would be."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next = 0.0

    @staticmethod
    def chunk_size(rate: float | None) -> int:
        return 65536 if not rate else max(512, min(65536, int(rate / 10)))

    def wait(self, rate: float | None, size: int) -> None:
        if not rate:
            return
        with self._lock:
            now = time.monotonic()
            finish = max(now, self._next) + size / rate
            self._next = finish
        time.sleep(max(0.0, finish - now))


class _Server(ThreadingHTTPServer):
    """A ThreadingHTTPServer that can drop its open keep-alive connections on shutdown."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], app: Any, role: str) -> None:
        super().__init__(address, handler)
        self.app = app
        self.role = role
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.server_address[1]

    def use_tls(self, context: ssl.SSLContext) -> None:
        # The handshake happens on the first read, in the connection's thread, not in accept().
        self.socket = context.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients cutting connections is routine here; real faults are recorded by the apps

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.serve_forever, args=(0.05,), name=f"{self.role}-server", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        with self._open_lock:
            connections = list(self._open)
        for connection in connections:
            _hard_close(connection)
        if self._thread is not None:
            self._thread.join(timeout=5)


class _Handler(BaseHTTPRequestHandler):
    """Hands every request to the server's app; the app sees one call per request."""

    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = 60

    def log_message(self, format: str, *args: Any) -> None:  # the stdlib names it so
        pass

    def _dispatch(self) -> None:
        self.server.app.handle(self, self.server.role)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

    def read_body(self) -> bytes:
        return b"".join(_iter_body(self.rfile, self.headers))

    def send(
        self,
        status: int,
        body: bytes = b"",
        *,
        headers: Mapping[str, str] | None = None,
        content_type: str | None = None,
        content_length: int | None = None,
    ) -> None:
        """A complete response; HEAD gets the headers (Content-Length included) without the body."""
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if content_type is not None:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body) if content_length is None else content_length))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def send_error_json(
        self, status: int, code: str, message: str, *, headers: Mapping[str, str] | None = None
    ) -> None:
        body = json.dumps({"errors": [{"code": code, "message": message}]}).encode()
        self.send(status, body, headers=headers, content_type="application/json")


# --------------------------------------------------------------------------- models, keys, certificates


@dataclass(frozen=True)
class Layer:
    """One blob of a model, with the descriptor a manifest lists for it."""

    media_type: str
    data: bytes

    @property
    def digest(self) -> str:
        return sha256_digest(self.data)

    @property
    def size(self) -> int:
        return len(self.data)

    def descriptor(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


@dataclass(frozen=True)
class ModelArtifact:
    """An Ollama-shaped model: config blob, layers, and the manifest bytes that name them."""

    config: Layer
    layers: tuple[Layer, ...]
    manifest: bytes

    @property
    def blobs(self) -> tuple[Layer, ...]:
        return (self.config, *self.layers)

    @property
    def manifest_digest(self) -> str:
        return sha256_digest(self.manifest)


def ollama_model(
    layers: Mapping[str, bytes] | Iterable[tuple[str, bytes]], config: Mapping[str, Any] | None = None
) -> ModelArtifact:
    """Build a model the way Ollama lays one out: ``(media type, bytes)`` layers plus a JSON config.

    The manifest is compact JSON in Go's field order, as registry.ollama.ai serves it.
    """
    pairs = list(layers.items()) if isinstance(layers, Mapping) else list(layers)
    built = tuple(Layer(media_type, data) for media_type, data in pairs)
    config_doc = dict(
        config
        if config is not None
        else {
            "model_format": "gguf",
            "model_family": "llama",
            "model_families": ["llama"],
            "model_type": "1M",
            "file_type": "F16",
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [layer.digest for layer in built]},
        }
    )
    config_layer = Layer(CONFIG_MEDIA_TYPE, json.dumps(config_doc, separators=(",", ":")).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": config_layer.descriptor(),
        "layers": [layer.descriptor() for layer in built],
    }
    return ModelArtifact(config_layer, built, json.dumps(manifest, separators=(",", ":")).encode())


def write_ollama_key(home: Path) -> str:
    """Write ``home/.ollama/id_ed25519{,.pub}`` as ``ollama serve`` would; return the public line.

    Lets a test know the key before the client runs, so it can ``allow_key`` it up front.
    """
    key = Ed25519PrivateKey.generate()
    directory = home / ".ollama"
    directory.mkdir(parents=True, exist_ok=True)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    (directory / "id_ed25519").write_bytes(private)
    os.chmod(directory / "id_ed25519", 0o600)
    line = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    (directory / "id_ed25519.pub").write_text(line + "\n")
    return line


@dataclass(frozen=True)
class TLSFiles:
    """A throwaway CA (``ca_path``, what a client trusts) and a server certificate it signed."""

    ca_path: Path
    cert_path: Path
    key_path: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_path, self.key_path)
        return context

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_path))


def make_tls_files(
    directory: Path, ips: Iterable[str] = ("127.0.0.1",), dns: Iterable[str] = ("localhost",)
) -> TLSFiles:
    """A CA plus a leaf for the given names; a separate CA keeps strict X.509 verifiers content."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pollama test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    names += [x509.DNSName(name) for name in dns]
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pollama test registry")]))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    files = TLSFiles(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    files.ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.cert_path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    files.key_path.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return files


def bcrypt_hash(password: str) -> str:
    """A bcrypt hash (the only kind distribution's htpasswd accepts), or skip the test if none can be made.

    Uses the ``bcrypt`` package when installed, else the C library's ``crypt`` (libxcrypt does ``$2b$``).
    """
    with contextlib.suppress(ImportError):
        import bcrypt  # type: ignore[import-not-found]

        return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import crypt
        except ImportError:
            pytest.skip("no bcrypt implementation (install the bcrypt package)")
        hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))
    if not hashed or not hashed.startswith("$2"):
        pytest.skip("the C library's crypt() cannot make bcrypt hashes")
    return hashed


# --------------------------------------------------------------------------- the real distribution server

_install_lock = threading.Lock()
_install_tried = False


def _find_docker_registry() -> str | None:
    found = shutil.which("docker-registry")
    return found or ("/usr/bin/docker-registry" if Path("/usr/bin/docker-registry").exists() else None)


def _may_install() -> bool:
    return os.geteuid() == 0 and shutil.which("apt-get") is not None


def ensure_docker_registry() -> str:
    """Path of ``docker-registry``, installing Debian's package once if we may (root, apt-get); else skip."""
    global _install_tried
    with _install_lock:
        found = _find_docker_registry()
        if found is None and not _install_tried and _may_install():
            _install_tried = True
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            command = ["apt-get", "install", "-y", "docker-registry"]
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                if subprocess.run(command, env=env, capture_output=True, timeout=600).returncode != 0:
                    subprocess.run(["apt-get", "update"], env=env, capture_output=True, timeout=600)
                    subprocess.run(command, env=env, capture_output=True, timeout=600)
            found = _find_docker_registry()
    if found is None:
        pytest.skip("docker-registry (Debian package docker-registry) is not available")
    return found


class DockerRegistry:
    """Debian's ``docker-registry`` on a free loopback port, with its own config and storage.

    The Debian default config turns on htpasswd auth on :5000; this writes its own instead.
    ``users`` (name → password) switches on htpasswd auth with realm ``pollama-test``.
    """

    def __init__(self, root: Path | None = None, *, users: Mapping[str, str] | None = None) -> None:
        self._owns_root = root is None
        # Made in start(), so a test skipped for want of the binary leaves nothing behind.
        self.root = Path(tempfile.gettempdir()) / f"docker-registry-{secrets.token_hex(6)}" if root is None else root
        self.users = dict(users or {})
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def config_path(self) -> Path:
        return self.root / "config.yml"

    @property
    def log_path(self) -> Path:
        return self.root / "registry.log"

    @property
    def auth(self) -> httpx.BasicAuth | None:
        """Basic credentials of the first user, or None without auth."""
        if not self.users:
            return None
        name, password = next(iter(self.users.items()))
        return httpx.BasicAuth(name, password)

    def blob_path(self, digest: str) -> Path:
        """Where the filesystem driver keeps a blob's bytes."""
        algorithm, _, hexdigest = digest.partition(":")
        return self.data_dir / "docker/registry/v2/blobs" / algorithm / hexdigest[:2] / hexdigest / "data"

    def corrupt_blob(self, digest: str, offset: int = 0, count: int = 16) -> None:
        flip_bytes(self.blob_path(digest), offset, count)

    def _write_config(self) -> None:
        lines = [
            "version: 0.1",
            "log: {level: info, accesslog: {disabled: true}}",
            "storage:",
            f"  filesystem: {{rootdirectory: {json.dumps(str(self.data_dir))}}}",
            "  delete: {enabled: true}",
            "  redirect: {disable: true}",
            f"http: {{addr: {json.dumps(self.host)}, secret: pollama-test-secret}}",
        ]
        if self.users:
            htpasswd = self.root / "htpasswd"
            htpasswd.write_text("".join(f"{name}:{bcrypt_hash(pw)}\n" for name, pw in self.users.items()))
            lines.append(f"auth: {{htpasswd: {{realm: pollama-test, path: {json.dumps(str(htpasswd))}}}}}")
        self.config_path.write_text("\n".join(lines) + "\n")

    def start(self) -> Self:
        binary = ensure_docker_registry()
        self.root.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for _attempt in range(3):  # the free port can be taken before the registry binds it
            self.port = free_port()
            self._write_config()
            with self.log_path.open("ab") as log:
                self.process = subprocess.Popen(
                    [binary, "serve", str(self.config_path)], stdout=log, stderr=subprocess.STDOUT, cwd=self.root
                )
            if self._wait_ready():
                return self
        raise RuntimeError(f"docker-registry did not start:\n{self.log_path.read_text(errors='replace')}")

    def _wait_ready(self) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/v2/", timeout=1, trust_env=False).status_code in (200, 401):
                    return True
            time.sleep(0.05)
        self.stop()
        return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None

    def cleanup(self) -> None:
        """Stop, and remove the root if this object made it."""
        self.stop()
        if self._owns_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    # Seeding through the registry's own API, so its metadata stays consistent.

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, auth=self.auth, trust_env=False, timeout=30, **kwargs)

    def push_blob(self, repo: str, data: bytes) -> str:
        """Upload ``data`` to ``repo`` (monolithic PUT); return its digest."""
        digest = sha256_digest(data)
        with self.client() as http:
            started = http.post(f"/v2/{repo}/blobs/uploads/")
            started.raise_for_status()
            location = httpx.URL(started.headers["Location"]).copy_merge_params({"digest": digest})
            http.put(location, content=data, headers={"Content-Type": "application/octet-stream"}).raise_for_status()
        return digest

    def push_model(self, repo: str, tag: str, model: ModelArtifact) -> None:
        for layer in model.blobs:
            self.push_blob(repo, layer.data)
        with self.client() as http:
            http.put(
                f"/v2/{repo}/manifests/{tag}", content=model.manifest, headers={"Content-Type": MANIFEST_MEDIA_TYPE}
            ).raise_for_status()


# --------------------------------------------------------------------------- the fake registry.ollama.ai


@dataclass(frozen=True)
class LoggedRequest:
    server: str  # "registry" or "storage"
    method: str
    path: str
    query: str
    headers: dict[str, str]


@dataclass(frozen=True)
class TokenRequest:
    url: str  # as the server reconstructed it, i.e. what the client must have signed
    host: str  # Host header
    server: str  # which listener answered ("registry", or "storage" when the realm pointed there)
    key: str | None  # base64 public-key blob from the Authorization header
    verified: bool  # the signature checked out
    scopes: tuple[str, ...]  # the scope parameters asked for
    token: str | None  # the token issued, if any
    granted: dict[str, frozenset[str]]  # repository → actions the token carries


@dataclass(frozen=True)
class UploadRecord:
    repo: str
    digest: str
    size: int
    redirected_parts: int  # parts that went to the storage host (PATCH → 307 → storage PUT)
    etag: str | None  # what the client sent on the final PUT
    expected_etag: str | None  # S3-style etag of the redirected parts: md5(md5(part)...)-N


@dataclass
class _Upload:
    repo: str
    data: bytearray = field(default_factory=bytearray)  # the plain 202 PATCH flow
    parts: dict[int, bytes] = field(default_factory=dict)  # offset → bytes, the redirected flow


def _storage_addresses() -> tuple[str, str]:
    """(bind address, URL host) for the storage listener: a host that differs from 127.0.0.1 in URLs."""
    try:
        with socket.socket() as sock:
            sock.bind(("127.0.0.2", 0))
        return "127.0.0.2", "127.0.0.2"
    except OSError:
        return "127.0.0.1", "localhost"


class FakeOllamaRegistry(_Running):
    """An in-memory registry.ollama.ai: a registry listener plus a "storage" listener on another host.

    Every knob is a plain attribute, read per request, so a test may change one mid-run.
    """

    service = "ollama.com"

    def __init__(
        self,
        *,
        require_auth: bool = True,
        realm_host: str | None = None,
        realm: str | None = None,
        anonymous_pull: bool = False,
        redirect_blobs: bool = True,
        redirect_uploads: bool = True,
        verify_manifest_blobs: bool = True,
        tls: bool = False,
        storage_rate: float | None = None,
        drop_after_bytes: int | None = None,
        drop_times: int = 1,
    ) -> None:
        self.require_auth = require_auth
        self.realm_host = realm_host  # "host:port" the challenge's realm names instead of the request's Host
        self.realm = realm  # a whole realm URL, overriding realm_host
        self.anonymous_pull = anonymous_pull  # validly signed but unknown keys get pull-only tokens
        self.redirect_blobs = redirect_blobs
        self.redirect_uploads = redirect_uploads
        self.verify_manifest_blobs = verify_manifest_blobs
        self.tls = tls
        self.storage_rate = storage_rate
        self.drop_after_bytes = drop_after_bytes
        self.drop_times = drop_times  # how many blob GETs drop_after_bytes cuts

        self._lock = threading.RLock()
        self._limiter = _RateLimiter()
        self._blobs: dict[str, bytearray] = {}
        self._public_blobs: set[str] = set()  # seeded without a repo: visible from every repo
        self._repo_blobs: dict[str, set[str]] = {}
        self._manifests: dict[tuple[str, str], bytes] = {}
        self._uploads: dict[str, _Upload] = {}
        self._signatures: dict[str, tuple[Any, ...]] = {}  # presigned "sig" → what it grants
        self._keys: dict[str, frozenset[str]] = {}  # public-key blob → actions it may be granted
        self._tokens: dict[str, dict[str, frozenset[str]]] = {}

        self.log: list[LoggedRequest] = []
        self.token_requests: list[TokenRequest] = []
        self.mounts: list[tuple[str, str, str]] = []  # (repo, digest, from repo)
        self.uploads: list[UploadRecord] = []
        self.blob_gets: Counter[str] = Counter()  # registry blob GETs per digest
        self.storage_gets: Counter[str] = Counter()  # storage-host GETs per digest
        self.storage_bytes_served: Counter[str] = Counter()
        self.drops = 0
        self.errors: list[str] = []  # exceptions inside the fake: a test may assert there are none

        self._registry: _Server | None = None
        self._storage: _Server | None = None
        self._tmp: Path | None = None
        self._port = self._storage_port = 0
        self._storage_name = ""
        self.ca_path: Path | None = None

    # ---- lifecycle

    def start(self) -> Self:
        self._registry = _Server(("127.0.0.1", 0), _Handler, self, "registry")
        if self.tls:
            self._tmp = Path(tempfile.mkdtemp(prefix="fake-ollama-tls-"))
            files = make_tls_files(self._tmp)
            self.ca_path = files.ca_path
            self._registry.use_tls(files.server_context())
        bind, self._storage_name = _storage_addresses()
        self._storage = _Server((bind, 0), _Handler, self, "storage")
        self._port, self._storage_port = self._registry.port, self._storage.port  # kept after stop()
        self._registry.start()
        self._storage.start()
        return self

    def stop(self) -> None:
        for server in (self._registry, self._storage):
            if server is not None:
                server.stop()
        self._registry = self._storage = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def storage_host(self) -> str:
        assert self._storage_port, "not started"
        return f"{self._storage_name}:{self._storage_port}"

    @property
    def storage_url(self) -> str:
        return f"http://{self.storage_host}"

    # ---- seeding and inspection

    def allow_key(self, public_key: str, *, push: bool = True) -> None:
        """Let this key (an ``id_ed25519.pub`` line or its base64 blob) have tokens; pull-only if not ``push``."""
        parts = public_key.split()
        blob = parts[1] if len(parts) > 1 else parts[0]
        with self._lock:
            self._keys[blob] = frozenset({"pull", "push"} if push else {"pull"})

    def issue_token(self, repo: str, actions: Iterable[str] = ("pull", "push")) -> str:
        """A valid token without the signing dance, for tests about something else."""
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = {repo: frozenset(actions)}
        return token

    def put_blob(self, data: bytes, repo: str | None = None) -> str:
        """Store a blob; without ``repo`` every repository sees it (as public models are shared)."""
        digest = sha256_digest(data)
        with self._lock:
            self._blobs[digest] = bytearray(data)
            if repo is None:
                self._public_blobs.add(digest)
            else:
                self._repo_blobs.setdefault(repo, set()).add(digest)
        return digest

    def put_manifest(self, ns: str, model: str, tag: str, raw: bytes) -> None:
        with self._lock:
            self._manifests[(f"{ns}/{model}", tag)] = bytes(raw)

    def put_model(self, ns: str, model: str, tag: str, artifact: ModelArtifact, *, shared: bool = True) -> None:
        """Seed blobs and manifest; ``shared=False`` puts the blobs in this repository only."""
        for layer in artifact.blobs:
            self.put_blob(layer.data, None if shared else f"{ns}/{model}")
        self.put_manifest(ns, model, tag, artifact.manifest)

    def manifest(self, ns: str, model: str, tag: str) -> bytes | None:
        with self._lock:
            return self._manifests.get((f"{ns}/{model}", tag))

    def corrupt_blob(self, digest: str, offset: int = 0, count: int = 16) -> None:
        """Invert bytes of a stored blob in place; its size and digest key stay."""
        with self._lock:
            data = self._blobs[digest]
            for index in range(offset, min(offset + count, len(data))):
                data[index] ^= 0xFF

    def has_blob(self, repo: str, digest: str) -> bool:
        with self._lock:
            return digest in self._blobs and (
                digest in self._public_blobs or digest in self._repo_blobs.get(repo, set())
            )

    @property
    def blobs(self) -> dict[str, bytes]:
        with self._lock:
            return {digest: bytes(data) for digest, data in self._blobs.items()}

    @property
    def manifests(self) -> dict[str, bytes]:
        """``"ns/model:tag"`` → raw manifest bytes."""
        with self._lock:
            return {f"{repo}:{tag}": raw for (repo, tag), raw in self._manifests.items()}

    @property
    def tokens(self) -> dict[str, dict[str, frozenset[str]]]:
        with self._lock:
            return dict(self._tokens)

    @property
    def requests(self) -> list[tuple[str, str]]:
        """(method, path) of every request to the registry listener."""
        with self._lock:
            return [(entry.method, entry.path) for entry in self.log if entry.server == "registry"]

    @property
    def storage_requests(self) -> list[tuple[str, str]]:
        with self._lock:
            return [(entry.method, entry.path) for entry in self.log if entry.server == "storage"]

    # ---- request handling

    def handle(self, h: _Handler, role: str) -> None:
        try:
            body = h.read_body()  # always drained, so an early answer keeps the connection usable
            split = urlsplit(h.path)
            with self._lock:
                self.log.append(LoggedRequest(role, h.command, split.path, split.query, dict(h.headers.items())))
            if split.path == "/token":
                self._token(h, role)
            elif role == "registry":
                self._registry_request(h, split.path, parse_qs(split.query), body)
            else:
                self._storage_request(h, split.path, parse_qs(split.query), body)
        except (ConnectionError, TimeoutError, ssl.SSLError):
            h.close_connection = True
        except Exception as err:  # a fake must report, not hide, its own bugs
            with self._lock:
                self.errors.append(f"{h.command} {h.path}: {err!r}")
            h.close_connection = True
            with contextlib.suppress(OSError):
                h.send_error_json(500, "INTERNAL", repr(err))

    def _origin(self, h: _Handler) -> str:
        return f"{self.scheme}://{h.headers.get('Host') or self.host}"

    def _realm_url(self, h: _Handler) -> str:
        if self.realm:
            return self.realm
        if self.realm_host:
            return f"{self.scheme}://{self.realm_host}/token"
        return self._origin(h) + "/token"

    def _authorized(self, h: _Handler, repo: str | None, push: bool) -> bool:
        """True, or answer 401 with the challenge a client must satisfy."""
        if not self.require_auth:
            return True
        needed = {"pull", "push"} if push else {"pull"}
        scheme, _, token = h.headers.get("Authorization", "").partition(" ")
        with self._lock:
            grants = self._tokens.get(token) if scheme.lower() == "bearer" else None
        if grants is not None and (repo is None or needed <= grants.get(repo, frozenset())):
            return True
        challenge = f'Bearer realm="{self._realm_url(h)}",service="{self.service}"'
        if repo is not None:
            challenge += f',scope="repository:{repo}:{"push,pull" if push else "pull"}"'
        h.send_error_json(401, "UNAUTHORIZED", "authentication required", headers={"WWW-Authenticate": challenge})
        return False

    def _token(self, h: _Handler, role: str) -> None:
        scheme = self.scheme if role == "registry" else "http"
        url = (
            h.path if h.path.startswith(("http://", "https://")) else f"{scheme}://{h.headers.get('Host', '')}{h.path}"
        )
        query = parse_qs(urlsplit(url).query)
        scopes = tuple(query.get("scope", []))
        key, verified = _verify_signed_request(h.headers.get("Authorization", ""), url)
        with self._lock:
            allowed = self._keys.get(key or "") if verified else None
            if allowed is None and verified and self.anonymous_pull:
                allowed = frozenset({"pull"})
            granted: dict[str, frozenset[str]] = {}
            token = None
            if allowed is not None:
                for scope in (part for value in scopes for part in value.split()):
                    kind, _, rest = scope.partition(":")
                    repo, _, actions = rest.rpartition(":")
                    if kind == "repository" and repo:
                        granted[repo] = granted.get(repo, frozenset()) | (frozenset(actions.split(",")) & allowed)
                token = secrets.token_urlsafe(24)
                self._tokens[token] = granted
            self.token_requests.append(
                TokenRequest(url, h.headers.get("Host", ""), role, key, verified, scopes, token, granted)
            )
        if token is None:
            h.send_error_json(401, "UNAUTHORIZED", "unauthorized")
        else:
            h.send(200, json.dumps({"token": token}).encode(), content_type="application/json")

    def _registry_request(self, h: _Handler, path: str, query: dict[str, list[str]], body: bytes) -> None:
        method = h.command
        if path in ("/v2", "/v2/"):
            if self._authorized(h, None, push=False):
                h.send(200, b"{}", content_type="application/json")
            return
        if match := re.fullmatch(r"/v2/(?P<repo>.+?)/blobs/uploads/?", path):
            if method == "POST" and self._authorized(h, match["repo"], push=True):
                self._start_upload(h, match["repo"], query)
            elif method != "POST":
                h.send_error_json(405, "UNSUPPORTED", "method not allowed")
        elif match := re.fullmatch(r"/v2/(?P<repo>.+?)/blobs/uploads/(?P<id>[^/]+)", path):
            if self._authorized(h, match["repo"], push=True):
                self._continue_upload(h, match["repo"], match["id"], query, body)
        elif match := re.fullmatch(r"/v2/(?P<repo>.+?)/blobs/(?P<digest>[^/]+)", path):
            if self._authorized(h, match["repo"], push=method not in ("GET", "HEAD")):
                self._blob(h, match["repo"], match["digest"])
        elif match := re.fullmatch(r"/v2/(?P<repo>.+?)/manifests/(?P<ref>[^/]+)", path):
            if self._authorized(h, match["repo"], push=method not in ("GET", "HEAD")):
                self._manifest(h, match["repo"], match["ref"], body)
        else:
            h.send_error_json(404, "NAME_UNKNOWN", f"no route for {path}")

    def _blob(self, h: _Handler, repo: str, digest: str) -> None:
        if h.command not in ("GET", "HEAD"):
            h.send_error_json(405, "UNSUPPORTED", "method not allowed")
            return
        if not _DIGEST.fullmatch(digest):
            h.send_error_json(400, "DIGEST_INVALID", f"invalid digest {digest}")
            return
        if not self.has_blob(repo, digest):
            h.send_error_json(404, "BLOB_UNKNOWN", f"blob {digest} unknown to registry")
            return
        with self._lock:
            size = len(self._blobs[digest])
        if h.command == "HEAD":
            h.send(
                200,
                headers={"Docker-Content-Digest": digest},
                content_type="application/octet-stream",
                content_length=size,
            )
            return
        with self._lock:
            self.blob_gets[digest] += 1
        if not self.redirect_blobs:
            self._serve_blob(h, digest)
            return
        signature = secrets.token_urlsafe(16)
        with self._lock:
            self._signatures[signature] = ("blob", digest)
        location = f"{self.storage_url}/blobs/{digest}?sig={signature}"
        h.send(307, headers={"Location": location})

    def _manifest(self, h: _Handler, repo: str, ref: str, body: bytes) -> None:
        if h.command in ("GET", "HEAD"):
            with self._lock:
                raw = self._manifests.get((repo, ref))
                if raw is None and _DIGEST.fullmatch(ref):
                    raw = next(
                        (m for (r, _), m in self._manifests.items() if r == repo and sha256_digest(m) == ref), None
                    )
            if raw is None:
                h.send_error_json(404, "MANIFEST_UNKNOWN", f"manifest unknown: {repo}:{ref}")
                return
            h.send(200, raw, headers={"Docker-Content-Digest": sha256_digest(raw)}, content_type=MANIFEST_MEDIA_TYPE)
        elif h.command == "PUT":
            if h.headers.get("Content-Type", "").split(";")[0].strip() != MANIFEST_MEDIA_TYPE:
                h.send_error_json(400, "MANIFEST_INVALID", f"Content-Type must be {MANIFEST_MEDIA_TYPE}")
                return
            if self.verify_manifest_blobs and (problem := self._manifest_problem(repo, body)):
                h.send_error_json(400, *problem)
                return
            with self._lock:
                self._manifests[(repo, ref)] = bytes(body)
            digest = sha256_digest(body)
            location = f"{self._origin(h)}/v2/{repo}/manifests/{digest}"
            h.send(201, headers={"Location": location, "Docker-Content-Digest": digest})
        else:
            h.send_error_json(405, "UNSUPPORTED", "method not allowed")

    def _manifest_problem(self, repo: str, body: bytes) -> tuple[str, str] | None:
        try:
            document = json.loads(body)
            descriptors = [document["config"], *document["layers"]]
            digests = [descriptor["digest"] for descriptor in descriptors]
        except (ValueError, KeyError, TypeError):
            return "MANIFEST_INVALID", "manifest invalid"
        missing = [digest for digest in digests if not self.has_blob(repo, digest)]
        return ("MANIFEST_BLOB_UNKNOWN", f"blob unknown to registry: {missing[0]}") if missing else None

    def _start_upload(self, h: _Handler, repo: str, query: dict[str, list[str]]) -> None:
        mount, source = query.get("mount", [""])[0], query.get("from", [""])[0]
        if mount and source and self.has_blob(source, mount):
            with self._lock:
                self._repo_blobs.setdefault(repo, set()).add(mount)
                self.mounts.append((repo, mount, source))
            location = f"{self._origin(h)}/v2/{repo}/blobs/{mount}"
            h.send(201, headers={"Location": location, "Docker-Content-Digest": mount})
            return
        upload_id = str(uuid.uuid4())
        with self._lock:
            self._uploads[upload_id] = _Upload(repo)
        location = f"{self._origin(h)}/v2/{repo}/blobs/uploads/{upload_id}"
        h.send(
            202,
            headers={"Location": location, "Docker-Upload-Location": location, "Docker-Upload-UUID": upload_id},
        )

    def _continue_upload(
        self, h: _Handler, repo: str, upload_id: str, query: dict[str, list[str]], body: bytes
    ) -> None:
        with self._lock:
            upload = self._uploads.get(upload_id)
        if upload is None or upload.repo != repo:
            h.send_error_json(404, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry")
            return
        location = f"{self._origin(h)}/v2/{repo}/blobs/uploads/{upload_id}"
        if h.command == "PATCH":
            self._patch(h, upload, upload_id, location, body)
        elif h.command == "PUT":
            self._finish_upload(h, upload, upload_id, query, body)
        else:
            h.send_error_json(405, "UNSUPPORTED", "method not allowed")

    def _patch(self, h: _Handler, upload: _Upload, upload_id: str, location: str, body: bytes) -> None:
        content_range = h.headers.get("Content-Range")
        match = _CONTENT_RANGE.fullmatch(content_range.strip()) if content_range else None
        if content_range and match is None:
            h.send_error_json(400, "BLOB_UPLOAD_INVALID", f"bad Content-Range {content_range!r}")
            return
        if self.redirect_uploads and h.headers.get("X-Redirect-Uploads") == "1":
            if match is None:
                h.send_error_json(400, "BLOB_UPLOAD_INVALID", "Content-Range required")
                return
            signature = secrets.token_urlsafe(16)
            start, end = int(match[1]), int(match[2])
            with self._lock:
                self._signatures[signature] = ("upload", upload_id, start, end)
            storage = f"{self.storage_url}/upload/{upload_id}/{start}?sig={signature}"
            h.send(307, headers={"Location": storage, "Docker-Upload-Location": location})  # body discarded
            return
        with self._lock:
            size = len(upload.data)
            in_order = match is None or int(match[1]) == size
            if in_order:
                upload.data += body
                size = len(upload.data)
        if not in_order:
            h.send_error_json(416, "BLOB_UPLOAD_INVALID", f"expected offset {size}")
            return
        h.send(
            202,
            headers={"Location": location, "Docker-Upload-Location": location, "Range": f"0-{max(size - 1, 0)}"},
        )

    def _finish_upload(
        self, h: _Handler, upload: _Upload, upload_id: str, query: dict[str, list[str]], body: bytes
    ) -> None:
        digest = query.get("digest", [""])[0]
        with self._lock:
            problem = self._complete(upload, upload_id, digest, query.get("etag", [None])[0], body)
        if problem is not None:
            h.send_error_json(400, *problem)
            return
        location = f"{self._origin(h)}/v2/{upload.repo}/blobs/{digest}"
        h.send(201, headers={"Location": location, "Docker-Content-Digest": digest})

    def _complete(
        self, upload: _Upload, upload_id: str, digest: str, etag: str | None, body: bytes
    ) -> tuple[str, str] | None:
        """Assemble the parts by offset and store the blob; or say (code, message) why not. Lock held."""
        if upload.parts and (upload.data or body):
            return "BLOB_UPLOAD_INVALID", "mixed redirected and direct upload data"
        data = bytearray()
        for offset in sorted(upload.parts):
            if offset != len(data):
                return "BLOB_UPLOAD_INVALID", f"gap or overlap at offset {offset}"
            data += upload.parts[offset]
        data += upload.data + body
        if sha256_digest(bytes(data)) != digest:
            return "DIGEST_INVALID", "provided digest did not match uploaded content"
        expected_etag = None
        if upload.parts:
            md5s = b"".join(hashlib.md5(upload.parts[offset]).digest() for offset in sorted(upload.parts))
            expected_etag = f"{hashlib.md5(md5s).hexdigest()}-{len(upload.parts)}"
        self._blobs[digest] = data
        self._repo_blobs.setdefault(upload.repo, set()).add(digest)
        del self._uploads[upload_id]
        self.uploads.append(UploadRecord(upload.repo, digest, len(data), len(upload.parts), etag, expected_etag))
        return None

    def _storage_request(self, h: _Handler, path: str, query: dict[str, list[str]], body: bytes) -> None:
        if "Authorization" in h.headers:
            # A presigned URL carries its own grant; a client sending credentials here leaks them.
            h.send_error_json(400, "InvalidArgument", "storage does not accept an Authorization header")
            return
        with self._lock:
            grant = self._signatures.get(query.get("sig", [""])[0])
        if h.command in ("GET", "HEAD") and (match := re.fullmatch(r"/blobs/(sha256:[0-9a-f]{64})", path)):
            if grant != ("blob", match[1]):
                h.send_error_json(403, "SignatureDoesNotMatch", "bad signature")
                return
            self._serve_blob(h, match[1])
        elif h.command == "PUT" and (match := re.fullmatch(r"/upload/([^/]+)/(\d+)", path)):
            upload_id, offset = match[1], int(match[2])
            if grant is None or grant[:3] != ("upload", upload_id, offset):
                h.send_error_json(403, "SignatureDoesNotMatch", "bad signature")
                return
            with self._lock:
                upload = self._uploads.get(upload_id)
                if upload is not None:
                    upload.parts[offset] = body
            if upload is None:
                h.send_error_json(404, "NoSuchUpload", "upload unknown")
                return
            h.send(200, headers={"ETag": f'"{hashlib.md5(body).hexdigest()}"'})
        else:
            h.send_error_json(404, "NoSuchKey", f"no route for {h.command} {path}")

    def _serve_blob(self, h: _Handler, digest: str) -> None:
        """Serve a blob with Range support, honouring the throttle and the dropped-connection switch."""
        with self._lock:
            data = bytes(self._blobs[digest])
        size = len(data)
        headers = {"Accept-Ranges": "bytes", "Docker-Content-Digest": digest}
        status, start, end = 200, 0, size - 1
        if range_header := h.headers.get("Range"):
            try:
                start, end = parse_range(range_header, size)
            except ValueError:
                h.send_error_json(
                    416, "RANGE_INVALID", "range not satisfiable", headers={"Content-Range": f"bytes */{size}"}
                )
                return
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        h.send(status, headers=headers, content_type="application/octet-stream", content_length=end - start + 1)
        if h.command == "HEAD":
            return
        with self._lock:
            self.storage_gets[digest] += 1
            drop_at = None
            if self.drop_after_bytes is not None and self.drop_times > 0:
                self.drop_times -= 1
                drop_at = self.drop_after_bytes
        sent, position = 0, start
        while position <= end:
            rate = self.storage_rate
            size_now = min(_RateLimiter.chunk_size(rate), end + 1 - position)
            if drop_at is not None and sent + size_now >= drop_at:
                size_now = drop_at - sent
            self._limiter.wait(rate, size_now)
            h.wfile.write(data[position : position + size_now])
            sent += size_now
            position += size_now
            with self._lock:
                self.storage_bytes_served[digest] += size_now
            if drop_at is not None and sent >= drop_at and position <= end:
                h.wfile.flush()
                with self._lock:
                    self.drops += 1
                h.close_connection = True
                _hard_close(h.connection)
                return


def _verify_signed_request(authorization: str, url: str) -> tuple[str | None, bool]:
    """(public-key blob, signature valid) for Ollama's ``<pubkey-b64>:<sig-b64>`` over ``GET,<url>,<body hash>``."""
    key_blob, separator, signature_b64 = authorization.strip().partition(":")
    if not separator or not key_blob:
        return None, False
    try:
        key = serialization.load_ssh_public_key(b"ssh-ed25519 " + key_blob.encode())
        signature = base64.b64decode(signature_b64, validate=True)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return key_blob, False
    if not isinstance(key, Ed25519PublicKey):
        return key_blob, False
    body_hash = base64.b64encode(hashlib.sha256(b"").hexdigest().encode()).decode()
    try:
        key.verify(signature, f"GET,{url},{body_hash}".encode())
    except InvalidSignature:
        return key_blob, False
    return key_blob, True


# --------------------------------------------------------------------------- forward proxy


@dataclass
class ProxiedRequest:
    method: str
    url: str  # absolute URL, or "host:port" for CONNECT
    status: int | None = None  # None while the upstream has not answered


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = 60

    def log_message(self, format: str, *args: Any) -> None:  # the stdlib names it so
        pass

    def _relay(self) -> None:
        try:
            self.server.app.relay(self)
        except Exception as err:  # recorded: a test may assert there are none
            self.server.app.errors.append(f"{self.command} {self.path}: {err!r}")
            self.close_connection = True

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _relay

    def do_CONNECT(self) -> None:
        self.server.app.tunnel(self)


class ForwardProxy(_Running):
    """An ``HTTP_PROXY``-style proxy: absolute-URI requests relayed and streamed, ``CONNECT`` tunnelled.

    ``hosts`` maps names only the proxy can resolve (``{"registry.test": "127.0.0.1"}``), which proves
    a client really went through the proxy. ``rate`` throttles response bodies (bytes/s, shared by all
    connections); ``cut_after_bytes`` closes the client connection once that many response-body bytes
    have been relayed in total, then switches itself off.
    """

    def __init__(
        self, *, hosts: Mapping[str, str] | None = None, rate: float | None = None, cut_after_bytes: int | None = None
    ) -> None:
        self.hosts = {name.lower(): address for name, address in (hosts or {}).items()}
        self.rate = rate
        self.cut_after_bytes = cut_after_bytes
        self._lock = threading.Lock()
        self._limiter = _RateLimiter()
        self._relayed_since_armed = 0
        self.requests: list[ProxiedRequest] = []
        self.connects: list[str] = []
        self.bytes_by_path: Counter[str] = Counter()
        self.total_bytes = 0  # response-body bytes relayed (not counting tunnels)
        self.tunnel_bytes = 0
        self.cuts = 0
        self.errors: list[str] = []
        self._server: _Server | None = None
        self._port = 0

    def start(self) -> Self:
        self._server = _Server(("127.0.0.1", 0), _ProxyHandler, self, "proxy")
        self._port = self._server.port  # kept after stop()
        self._server.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def arm_cut(self, after_bytes: int) -> None:
        """Cut once after ``after_bytes`` more response-body bytes (counting from now)."""
        with self._lock:
            self.cut_after_bytes = after_bytes
            self._relayed_since_armed = 0

    def _resolve(self, host: str) -> str:
        return self.hosts.get(host.lower(), host)

    def _record(self, method: str, url: str) -> ProxiedRequest:
        entry = ProxiedRequest(method, url)
        with self._lock:
            self.requests.append(entry)
        return entry

    def relay(self, h: _ProxyHandler) -> None:
        entry = self._record(h.command, h.path)
        target = urlsplit(h.path)
        if target.scheme != "http" or not target.hostname:
            for _ in _iter_body(h.rfile, h.headers):
                pass
            entry.status = 400
            h.send_response(400)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        try:
            upstream = HTTPConnection(self._resolve(target.hostname), target.port or 80, timeout=60)
            path = (target.path or "/") + (f"?{target.query}" if target.query else "")
            upstream.putrequest(h.command, path, skip_host=True, skip_accept_encoding=True)
            for name, value in h.headers.items():
                if name.lower() not in _HOP_BY_HOP:
                    upstream.putheader(name, value)
            if "Host" not in h.headers:
                upstream.putheader("Host", target.netloc)
            chunked = "chunked" in h.headers.get("Transfer-Encoding", "").lower()
            if chunked:
                upstream.putheader("Transfer-Encoding", "chunked")
            upstream.putheader("Connection", "close")
            upstream.endheaders()
            for piece in _iter_body(h.rfile, h.headers):
                upstream.send(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            if chunked:
                upstream.send(b"0\r\n\r\n")
            response = upstream.getresponse()
        except OSError as err:
            entry.status = 502
            h.close_connection = True
            with contextlib.suppress(OSError):
                message = f"proxy: {err}".encode()
                h.send_response(502)
                h.send_header("Content-Length", str(len(message)))
                h.end_headers()
                h.wfile.write(message)
            return
        try:
            entry.status = response.status
            self._relay_response(h, response, target.path or "/")
        except OSError:
            h.close_connection = True
        finally:
            upstream.close()

    def _relay_response(self, h: _ProxyHandler, response: HTTPResponse, path: str) -> None:
        h.send_response_only(response.status, response.reason)
        for name, value in response.getheaders():
            if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                h.send_header(name, value)
        bodiless = h.command == "HEAD" or response.status in (204, 304) or response.status < 200
        length = response.getheader("Content-Length")
        if bodiless:
            if length is not None:
                h.send_header("Content-Length", length)  # HEAD's Content-Length is the information asked for
            h.end_headers()
            return
        chunked_out = response.length is None
        if chunked_out:
            h.send_header("Transfer-Encoding", "chunked")
        else:
            h.send_header("Content-Length", str(response.length))
        h.end_headers()
        while True:
            piece = response.read1(_RateLimiter.chunk_size(self.rate))
            if not piece:
                break
            allowed = self._budget(len(piece))
            piece_out = piece[:allowed]
            self._limiter.wait(self.rate, len(piece_out))
            if piece_out:
                h.wfile.write(b"%x\r\n%s\r\n" % (len(piece_out), piece_out) if chunked_out else piece_out)
            with self._lock:
                self.bytes_by_path[path] += len(piece_out)
                self.total_bytes += len(piece_out)
            if allowed < len(piece):
                h.wfile.flush()
                h.close_connection = True
                _hard_close(h.connection)
                return
        if chunked_out:
            h.wfile.write(b"0\r\n\r\n")

    def _budget(self, size: int) -> int:
        """How many of the next ``size`` bytes may go out before the one-time cut (all of them if none)."""
        with self._lock:
            if self.cut_after_bytes is None:
                return size
            left = max(0, self.cut_after_bytes - self._relayed_since_armed)
            if size < left:
                self._relayed_since_armed += size
                return size
            self.cut_after_bytes = None
            self._relayed_since_armed = 0
            self.cuts += 1
            return left

    def tunnel(self, h: _ProxyHandler) -> None:
        entry = self._record("CONNECT", h.path)
        host, _, port = h.path.rpartition(":")
        with self._lock:
            self.connects.append(h.path)
        try:
            upstream = socket.create_connection((self._resolve(host.strip("[]")), int(port)), timeout=10)
        except (OSError, ValueError):
            entry.status = 502
            h.close_connection = True
            h.send_response_only(502)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        entry.status = 200
        h.send_response_only(200, "Connection Established")
        h.end_headers()
        h.wfile.flush()
        h.close_connection = True
        client = h.connection
        with contextlib.closing(upstream), selectors.DefaultSelector() as selector:
            client.settimeout(None)
            upstream.settimeout(None)
            selector.register(client, selectors.EVENT_READ, upstream)
            selector.register(upstream, selectors.EVENT_READ, client)
            while self._server is not None:
                for key, _ in selector.select(timeout=0.2):
                    source: socket.socket = key.fileobj  # type: ignore[assignment]
                    try:
                        data = source.recv(65536)
                        if data:
                            key.data.sendall(data)
                    except OSError:
                        data = b""
                    if not data:
                        return
                    with self._lock:
                        self.tunnel_bytes += len(data)
