"""Settings: every ``OLLAMA_*`` variable, read once, with Ollama's parsing rules.

This is the only module that reads the environment. ``Settings.from_env()``
builds an immutable object that the server and the CLI pass down.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from pollama.gocompat import gostrconv
from pollama.gocompat.durations import FOREVER, MINUTE, SECOND, format_go_duration, parse_go_duration

__all__ = ["ConfigError", "HostURL", "Limits", "Settings", "parse_host", "parse_rpc_servers", "split_host_port"]

log = logging.getLogger(__name__)

DEFAULT_PORT = 11434
TRACE = 5  # below logging.DEBUG, for OLLAMA_DEBUG=2

_BUILTIN_ORIGIN_HOSTS = ("localhost", "127.0.0.1", "0.0.0.0")
_BUILTIN_ORIGIN_SCHEMES = ("app://*", "file://*", "tauri://*", "vscode-webview://*", "vscode-file://*")
# ggml-rpc.h's GGML_RPC_MAX_SERVERS: llama.cpp's RPC backend is not meant for more servers than this.
MAX_RPC_SERVERS = 16
MAX_DRAFT_TOKENS = 32  # POLLAMA_DRAFT_TOKENS, at most


@dataclass(frozen=True)
class HostURL:
    scheme: str
    host: str  # without brackets; "" means every interface
    port: int
    path: str = ""

    @property
    def hostport(self) -> str:
        return join_host_port(self.host, self.port)

    def __str__(self) -> str:
        return f"{self.scheme}://{self.hostport}" + (f"/{self.path}" if self.path else "")

    def connectable(self) -> HostURL:
        """The address a client dials: an unspecified bind address becomes loopback."""
        if self.host in ("", "0.0.0.0"):
            return HostURL(self.scheme, "127.0.0.1", self.port, self.path)
        if self.host == "::":
            return HostURL(self.scheme, "::1", self.port, self.path)
        return self

    @property
    def base_url(self) -> str:
        return str(self.connectable())

    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


def join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def split_host_port(hostport: str) -> tuple[str, str] | None:
    """Go's ``net.SplitHostPort``: None where Go returns an error."""
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0 or end + 1 >= len(hostport) or hostport[end + 1] != ":":
            return None
        host, port = hostport[1:end], hostport[end + 2 :]
        return (host, port) if ":" not in port else None
    host, sep, port = hostport.rpartition(":")
    if not sep or ":" in host:
        return None
    return host, port


def _normalize_ip(text: str) -> str | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return str(address.ipv4_mapped)
    return str(address)


def parse_host(raw: str, default_port: int | None = None) -> HostURL:
    """Parse ``OLLAMA_HOST`` as Ollama's ``envconfig.Host`` does.

    ``default_port`` (from ``OLLAMA_PORT``) replaces the scheme's default port
    when the value names none.
    """
    s = raw.strip()
    scheme, sep, hostport = s.partition("://")
    fallback = DEFAULT_PORT
    if not sep:
        scheme, hostport = "http", s
        if s == "ollama.com":
            scheme, hostport = "https", "ollama.com:443"
    elif scheme == "http":
        fallback = 80
    elif scheme == "https":
        fallback = 443
    if default_port is not None:
        fallback = default_port
    hostport, _, path = hostport.partition("/")
    split = split_host_port(hostport)
    if split is None:
        host, port_text = "127.0.0.1", str(fallback)
        ip = _normalize_ip(hostport.strip("[]"))
        if ip is not None:
            host = ip
        elif hostport:
            host = hostport
    else:
        host, port_text = split
    port = gostrconv.parse_int(port_text)
    if port is None or not 0 <= port <= 65535:
        log.warning("invalid port, using default port=%s default=%s", port_text, fallback)
        port = fallback
    return HostURL(scheme=scheme, host=host, port=port, path=path)


def _clean(environ: Mapping[str, str], key: str) -> str:
    # Ollama trims surrounding spaces, then any surrounding quotes.
    return environ.get(key, "").strip().strip("\"'")


def _bool(environ: Mapping[str, str], key: str, default: bool | None = False) -> bool | None:
    value = _clean(environ, key)
    if not value:
        return default
    parsed = gostrconv.parse_bool(value)
    return True if parsed is None else parsed  # unparsable but set means "on"


