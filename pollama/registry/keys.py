"""The ed25519 identity Ollama signs registry token requests with (``~/.ollama/id_ed25519``).

The files are OpenSSH-format, exactly as ``ollama serve`` writes them, so one
key pair serves both programs.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

__all__ = ["Identity", "ensure_identity", "load_identity"]

PRIVATE_KEY = "id_ed25519"
PUBLIC_KEY = "id_ed25519.pub"


@dataclass(frozen=True)
class Identity:
    key: Ed25519PrivateKey

    @property
    def public_line(self) -> str:
        """``ssh-ed25519 AAAA...``, the line of ``id_ed25519.pub``."""
        return (
            self.key.public_key()
            .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
            .decode()
        )

    def sign(self, data: bytes) -> str:
        """``<public key blob, base64>:<signature, base64>``, Ollama's ``Authorization`` value."""
        public_blob = self.public_line.split()[1]
        return f"{public_blob}:{base64.b64encode(self.key.sign(data)).decode()}"


def load_identity(home: Path) -> Identity | None:
    """The key in ``home`` (``~/.ollama``), or None if there is none or it is not an ed25519 key."""
    try:
        key = serialization.load_ssh_private_key((home / PRIVATE_KEY).read_bytes(), password=None)
    except (OSError, ValueError):
        return None
    return Identity(key) if isinstance(key, Ed25519PrivateKey) else None


def ensure_identity(home: Path) -> tuple[Identity, bool]:
    """Load the key pair, generating it first if absent; also say whether it was generated."""
    private_path = home / PRIVATE_KEY
    if private_path.exists():
        identity = load_identity(home)
        if identity is None:
            raise ValueError(f"could not read the private key {private_path}")
        return identity, False
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    home.mkdir(parents=True, exist_ok=True)
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(private)
    identity = Identity(key)
    (home / PUBLIC_KEY).write_text(identity.public_line + "\n")
    os.chmod(home / PUBLIC_KEY, 0o644)
    return identity, True
