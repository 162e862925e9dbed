"""HTTPS served directly (``POLLAMA_TLS_CERT`` and ``POLLAMA_TLS_KEY``): a real server with a self-signed
certificate for 127.0.0.1 and localhost, the CLI (``OLLAMA_HOST=https://...``, ``SSL_CERT_FILE``) and the
official clients against it, plain http to its port, bad certificate files, and API keys over TLS.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import anthropic
import httpx
import ollama
import openai
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.servers import ServerProcess, free_port

KEY = "tls-key-0123456789"


@dataclass(frozen=True)
class SelfSigned:
    cert: Path
    key: Path

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))


def self_signed(directory: Path) -> SelfSigned:
    """What ``openssl req -x509 -newkey ec ... -addext subjectAltName=IP:127.0.0.1,DNS:localhost`` makes."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    files = SelfSigned(directory / "cert.pem", directory / "key.pem")
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return files


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> SelfSigned:
    return self_signed(tmp_path_factory.mktemp("tls"))


def tls_env(files: SelfSigned) -> dict[str, str]:
    return {"POLLAMA_TLS_CERT": str(files.cert), "POLLAMA_TLS_KEY": str(files.key)}


@pytest.fixture(scope="module")
def https_server(tmp_path_factory: pytest.TempPathFactory, tls: SelfSigned) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("https"), extra_env=tls_env(tls)).start()
    yield process
    process.stop()


def cli(server: ServerProcess, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return server.cli(*args, env=env)


def test_serves_https_and_says_so(https_server: ServerProcess, tls: SelfSigned) -> None:
    assert https_server.url.startswith("https://")
    response = httpx.get(https_server.url + "/api/version", verify=tls.context())
    assert response.status_code == 200 and response.json()["version"]
    assert response.http_version == "HTTP/1.1"
    assert f"Listening on https://127.0.0.1:{https_server.port} " in https_server.log_path.read_text()


def test_cli_over_https_trusts_ssl_cert_file(https_server: ServerProcess, tls: SelfSigned) -> None:
    host = f"https://127.0.0.1:{https_server.port}"
    listed = cli(https_server, "list", OLLAMA_HOST=host, SSL_CERT_FILE=str(tls.cert))
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.startswith("NAME")
    version = cli(https_server, "-v", OLLAMA_HOST=f"https://localhost:{https_server.port}", SSL_CERT_FILE=str(tls.cert))
    assert version.stdout.startswith("pollama version is"), version.stdout


def test_cli_refuses_an_untrusted_certificate(https_server: ServerProcess) -> None:
    result = cli(https_server, "list", OLLAMA_HOST=f"https://127.0.0.1:{https_server.port}")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(f"Error: cannot verify the certificate of https://127.0.0.1:{https_server.port}")
    assert "set SSL_CERT_FILE" in result.stderr


def test_cli_does_not_start_a_server_for_an_https_host(tmp_path: Path, tls: SelfSigned) -> None:
    absent = ServerProcess(tmp_path, port=free_port())
    (tmp_path / "home").mkdir()
    run = cli(
        absent, "run", "smollm2", "hi", OLLAMA_HOST=f"https://127.0.0.1:{absent.port}", SSL_CERT_FILE=str(tls.cert)
    )
    assert run.returncode == 1
    assert run.stderr.strip() == "Error: could not connect to ollama server, run 'pollama serve' to start it"
    assert not (tmp_path / "home" / ".ollama" / "logs" / "server.log").exists()


def test_official_clients_over_https(https_server: ServerProcess, tls: SelfSigned) -> None:
    # ollama.Client passes its keyword arguments to httpx.Client: ``verify`` takes an SSLContext (or, deprecated
    # in httpx 0.28+, the certificate's path).
    native = ollama.Client(host=https_server.url, verify=tls.context())
    assert native.list().models == []
    assert native.ps().models == []
    oai = openai.OpenAI(
        base_url=https_server.url + "/v1", api_key="unused", http_client=openai.DefaultHttpxClient(verify=tls.context())
    )
    assert oai.models.list().object == "list"


def test_plain_http_to_the_https_port_fails_cleanly(https_server: ServerProcess, tls: SelfSigned) -> None:
    plain = f"http://127.0.0.1:{https_server.port}"
    with pytest.raises(httpx.TransportError):
        httpx.get(plain + "/api/version", timeout=10)
    result = cli(https_server, "list", OLLAMA_HOST=plain)
    assert result.returncode == 1
    assert result.stderr.startswith(f"Error: the server at {plain} closed the connection without answering")
    assert "Traceback" not in result.stderr
    # The server goes on serving https, and logged no error for it.
    assert httpx.get(https_server.url + "/", verify=tls.context()).status_code == 200
    log = https_server.log_path.read_text()
    assert "Traceback" not in log and "level=ERROR" not in log


def test_https_client_to_a_plain_server_says_so(tmp_path: Path) -> None:
    plain = ServerProcess(tmp_path / "plain").start()
    try:
        result = cli(plain, "list", OLLAMA_HOST=f"https://127.0.0.1:{plain.port}")
    finally:
        plain.stop()
    assert result.returncode == 1
    assert re.match(
        rf"Error: TLS with https://127.0.0.1:{plain.port} failed \(.+\); does the server serve https\?", result.stderr
    )


@pytest.mark.parametrize(
    ("env", "error"),
    [
        ({"POLLAMA_TLS_CERT": "cert"}, "POLLAMA_TLS_CERT is set but POLLAMA_TLS_KEY is not"),
        ({"POLLAMA_TLS_KEY": "key"}, "POLLAMA_TLS_KEY is set but POLLAMA_TLS_CERT is not"),
        ({"POLLAMA_TLS_CERT": "cert", "POLLAMA_TLS_KEY": "missing"}, "POLLAMA_TLS_KEY: cannot read .*missing: No such"),
        ({"POLLAMA_TLS_CERT": "key", "POLLAMA_TLS_KEY": "key"}, "POLLAMA_TLS_CERT: .*key.pem holds no PEM certificate"),
        ({"POLLAMA_TLS_CERT": "cert", "POLLAMA_TLS_KEY": "cert"}, "POLLAMA_TLS_KEY: .* is not an unencrypted PEM"),
        ({"POLLAMA_TLS_CERT": "cert", "POLLAMA_TLS_KEY": "other"}, "POLLAMA_TLS_KEY: .* is not the private key of"),
    ],
    ids=["cert only", "key only", "missing key", "key as cert", "cert as key", "not a pair"],
)  # fmt: skip
def test_bad_tls_files_stop_the_start(tmp_path: Path, tls: SelfSigned, env: dict[str, str], error: str) -> None:
    other = self_signed(tmp_path / "other")
    paths = {"cert": str(tls.cert), "key": str(tls.key), "other": str(other.key), "missing": str(tmp_path / "missing")}
    server = ServerProcess(tmp_path, extra_env={name: paths[value] for name, value in env.items()})
    (tmp_path / "home").mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "pollama", "serve"], env=server.env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert re.match(f"Error: {error}", last), last