def _uint(environ: Mapping[str, str], key: str, default: int) -> int:
    value = _clean(environ, key)
    if not value:
        return default
    if value.isascii() and value.isdigit() and int(value) < (1 << 64):
        return int(value)
    log.warning("invalid environment variable, using default key=%s value=%s default=%s", key, value, default)
    return default


def _duration(environ: Mapping[str, str], key: str, default: int) -> int:
    """Nanoseconds from a Go duration or a whole number of seconds; invalid means the default."""
    value = _clean(environ, key)
    if not value:
        return default
    try:
        return parse_go_duration(value)
    except ValueError:
        pass
    seconds = gostrconv.parse_int(value)
    return default if seconds is None else seconds * SECOND


def _log_level(environ: Mapping[str, str]) -> int:
    value = _clean(environ, "OLLAMA_DEBUG")
    if not value:
        return logging.INFO
    if gostrconv.parse_bool(value):
        return logging.DEBUG
    number = gostrconv.parse_int(value)
    if number is None:
        return logging.INFO
    slog_level = -4 * number
    # slog levels step by 4 (DEBUG -4, INFO 0, WARN 4, ERROR 8); logging steps by 10.
    return {-8: TRACE, -4: logging.DEBUG, 0: logging.INFO, 4: logging.WARNING}.get(
        slog_level, TRACE if slog_level < -8 else logging.ERROR
    )


def _origins(environ: Mapping[str, str]) -> tuple[str, ...]:
    configured = _clean(environ, "OLLAMA_ORIGINS")
    origins = configured.split(",") if configured else []
    for host in _BUILTIN_ORIGIN_HOSTS:
        origins += [f"http://{host}", f"https://{host}", f"http://{host}:*", f"https://{host}:*"]
    return (*origins, *_BUILTIN_ORIGIN_SCHEMES)


class ConfigError(ValueError):
    """A setting the server cannot start with (an unreadable key file, a bad TLS pair); the message says which."""


def _api_keys(text: str) -> tuple[str, ...]:
    """``POLLAMA_API_KEYS``: comma-separated, surrounding spaces dropped, empty entries ignored."""
    return tuple(key for part in text.split(",") if (key := part.strip()))


def parse_rpc_servers(entries: str | tuple[str, ...]) -> tuple[str, ...]:
    """``POLLAMA_RPC_SERVERS``: ``host:port`` of each ``ggml-rpc-server``, comma-separated; ConfigError naming
    the first entry llama.cpp could not use.

    The checks are those of llama.cpp's RPC client, which would otherwise abort the runner: it splits an
    endpoint at the first colon and resolves the host as IPv4 only (``gethostbyname``), so an IPv6 address
    cannot work, and it reads the port with ``stoi``, which takes ``50052x`` for 50052.
    """
    parts = entries.split(",") if isinstance(entries, str) else entries
    servers: list[str] = []
    for raw in parts:
        entry = raw.strip()
        if not entry:
            continue
        host, sep, port = entry.rpartition(":")
        if not sep or not host:
            raise ConfigError(f"POLLAMA_RPC_SERVERS: {entry!r} is not host:port (e.g. 192.168.1.20:50052)")
        if ":" in host or host.startswith("["):
            raise ConfigError(
                f"POLLAMA_RPC_SERVERS: {entry!r}: llama.cpp's RPC client reaches servers over IPv4 only;"
                " give an IPv4 address or a host name"
            )
        if not (port.isascii() and port.isdigit() and 0 < int(port) <= 65535):
            raise ConfigError(f"POLLAMA_RPC_SERVERS: {entry!r}: the port must be a number from 1 to 65535")
        endpoint = f"{host.lower()}:{int(port)}"
        if endpoint in servers:
            raise ConfigError(f"POLLAMA_RPC_SERVERS: {entry!r} is listed twice")
        servers.append(endpoint)
    if len(servers) > MAX_RPC_SERVERS:
        raise ConfigError(f"POLLAMA_RPC_SERVERS: {len(servers)} servers; llama.cpp takes at most {MAX_RPC_SERVERS}")
    return tuple(servers)


def _optional_path(environ: Mapping[str, str], key: str) -> Path | None:
    value = _clean(environ, key)
    return Path(value).expanduser() if value else None


