"""Running the server: logging, the listening socket, uvicorn."""

from __future__ import annotations

import logging
import socket
import ssl
from types import FrameType

import uvicorn

from pollama.config import ConfigError, Settings
from pollama.server.app import create_app
from pollama.server.auth import warn_if_open
from pollama.server.limits import protocol_with_header_timeout
from pollama.server.shutdown import GRACE, Shutdown
from pollama.version import __version__

__all__ = ["ListenError", "serve"]

log = logging.getLogger("pollama")


class ListenError(OSError):
    pass


def _listen(settings: Settings) -> socket.socket:
    host, port = settings.host.host, settings.host.port
    candidates: list[tuple[socket.AddressFamily, str]] = []
    if host == "":
        candidates = [(socket.AF_INET6, "::"), (socket.AF_INET, "0.0.0.0")]
    if not candidates:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as err:
            raise ListenError(f"listen tcp {settings.host.hostport}: {err.strerror or err}") from None
        candidates = [(family, str(address[0])) for family, _type, _proto, _name, address in infos]
    last: OSError | None = None
    for family, address in candidates:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and host == "":
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # every interface, v4 too
            sock.bind((address, port))
            sock.listen(2048)
            sock.set_inheritable(True)
            return sock
        except OSError as err:
            sock.close()
            last = err
    reason = "bind: address already in use" if last and last.errno == 98 else (last.strerror if last else "")
    raise ListenError(f"listen tcp {settings.host.hostport}: {reason}")


# Every control character, so that nothing a client sends (an option name with a newline) can forge
# a log line; a traceback becomes one line too.
_ESCAPES = {code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F)} | {0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"}


class OneLineFormatter(logging.Formatter):
    """One line per event, control characters escaped."""

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).translate(_ESCAPES)


def configure_logging(settings: Settings) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(OneLineFormatter("time=%(asctime)s level=%(levelname)s source=%(name)s msg=%(message)s"))
    logging.basicConfig(level=settings.log_level, handlers=[handler])
    # httpx logs every registry request at INFO; that detail is for OLLAMA_DEBUG.
    logging.getLogger("httpx").setLevel(settings.log_level if settings.log_level <= logging.DEBUG else logging.WARNING)


def _check_tls(settings: Settings) -> bool:
    """Whether to serve HTTPS. Half a pair, a file that cannot be read, or a certificate and key that do
    not make a pair is a ``ConfigError`` here, before uvicorn would fail on it with a traceback."""
    cert, key = settings.tls_cert, settings.tls_key
    if cert is None and key is None:
        return False
    if cert is None or key is None:
        given, missing = ("POLLAMA_TLS_CERT", "POLLAMA_TLS_KEY") if cert else ("POLLAMA_TLS_KEY", "POLLAMA_TLS_CERT")
        raise ConfigError(f"{given} is set but {missing} is not: HTTPS needs both a certificate and its private key")
    for name, path in (("POLLAMA_TLS_CERT", cert), ("POLLAMA_TLS_KEY", key)):
        try:
            path.read_bytes()
        except OSError as err:
            raise ConfigError(f"{name}: cannot read {path}: {err.strerror or err}") from None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_verify_locations(cafile=cert)
    except ssl.SSLError:
        raise ConfigError(f"POLLAMA_TLS_CERT: {cert} holds no PEM certificate") from None
    try:
        # A password-protected key would make OpenSSL ask for its password on the terminal.
        context.load_cert_chain(cert, key, password=lambda: b"")
    except ssl.SSLError as err:
        if err.reason == "KEY_VALUES_MISMATCH":
            raise ConfigError(f"POLLAMA_TLS_KEY: {key} is not the private key of POLLAMA_TLS_CERT {cert}") from None
        detail = f" ({err.reason})" if err.reason and err.reason != "PEM lib" else ""
        raise ConfigError(f"POLLAMA_TLS_KEY: {key} is not an unencrypted PEM private key{detail}") from None
    return True


def serve(settings: Settings) -> None:
    configure_logging(settings)
    settings = settings.read_api_keys_file().check_rpc_servers()
    tls = _check_tls(settings)
    sock = _listen(settings)
    log.info("server config env=%s", settings.describe())
    log.info("Listening on %s (version %s)", ("https://" if tls else "") + settings.host.hostport, __version__)
    if settings.host.scheme == "https" and not tls:
        log.warning("OLLAMA_HOST says https, but without POLLAMA_TLS_CERT and POLLAMA_TLS_KEY this serves plain http")
    warn_if_open(settings)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        http=protocol_with_header_timeout(settings.limits.header_timeout),
        log_config=None,  # uvicorn's loggers write through ours: one format, escaped
        log_level=logging.getLevelName(max(settings.log_level, logging.DEBUG)).lower(),
        access_log=settings.log_level <= logging.DEBUG,
        server_header=False,
        # Streams end themselves (with an error line) after the grace period; this only bounds the rest.
        timeout_graceful_shutdown=int(GRACE) + 3,
        # uvicorn wraps the socket bound above (``run(sockets=...)``) in TLS as well.
        ssl_certfile=settings.tls_cert if tls else None,
        ssl_keyfile=settings.tls_key if tls else None,
    )
    _Server(config, app.state.pollama.shutdown).run(sockets=[sock])


class _Server(uvicorn.Server):
    """uvicorn's server, telling the app when a shutdown begins (uvicorn itself tells it only at the end)."""

    def __init__(self, config: uvicorn.Config, shutdown: Shutdown) -> None:
        super().__init__(config)
        self.shutdown_notice = shutdown

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.shutdown_notice.begin()
        super().handle_exit(sig, frame)
