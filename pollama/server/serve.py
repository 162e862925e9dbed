"""Running the server: logging, the listening socket, uvicorn."""

from __future__ import annotations

import logging
import socket

import uvicorn

from pollama.config import Settings
from pollama.server.app import create_app
from pollama.version import __version__

__all__ = ["ListenError", "serve"]

log = logging.getLogger("pollama")


class ListenError(OSError):
    pass


def _listen(settings: Settings) -> socket.socket:
    host, port = settings.host.host, settings.host.port
    candidates = [(socket.AF_INET6, "::"), (socket.AF_INET, "0.0.0.0")] if host == "" else []
    if not candidates:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as err:
            raise ListenError(f"listen tcp {settings.host.hostport}: {err.strerror or err}") from None
        candidates = [(family, address[0]) for family, _type, _proto, _name, address in infos]
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


def configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level,
        format="time=%(asctime)s level=%(levelname)s source=%(name)s msg=%(message)s",
    )
    # httpx logs every registry request at INFO; that detail is for OLLAMA_DEBUG.
    logging.getLogger("httpx").setLevel(settings.log_level if settings.log_level <= logging.DEBUG else logging.WARNING)


def serve(settings: Settings) -> None:
    configure_logging(settings)
    sock = _listen(settings)
    log.info("server config env=%s", settings.describe())
    log.info("Listening on %s (version %s)", settings.host.hostport, __version__)
    config = uvicorn.Config(
        create_app(settings),
        log_level=logging.getLevelName(max(settings.log_level, logging.DEBUG)).lower(),
        access_log=settings.log_level <= logging.DEBUG,
        server_header=False,
        timeout_graceful_shutdown=5,
    )
    uvicorn.Server(config).run(sockets=[sock])