def _list(environ: Mapping[str, str], key: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
    value = _clean(environ, key)
    return tuple(value.split(",")) if value else default


@dataclass(frozen=True)
class Limits:
    """What one request may cost (beyond Ollama, which sets none); README "Limits and failure behaviour".

    Every field has an ``OLLAMA_*`` variable; sizes are bytes, times seconds.
    """

    max_body_bytes: int = 64 << 20  # a JSON request body (blob uploads are not JSON and have no limit)
    max_json_depth: int = 128  # nesting of arrays and objects in a request body
    header_timeout: float = 10.0  # from a connection's first byte to the end of its request headers
    body_timeout: float = 60.0  # the longest wait for the next piece of a request body
    template_max_steps: int = 1_000_000  # actions, range iterations and calls one template execution may take
    template_max_output: int = 128 << 20  # bytes one template execution may write (and make in functions)
    max_threads: int = 512  # num_thread: llama.cpp's own limit (GGML_MAX_N_THREADS); more aborts the runner


def _limits(environ: Mapping[str, str]) -> Limits:
    defaults = Limits()

    def seconds(key: str, default: float) -> float:
        nanoseconds = _duration(environ, key, int(default * SECOND))
        return nanoseconds / SECOND if nanoseconds > 0 else default

    return Limits(
        max_body_bytes=_uint(environ, "OLLAMA_MAX_BODY_SIZE", defaults.max_body_bytes) or defaults.max_body_bytes,
        max_json_depth=_uint(environ, "OLLAMA_MAX_JSON_DEPTH", defaults.max_json_depth) or defaults.max_json_depth,
        header_timeout=seconds("OLLAMA_HEADER_TIMEOUT", defaults.header_timeout),
        body_timeout=seconds("OLLAMA_BODY_TIMEOUT", defaults.body_timeout),
        template_max_steps=_uint(environ, "OLLAMA_TEMPLATE_MAX_STEPS", defaults.template_max_steps)
        or defaults.template_max_steps,
        template_max_output=_uint(environ, "OLLAMA_TEMPLATE_MAX_OUTPUT", defaults.template_max_output)
        or defaults.template_max_output,
    )


@dataclass(frozen=True)
class Settings:
    host: HostURL = field(default_factory=lambda: parse_host(""))
    origins: tuple[str, ...] = field(default_factory=lambda: _origins({}))
    models: Path = field(default_factory=lambda: Path.home() / ".ollama" / "models")
    home: Path = field(default_factory=lambda: Path.home() / ".ollama")
    keep_alive: int = 5 * MINUTE  # nanoseconds; FOREVER for negative values
    load_timeout: int = 5 * MINUTE  # nanoseconds; FOREVER for zero or negative values
    context_length: int = 0  # 0: decided from the hardware
    num_parallel: int = 1
    max_loaded_models: int = 0  # 0: decided from the hardware
    max_queue: int = 512
    max_transfer_streams: int = 4
    log_level: int = logging.INFO
    debug_log_requests: bool = False
    log_requests: bool = False  # beyond Ollama: POLLAMA_LOG_REQUESTS, one line per request (never a body)
    flash_attention: bool | None = None  # None: automatic
    kv_cache_type: str = ""
    gpu_overhead: int = 0
    max_vram: int = 0
    sched_spread: bool = False
    llm_library: str = ""
    tmpdir: Path | None = None
    go_template: bool | None = None  # None: not set, which means on
    noprune: bool = False
    nohistory: bool = False
    editor: str = ""
    no_cloud: bool = False
    remotes: tuple[str, ...] = ("ollama.com",)
    auth: bool = False
    vulkan: bool = True
    igpu_enable: str = ""
    cuda_visible_devices: str | None = None
    hip_visible_devices: str | None = None
    rocr_visible_devices: str | None = None
    gpu_device_ordinal: str | None = None
    # Outbound proxies for registry traffic, Go's ProxyFromEnvironment variables.
    http_proxy: str = ""
    https_proxy: str = ""
    no_proxy: str = ""
    # Beyond Ollama: extra CA certificates trusted for registries (self-signed TLS), and where
    # registry credentials are read from (Docker's config.json, the containers auth.json).
    registry_ca: Path | None = None
    docker_config: Path = field(default_factory=lambda: Path.home() / ".docker" / "config.json")
    registry_auth_file: Path | None = None
    limits: Limits = field(default_factory=Limits)
    # Beyond Ollama: opt-in API keys (README "API keys and TLS"). The server's keys come from
    # POLLAMA_API_KEYS and the file POLLAMA_API_KEYS_FILE (read at start by ``read_api_keys_file``);
    # the CLI sends OLLAMA_API_KEY. Never in the repr, so never in a log line.
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    api_keys_file: Path | None = None
    api_key: str = field(default="", repr=False)
    # HTTPS served directly (POLLAMA_TLS_CERT and POLLAMA_TLS_KEY, PEM files), and the extra CA
    # certificates the CLI trusts (SSL_CERT_FILE, e.g. a self-signed server's certificate).
    tls_cert: Path | None = None
    tls_key: Path | None = None
    ssl_cert_file: Path | None = None
    # Beyond Ollama: ggml-rpc-server endpoints ("host:port") every runner splits its model's layers over
    # (docs/rpc.md). As written in POLLAMA_RPC_SERVERS, comma-split; ``check_rpc_servers`` validates them
    # at server start, so a mistake there never stops a client command.
    rpc_servers: tuple[str, ...] = ()
    # Beyond Ollama: speculative decoding with drafts looked up in each sequence's own tokens (runner.drafts):
    # at most this many draft tokens a step (POLLAMA_DRAFT_TOKENS, 0: off, at most 32).
    draft_tokens: int = 0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        home = Path(env["HOME"]) if env.get("HOME") else Path.home()
        port_text = _clean(env, "OLLAMA_PORT")
        default_port = int(port_text) if port_text.isdigit() and int(port_text) <= 65535 else None
        keep_alive = _duration(env, "OLLAMA_KEEP_ALIVE", 5 * MINUTE)
        load_timeout = _duration(env, "OLLAMA_LOAD_TIMEOUT", 5 * MINUTE)
        tmpdir = _clean(env, "OLLAMA_TMPDIR")
        models = _clean(env, "OLLAMA_MODELS")

        def optional(key: str) -> str | None:
            return env.get(key, None)

        def either_case(key: str) -> str:
            return env.get(key) or env.get(key.lower()) or ""

        registry_ca = _clean(env, "OLLAMA_REGISTRY_CA")
        docker_dir = _clean(env, "DOCKER_CONFIG")
        auth_file = _clean(env, "REGISTRY_AUTH_FILE")

        return cls(
            host=parse_host(_clean(env, "OLLAMA_HOST"), default_port),
            origins=_origins(env),
            models=Path(models).expanduser() if models else home / ".ollama" / "models",
            home=home / ".ollama",
            keep_alive=FOREVER if keep_alive < 0 else keep_alive,
            load_timeout=FOREVER if load_timeout <= 0 else load_timeout,
            context_length=_uint(env, "OLLAMA_CONTEXT_LENGTH", 0),
            num_parallel=_uint(env, "OLLAMA_NUM_PARALLEL", 1),
            max_loaded_models=_uint(env, "OLLAMA_MAX_LOADED_MODELS", 0),
            max_queue=_uint(env, "OLLAMA_MAX_QUEUE", 512),
            max_transfer_streams=_uint(env, "OLLAMA_MAX_TRANSFER_STREAMS", 4),
            log_level=_log_level(env),
            debug_log_requests=bool(_bool(env, "OLLAMA_DEBUG_LOG_REQUESTS")),
            log_requests=bool(_bool(env, "POLLAMA_LOG_REQUESTS")),
            flash_attention=_bool(env, "OLLAMA_FLASH_ATTENTION", None),
            kv_cache_type=_clean(env, "OLLAMA_KV_CACHE_TYPE"),
            gpu_overhead=_uint(env, "OLLAMA_GPU_OVERHEAD", 0),
            max_vram=_uint(env, "OLLAMA_MAX_VRAM", 0),
            sched_spread=bool(_bool(env, "OLLAMA_SCHED_SPREAD")),
            llm_library=_clean(env, "OLLAMA_LLM_LIBRARY"),
            tmpdir=Path(tmpdir) if tmpdir else None,
            go_template=_bool(env, "OLLAMA_GO_TEMPLATE", None),
            noprune=bool(_bool(env, "OLLAMA_NOPRUNE")),
            nohistory=bool(_bool(env, "OLLAMA_NOHISTORY")),
            editor=_clean(env, "OLLAMA_EDITOR"),
            no_cloud=bool(_bool(env, "OLLAMA_NO_CLOUD")),
            remotes=_list(env, "OLLAMA_REMOTES", ("ollama.com",)),
            auth=bool(_bool(env, "OLLAMA_AUTH")),
            vulkan=bool(_bool(env, "OLLAMA_VULKAN", True)),
            igpu_enable=_clean(env, "OLLAMA_IGPU_ENABLE"),
            cuda_visible_devices=optional("CUDA_VISIBLE_DEVICES"),
            hip_visible_devices=optional("HIP_VISIBLE_DEVICES"),
            rocr_visible_devices=optional("ROCR_VISIBLE_DEVICES"),
            gpu_device_ordinal=optional("GPU_DEVICE_ORDINAL"),
            http_proxy=either_case("HTTP_PROXY"),
            https_proxy=either_case("HTTPS_PROXY"),
            no_proxy=either_case("NO_PROXY"),
            registry_ca=Path(registry_ca).expanduser() if registry_ca else None,
            docker_config=(Path(docker_dir).expanduser() if docker_dir else home / ".docker") / "config.json",
            registry_auth_file=Path(auth_file).expanduser() if auth_file else None,
            limits=_limits(env),
            api_keys=_api_keys(_clean(env, "POLLAMA_API_KEYS")),
            api_keys_file=_optional_path(env, "POLLAMA_API_KEYS_FILE"),
            api_key=_clean(env, "OLLAMA_API_KEY"),
            tls_cert=_optional_path(env, "POLLAMA_TLS_CERT"),
            tls_key=_optional_path(env, "POLLAMA_TLS_KEY"),
            ssl_cert_file=_optional_path(env, "SSL_CERT_FILE"),
            rpc_servers=tuple(part.strip() for part in _clean(env, "POLLAMA_RPC_SERVERS").split(",") if part.strip()),
            draft_tokens=min(_uint(env, "POLLAMA_DRAFT_TOKENS", 0), MAX_DRAFT_TOKENS),
        )

    def describe(self) -> dict[str, str]:
        """The resolved configuration, as logged at server start."""
        keep_alive = format_go_duration(self.keep_alive)
        return {
            "OLLAMA_HOST": str(self.host),
            "OLLAMA_MODELS": str(self.models),
            "OLLAMA_KEEP_ALIVE": keep_alive,
            "OLLAMA_CONTEXT_LENGTH": str(self.context_length),
            "OLLAMA_NUM_PARALLEL": str(self.num_parallel),
            "OLLAMA_MAX_LOADED_MODELS": str(self.max_loaded_models),
            "OLLAMA_MAX_QUEUE": str(self.max_queue),
            "OLLAMA_NOPRUNE": str(self.noprune).lower(),
            "OLLAMA_ORIGINS": ",".join(self.origins),
            "OLLAMA_DEBUG": logging.getLevelName(self.log_level),
            # How many keys, never the keys.
            "POLLAMA_API_KEYS": f"{len(self.api_keys)} keys" if self.api_keys else "off",
            "POLLAMA_TLS_CERT": str(self.tls_cert or ""),
            "POLLAMA_RPC_SERVERS": ",".join(self.rpc_servers),
            "POLLAMA_DRAFT_TOKENS": str(self.draft_tokens),
        }

    def read_api_keys_file(self) -> Settings:
        """These settings with the keys of ``POLLAMA_API_KEYS_FILE`` added to ``api_keys``.

        One key per line; blank lines and lines starting with ``#`` are ignored. A file that cannot be
        read, or holds no key, is a ``ConfigError``: the server must not start open by mistake.
        """
        path = self.api_keys_file
        if path is None:
            return self
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            raise ConfigError(f"POLLAMA_API_KEYS_FILE: cannot read {path}: {err.strerror or err}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"POLLAMA_API_KEYS_FILE: {path} is not UTF-8 text") from None
        keys = tuple(line for raw in text.splitlines() if (line := raw.strip()) and not line.startswith("#"))
        if not keys:
            raise ConfigError(
                f"POLLAMA_API_KEYS_FILE: {path} holds no keys (one key per line; blank lines and # comments ignored)"
            )
        return replace(self, api_keys=(*self.api_keys, *keys), api_keys_file=None)

    def check_rpc_servers(self) -> Settings:
        """These settings with ``rpc_servers`` validated and normalised (``parse_rpc_servers``); ConfigError if
        one is wrong: a server that would place models by a list it cannot use must not start."""
        return replace(self, rpc_servers=parse_rpc_servers(self.rpc_servers))
