"""pollama.registry.keys: the ed25519 identity in ``~/.ollama`` (Go: auth/auth.go, server's initializeKeypair)."""

from __future__ import annotations

import base64
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import generate_private_key

from pollama.registry.keys import PRIVATE_KEY, PUBLIC_KEY, Identity, ensure_identity, load_identity

SSH_KEYGEN = shutil.which("ssh-keygen")
needs_ssh_keygen = pytest.mark.skipif(SSH_KEYGEN is None, reason="ssh-keygen is not on PATH")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_ensure_identity_generates_openssh_key_pair(tmp_path: Path) -> None:
    home = tmp_path / "nested" / ".ollama"  # created on demand
    identity, generated = ensure_identity(home)
    assert generated is True

    private = home / PRIVATE_KEY
    public = home / PUBLIC_KEY
    assert PRIVATE_KEY == "id_ed25519"
    assert PUBLIC_KEY == "id_ed25519.pub"
    assert mode(private) == 0o600
    assert mode(public) == 0o644

    text = private.read_text()
    assert text.startswith("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    assert text.rstrip().endswith("-----END OPENSSH PRIVATE KEY-----")

    line = public.read_text()
    assert line.endswith("\n")
    assert line.count("\n") == 1
    kind, blob = line.split()
    assert kind == "ssh-ed25519"
    assert blob.startswith("AAAAC3NzaC1lZDI1NTE5")  # "\0\0\0\x0bssh-ed25519"
    assert line == identity.public_line + "\n"

    loaded = serialization.load_ssh_private_key(private.read_bytes(), password=None)
    assert isinstance(loaded, Ed25519PrivateKey)
    assert loaded.private_bytes_raw() == identity.key.private_bytes_raw()


def test_second_call_loads_the_same_key(tmp_path: Path) -> None:
    first, generated_first = ensure_identity(tmp_path)
    private_before = (tmp_path / PRIVATE_KEY).read_bytes()
    second, generated_second = ensure_identity(tmp_path)
    assert (generated_first, generated_second) == (True, False)
    assert second.public_line == first.public_line
    assert second.key.private_bytes_raw() == first.key.private_bytes_raw()
    assert (tmp_path / PRIVATE_KEY).read_bytes() == private_before


def test_ensure_identity_refuses_an_unreadable_key(tmp_path: Path) -> None:
    (tmp_path / PRIVATE_KEY).write_text("garbage\n")
    with pytest.raises(ValueError, match="could not read the private key"):
        ensure_identity(tmp_path)
    assert (tmp_path / PRIVATE_KEY).read_text() == "garbage\n"  # never overwritten


def test_load_identity_missing(tmp_path: Path) -> None:
    assert load_identity(tmp_path) is None
    assert load_identity(tmp_path / "does-not-exist") is None


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"garbage",
        b"-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
        b"\x00\xff\xfe",
    ],
)
def test_load_identity_garbage(tmp_path: Path, content: bytes) -> None:
    (tmp_path / PRIVATE_KEY).write_bytes(content)
    assert load_identity(tmp_path) is None


def test_load_identity_rejects_a_non_ed25519_key(tmp_path: Path) -> None:
    rsa = generate_private_key(public_exponent=65537, key_size=1024)
    (tmp_path / PRIVATE_KEY).write_bytes(
        rsa.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())
    )
    assert load_identity(tmp_path) is None


def test_load_identity_of_a_directory_is_none(tmp_path: Path) -> None:
    (tmp_path / PRIVATE_KEY).mkdir()
    assert load_identity(tmp_path) is None


def test_sign_format_and_signature() -> None:
    identity = Identity(Ed25519PrivateKey.generate())
    data = b"GET,https://registry.example.com/token?nonce=x,abc"
    value = identity.sign(data)
    public_blob, separator, signature = value.partition(":")
    assert separator == ":"
    assert ":" not in signature
    assert public_blob == identity.public_line.split()[1]
    raw_signature = base64.b64decode(signature, validate=True)
    assert len(raw_signature) == 64
    # The public part is the SSH wire blob: string "ssh-ed25519", string <32 raw key bytes>.
    wire = base64.b64decode(public_blob, validate=True)
    assert wire[:4] == (11).to_bytes(4, "big") and wire[4:15] == b"ssh-ed25519"
    assert wire[15:19] == (32).to_bytes(4, "big")
    Ed25519PublicKey.from_public_bytes(wire[19:]).verify(raw_signature, data)
    # ed25519 is deterministic
    assert identity.sign(data) == value
    assert identity.sign(data + b"!") != value


@needs_ssh_keygen
def test_ssh_keygen_derives_the_same_public_key(tmp_path: Path) -> None:
    identity, _ = ensure_identity(tmp_path)
    result = subprocess.run(
        [SSH_KEYGEN or "ssh-keygen", "-y", "-f", str(tmp_path / PRIVATE_KEY)],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    assert result.stdout.split()[:2] == identity.public_line.split()
    assert (tmp_path / PUBLIC_KEY).read_text().split() == result.stdout.split()[:2]


@needs_ssh_keygen
def test_key_written_by_ssh_keygen_loads(tmp_path: Path) -> None:
    subprocess.run(
        [SSH_KEYGEN or "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(tmp_path / PRIVATE_KEY)],
        capture_output=True,
        timeout=10,
        check=True,
    )
    public_written = (tmp_path / PUBLIC_KEY).read_text().split()[:2]
    identity = load_identity(tmp_path)
    assert identity is not None
    assert identity.public_line.split() == public_written
    again, generated = ensure_identity(tmp_path)
    assert generated is False
    assert again.public_line == identity.public_line
    assert (tmp_path / PUBLIC_KEY).read_text().split()[:2] == public_written