def test_api_keys_over_https(tmp_path: Path, tls: SelfSigned) -> None:
    server = ServerProcess(tmp_path, extra_env={**tls_env(tls), "POLLAMA_API_KEYS": KEY}).start()
    try:
        refused = httpx.get(server.url + "/api/tags", verify=tls.context())
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"

        host, ca = f"https://127.0.0.1:{server.port}", str(tls.cert)
        assert cli(server, "list", OLLAMA_HOST=host, SSL_CERT_FILE=ca).stderr.strip() == (
            "Error: unauthorized: set OLLAMA_API_KEY to one of the server's keys"
        )
        listed = cli(server, "list", OLLAMA_HOST=host, SSL_CERT_FILE=ca, OLLAMA_API_KEY=KEY)
        assert listed.returncode == 0, listed.stderr

        native = ollama.Client(host=server.url, verify=tls.context(), headers={"Authorization": f"Bearer {KEY}"})
        assert native.list().models == []
        oai = openai.OpenAI(
            base_url=server.url + "/v1", api_key=KEY, http_client=openai.DefaultHttpxClient(verify=tls.context())
        )
        assert oai.models.list().object == "list"
        claude = anthropic.Anthropic(
            base_url=server.url, api_key=KEY, http_client=anthropic.DefaultHttpxClient(verify=tls.context())
        )
        with pytest.raises(anthropic.NotFoundError):  # past TLS and the key: the model is what is missing
            claude.messages.create(model="absent", max_tokens=4, messages=[{"role": "user", "content": "hi"}])
        # Those clients keep their connections open: a shutdown does not wait for their TLS goodbyes.
        started = time.monotonic()
    finally:
        server.stop()
    assert time.monotonic() - started < 4
    assert "timeout graceful shutdown exceeded" not in server.log_path.read_text()
