"""Settings from the environment, ported from Ollama's ``envconfig/config_test.go`` (spec section F)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from pollama.config import TRACE, Settings, parse_host
from pollama.gocompat.durations import FOREVER, HOUR, MINUTE, SECOND


def settings(**env: str) -> Settings:
    return Settings.from_env({"HOME": "/home/tester", **env})


# --- TestHost -------------------------------------------------------------------------------------

HOSTS = {
    "empty": ("", "http://127.0.0.1:11434"),
    "only address": ("1.2.3.4", "http://1.2.3.4:11434"),
    "only port": (":1234", "http://:1234"),
    "address and port": ("1.2.3.4:1234", "http://1.2.3.4:1234"),
    "hostname": ("example.com", "http://example.com:11434"),
    "hostname and port": ("example.com:1234", "http://example.com:1234"),
    "zero port": (":0", "http://:0"),
    "too large port": (":66000", "http://:11434"),
    "too small port": (":-1", "http://:11434"),
    "ipv6 localhost": ("[::1]", "http://[::1]:11434"),
    "ipv6 world open": ("[::]", "http://[::]:11434"),
    "ipv6 no brackets": ("::1", "http://[::1]:11434"),
    "ipv6 + port": ("[::1]:1337", "http://[::1]:1337"),
    "extra space": (" 1.2.3.4 ", "http://1.2.3.4:11434"),
    "extra quotes": ('"1.2.3.4"', "http://1.2.3.4:11434"),
    "extra space+quotes": (' " 1.2.3.4 " ', "http://1.2.3.4:11434"),
    "extra single quotes": ("'1.2.3.4'", "http://1.2.3.4:11434"),
    "http": ("http://1.2.3.4", "http://1.2.3.4:80"),
    "http port": ("http://1.2.3.4:4321", "http://1.2.3.4:4321"),
    "https": ("https://1.2.3.4", "https://1.2.3.4:443"),
    "https port": ("https://1.2.3.4:4321", "https://1.2.3.4:4321"),
    "proxy path": ("https://example.com/ollama", "https://example.com:443/ollama"),
    "ollama.com": ("ollama.com", "https://ollama.com:443"),
    # --- more, from the same code (net.SplitHostPort / net.ParseIP / strconv.ParseInt) ---
    "max port": (":65535", "http://:65535"),
    "non-numeric port": ("1.2.3.4:abc", "http://1.2.3.4:11434"),
    "empty port": ("1.2.3.4:", "http://1.2.3.4:11434"),
    "plus port": ("1.2.3.4:+80", "http://1.2.3.4:80"),  # ParseInt accepts a sign
    "underscore port": ("1.2.3.4:8_0", "http://1.2.3.4:11434"),  # ParseInt base 10 rejects underscores
    "unspecified v4": ("0.0.0.0", "http://0.0.0.0:11434"),
    "ipv6 full": ("2001:db8::1", "http://[2001:db8::1]:11434"),
    "ipv4-mapped ipv6": ("::ffff:1.2.3.4", "http://1.2.3.4:11434"),  # ip.String() prints the IPv4 form
    "http path no port": ("http://example.com/a/b", "http://example.com:80/a/b"),
    "trailing slash": ("http://1.2.3.4/", "http://1.2.3.4:80"),
    "other scheme": ("tcp://1.2.3.4", "tcp://1.2.3.4:11434"),
    "ollama.com with scheme": ("http://ollama.com", "http://ollama.com:80"),
    "localhost": ("localhost", "http://localhost:11434"),
}


@pytest.mark.parametrize(("raw", "expected"), list(HOSTS.values()), ids=list(HOSTS))
def test_host(raw: str, expected: str) -> None:
    assert str(settings(OLLAMA_HOST=raw).host) == expected


def test_host_unset_is_default() -> None:
    host = Settings.from_env({}).host
    assert str(host) == "http://127.0.0.1:11434"
    assert (host.scheme, host.host, host.port, host.path) == ("http", "127.0.0.1", 11434, "")


def test_host_parts() -> None:
    host = parse_host("https://[::1]:8443/proxy")
    assert (host.scheme, host.host, host.port, host.path) == ("https", "::1", 8443, "proxy")
    assert host.hostport == "[::1]:8443"


# --- TestConnectableHost --------------------------------------------------------------------------

CONNECTABLE = {
    "empty": ("", "http://127.0.0.1:11434"),
    "localhost": ("127.0.0.1", "http://127.0.0.1:11434"),
    "localhost and port": ("127.0.0.1:1234", "http://127.0.0.1:1234"),
    "ipv4 unspecified": ("0.0.0.0", "http://127.0.0.1:11434"),
    "ipv4 unspecified + port": ("0.0.0.0:1234", "http://127.0.0.1:1234"),
    "ipv6 unspecified": ("[::]", "http://[::1]:11434"),
    "ipv6 unspecified + port": ("[::]:1234", "http://[::1]:1234"),
    "ipv6 localhost": ("[::1]", "http://[::1]:11434"),
    "ipv6 localhost + port": ("[::1]:1234", "http://[::1]:1234"),
    "specific address": ("192.168.1.5", "http://192.168.1.5:11434"),
    "specific address + port": ("192.168.1.5:8080", "http://192.168.1.5:8080"),
    "hostname": ("example.com", "http://example.com:11434"),
    "hostname and port": ("example.com:1234", "http://example.com:1234"),
    "https unspecified + port": ("https://0.0.0.0:4321", "https://127.0.0.1:4321"),
    # pollama's HostURL.connectable(): an empty host (every interface) is dialled on loopback too
    "empty host + port": (":1234", "http://127.0.0.1:1234"),
}


@pytest.mark.parametrize(("raw", "expected"), list(CONNECTABLE.values()), ids=list(CONNECTABLE))
def test_connectable_host(raw: str, expected: str) -> None:
    host = settings(OLLAMA_HOST=raw).host
    assert str(host.connectable()) == expected
    assert host.base_url == expected


@pytest.mark.parametrize(
    ("raw", "loopback"),
    [("", True), ("localhost", True), ("127.0.0.2", True), ("[::1]", True), ("0.0.0.0", False), ("10.0.0.1", False)],
)
def test_is_loopback(raw: str, loopback: bool) -> None:
    assert settings(OLLAMA_HOST=raw).host.is_loopback() is loopback


# --- OLLAMA_PORT (pollama extra, spec section F) --------------------------------------------------


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"OLLAMA_PORT": "8080"}, "http://127.0.0.1:8080"),
        ({"OLLAMA_PORT": " '8080' "}, "http://127.0.0.1:8080"),
        ({"OLLAMA_PORT": "8080", "OLLAMA_HOST": "0.0.0.0"}, "http://0.0.0.0:8080"),
        ({"OLLAMA_PORT": "8080", "OLLAMA_HOST": "[::1]"}, "http://[::1]:8080"),
        ({"OLLAMA_PORT": "8080", "OLLAMA_HOST": "http://example.com"}, "http://example.com:8080"),
        # a port in OLLAMA_HOST wins
        ({"OLLAMA_PORT": "8080", "OLLAMA_HOST": "1.2.3.4:1234"}, "http://1.2.3.4:1234"),
        ({"OLLAMA_PORT": "8080", "OLLAMA_HOST": ":0"}, "http://:0"),
        ({"OLLAMA_PORT": "8080", "OLLAMA_HOST": "https://h:4321"}, "https://h:4321"),
        # an unusable OLLAMA_PORT is ignored
        ({"OLLAMA_PORT": "abc"}, "http://127.0.0.1:11434"),
        ({"OLLAMA_PORT": "70000"}, "http://127.0.0.1:11434"),
        ({"OLLAMA_PORT": "-1"}, "http://127.0.0.1:11434"),
        ({"OLLAMA_PORT": ""}, "http://127.0.0.1:11434"),
    ],
)
def test_ollama_port(env: dict[str, str], expected: str) -> None:
    assert str(settings(**env).host) == expected


def test_parse_host_default_port_argument() -> None:
    assert str(parse_host("", 9000)) == "http://127.0.0.1:9000"
    assert str(parse_host("https://h", 9000)) == "https://h:9000"
    assert str(parse_host("h:1", 9000)) == "http://h:1"


# --- TestOrigins ----------------------------------------------------------------------------------

BUILTIN_ORIGINS = [
    "http://localhost",
    "https://localhost",
    "http://localhost:*",
    "https://localhost:*",
    "http://127.0.0.1",
    "https://127.0.0.1",
    "http://127.0.0.1:*",
    "https://127.0.0.1:*",
    "http://0.0.0.0",
    "https://0.0.0.0",
    "http://0.0.0.0:*",
    "https://0.0.0.0:*",
    "app://*",
    "file://*",
    "tauri://*",
    "vscode-webview://*",
    "vscode-file://*",
]


@pytest.mark.parametrize(
    ("raw", "extra"),
    [
        ("", []),
        ("http://10.0.0.1", ["http://10.0.0.1"]),
        ("http://172.16.0.1,https://192.168.0.1", ["http://172.16.0.1", "https://192.168.0.1"]),
        ("http://totally.safe,http://definitely.legit", ["http://totally.safe", "http://definitely.legit"]),
        ("'*'", ["*"]),
    ],
)
def test_origins(raw: str, extra: list[str]) -> None:
    assert list(settings(OLLAMA_ORIGINS=raw).origins) == extra + BUILTIN_ORIGINS


def test_origins_default() -> None:
    assert list(Settings().origins) == BUILTIN_ORIGINS


# --- TestBool -------------------------------------------------------------------------------------

BOOLS = {
    "": False,
    "true": True,
    "false": False,
    "1": True,
    "0": False,
    "t": True,
    "T": True,
    "TRUE": True,
    "True": True,
    "f": False,
    "F": False,
    "FALSE": False,
    "False": False,
    " 'false' ": False,
    '"1"': True,
    # invalid values: set but unparsable means on
    "random": True,
    "something": True,
    "yes": True,
    "no": True,
    "off": True,
    "tRuE": True,
    "fAlSe": True,
}

BOOL_SETTINGS = {
    "OLLAMA_NOPRUNE": "noprune",
    "OLLAMA_NOHISTORY": "nohistory",
    "OLLAMA_SCHED_SPREAD": "sched_spread",
    "OLLAMA_DEBUG_LOG_REQUESTS": "debug_log_requests",
    "OLLAMA_NO_CLOUD": "no_cloud",
    "OLLAMA_AUTH": "auth",
}


@pytest.mark.parametrize(("raw", "expected"), list(BOOLS.items()))
def test_bool(raw: str, expected: bool) -> None:
    assert settings(OLLAMA_NOPRUNE=raw).noprune is expected


@pytest.mark.parametrize(("raw", "expected"), [("", False), ("1", True), ("false", False), ("junk", True)])
@pytest.mark.parametrize("key", list(BOOL_SETTINGS))
def test_bool_settings(key: str, raw: str, expected: bool) -> None:
    assert getattr(settings(), BOOL_SETTINGS[key]) is False
    assert getattr(settings(**{key: raw}), BOOL_SETTINGS[key]) is expected


@pytest.mark.parametrize(
    ("key", "attribute", "unset"),
    [
        ("OLLAMA_FLASH_ATTENTION", "flash_attention", None),
        ("OLLAMA_GO_TEMPLATE", "go_template", None),
        ("OLLAMA_VULKAN", "vulkan", True),
    ],
)
@pytest.mark.parametrize(("raw", "expected"), [("1", True), ("0", False), ("false", False), ("junk", True)])
def test_bool_with_default(key: str, attribute: str, unset: bool | None, raw: str, expected: bool) -> None:
    assert getattr(settings(), attribute) is unset
    assert getattr(settings(**{key: ""}), attribute) is unset
    assert getattr(settings(**{key: raw}), attribute) is expected


# --- TestUint -------------------------------------------------------------------------------------

UINTS = {
    "0": 0,
    "1": 1,
    "1337": 1337,
    " 42 ": 42,
    "'42'": 42,
    "18446744073709551615": 18446744073709551615,  # max uint64
    # default values
    "": None,
    "-1": None,
    "+1": None,
    "0o10": None,
    "0x10": None,
    "1_000": None,
    "1.5": None,
    "string": None,
    "１２": None,  # full-width digits are not ASCII
    "18446744073709551616": None,  # overflows uint64
}

UINT_SETTINGS = {
    "OLLAMA_NUM_PARALLEL": ("num_parallel", 1),
    "OLLAMA_MAX_LOADED_MODELS": ("max_loaded_models", 0),
    "OLLAMA_MAX_QUEUE": ("max_queue", 512),
    "OLLAMA_CONTEXT_LENGTH": ("context_length", 0),
    "OLLAMA_MAX_TRANSFER_STREAMS": ("max_transfer_streams", 4),
    "OLLAMA_GPU_OVERHEAD": ("gpu_overhead", 0),
}


@pytest.mark.parametrize(("raw", "expected"), list(UINTS.items()))
def test_uint(raw: str, expected: int | None) -> None:
    assert settings(OLLAMA_MAX_QUEUE=raw).max_queue == (512 if expected is None else expected)


@pytest.mark.parametrize(("raw", "expected"), [("7", 7), ("0", 0), ("-1", None), ("x", None)])
@pytest.mark.parametrize("key", list(UINT_SETTINGS))
def test_uint_settings(key: str, raw: str, expected: int | None) -> None:
    attribute, default = UINT_SETTINGS[key]
    assert getattr(settings(**{key: raw}), attribute) == (default if expected is None else expected)


def test_uint_defaults() -> None:
    s = settings()
    assert (s.num_parallel, s.max_loaded_models, s.max_queue, s.context_length) == (1, 0, 512, 0)
    assert (s.max_transfer_streams, s.gpu_overhead) == (4, 0)


def test_context_length() -> None:
    # TestContextLength
    assert settings().context_length == 0
    assert settings(OLLAMA_CONTEXT_LENGTH="2048").context_length == 2048


# --- TestKeepAlive / TestLoadTimeout --------------------------------------------------------------

KEEP_ALIVE = {
    "": 5 * MINUTE,
    "1s": SECOND,
    "1m": MINUTE,
    "1h": HOUR,
    "5m0s": 5 * MINUTE,
    "1h2m3s": HOUR + 2 * MINUTE + 3 * SECOND,
    "0": 0,
    "60": 60 * SECOND,
    "120": 2 * MINUTE,
    "3600": HOUR,
    "-0": 0,
    "-1": FOREVER,
    "-1m": FOREVER,
    "'10m'": 10 * MINUTE,
    "1.5h": HOUR + 30 * MINUTE,
    "+60": 60 * SECOND,  # strconv.ParseInt accepts a sign
    # invalid values
    " ": 5 * MINUTE,
    "???": 5 * MINUTE,
    "1d": 5 * MINUTE,
    "1y": 5 * MINUTE,
    "1w": 5 * MINUTE,
    "1.5": 5 * MINUTE,
    "6_0": 5 * MINUTE,  # ParseInt base 10 rejects underscores
    "٦٠": 5 * MINUTE,  # non-ASCII digits
}


@pytest.mark.parametrize(("raw", "expected"), list(KEEP_ALIVE.items()))
def test_keep_alive(raw: str, expected: int) -> None:
    assert settings(OLLAMA_KEEP_ALIVE=raw).keep_alive == expected


LOAD_TIMEOUT = {
    "": 5 * MINUTE,
    "1s": SECOND,
    "1m": MINUTE,
    "1h": HOUR,
    "5m0s": 5 * MINUTE,
    "1h2m3s": HOUR + 2 * MINUTE + 3 * SECOND,
    "0": FOREVER,
    "60": 60 * SECOND,
    "120": 2 * MINUTE,
    "3600": HOUR,
    "-0": FOREVER,
    "-1": FOREVER,
    "-1m": FOREVER,
    # invalid values
    " ": 5 * MINUTE,
    "???": 5 * MINUTE,
    "1d": 5 * MINUTE,
    "1y": 5 * MINUTE,
    "1w": 5 * MINUTE,
}


@pytest.mark.parametrize(("raw", "expected"), list(LOAD_TIMEOUT.items()))
def test_load_timeout(raw: str, expected: int) -> None:
    assert settings(OLLAMA_LOAD_TIMEOUT=raw).load_timeout == expected


# --- TestVar (trimming) ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("value", "value"),
        (" value ", "value"),
        (" 'value' ", "value"),
        (' "value" ', "value"),
        (" ' value ' ", " value "),
        (' " value " ', " value "),
        ("\"'value'\"", "value"),
    ],
)
def test_var_trimming(raw: str, expected: str) -> None:
    s = settings(OLLAMA_LLM_LIBRARY=raw, OLLAMA_KV_CACHE_TYPE=raw, OLLAMA_EDITOR=raw)
    assert (s.llm_library, s.kv_cache_type, s.editor) == (expected, expected, expected)


# --- TestLogLevel ---------------------------------------------------------------------------------

LOG_LEVELS = {
    # Default to INFO
    "": logging.INFO,
    "false": logging.INFO,
    "f": logging.INFO,
    "0": logging.INFO,
    "garbage": logging.INFO,
    # True values enable Debug
    "true": logging.DEBUG,
    "t": logging.DEBUG,
    "TRUE": logging.DEBUG,
    # Positive values increase verbosity
    "1": logging.DEBUG,
    "2": TRACE,
    "'2'": TRACE,
    # Negative values decrease verbosity
    "-1": logging.WARNING,
    "-2": logging.ERROR,
}


@pytest.mark.parametrize(("raw", "expected"), list(LOG_LEVELS.items()))
def test_log_level(raw: str, expected: int) -> None:
    assert settings(OLLAMA_DEBUG=raw).log_level == expected


def test_trace_is_below_debug() -> None:
    assert TRACE < logging.DEBUG


# --- other variables ------------------------------------------------------------------------------


def test_models_directory() -> None:
    assert settings().models == Path("/home/tester/.ollama/models")
    assert settings(OLLAMA_MODELS="/data/models").models == Path("/data/models")
    assert settings(OLLAMA_MODELS=" '/data/models' ").models == Path("/data/models")
    assert settings().home == Path("/home/tester/.ollama")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("", ("ollama.com",)), ("a.example,b.example", ("a.example", "b.example")), (" 'x' ", ("x",))],
)
def test_remotes(raw: str, expected: tuple[str, ...]) -> None:
    assert settings(OLLAMA_REMOTES=raw).remotes == expected


def test_tmpdir() -> None:
    assert settings().tmpdir is None
    assert settings(OLLAMA_TMPDIR="/scratch").tmpdir == Path("/scratch")


def test_gpu_visibility_is_passed_through_unchanged() -> None:
    s = settings(CUDA_VISIBLE_DEVICES="0,1", HIP_VISIBLE_DEVICES="", GPU_DEVICE_ORDINAL="2")
    assert s.cuda_visible_devices == "0,1"
    assert s.hip_visible_devices == ""
    assert s.rocr_visible_devices is None
    assert s.gpu_device_ordinal == "2"


def test_defaults_match_spec() -> None:
    s = settings()
    assert s.keep_alive == 5 * MINUTE
    assert s.load_timeout == 5 * MINUTE
    assert s.log_level == logging.INFO
    assert s.remotes == ("ollama.com",)
    assert s.vulkan is True
    assert s.flash_attention is None
    assert s.go_template is None
    assert (s.noprune, s.nohistory, s.no_cloud, s.auth, s.sched_spread) == (False, False, False, False, False)


def test_describe() -> None:
    # envconfig.Values(): each value as Go's %v prints it
    described = settings(OLLAMA_NOPRUNE="1", OLLAMA_HOST="0.0.0.0:8080").describe()
    assert described["OLLAMA_HOST"] == "http://0.0.0.0:8080"
    assert described["OLLAMA_NOPRUNE"] == "true"
    assert described["OLLAMA_MAX_QUEUE"] == "512"
    assert described["OLLAMA_NUM_PARALLEL"] == "1"
    assert described["OLLAMA_MODELS"] == "/home/tester/.ollama/models"


@pytest.mark.parametrize(("raw", "expected"), [("", 0), ("8", 8), ("32", 32), ("100", 32), ("-1", 0), ("x", 0)])
def test_draft_tokens_are_off_by_default_and_capped(raw: str, expected: int) -> None:
    settings = Settings.from_env({"HOME": "/home/u", "POLLAMA_DRAFT_TOKENS": raw})
    assert settings.draft_tokens == expected
    assert settings.describe()["POLLAMA_DRAFT_TOKENS"] == str(expected)
