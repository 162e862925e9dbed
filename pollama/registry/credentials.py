"""Registry credentials from the places container tools keep them.

Beyond Ollama (ollama#9215): a registry that wants a user name and password
gets them from Docker's ``~/.docker/config.json`` (``$DOCKER_CONFIG``) or the
containers ``auth.json`` named by ``$REGISTRY_AUTH_FILE`` (podman, skopeo),
whichever has an entry for the host first. Entries are keyed by ``host[:port]``,
optionally written as a URL (``https://host/v1/``).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = ["Credentials", "find_credentials"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    def basic(self) -> str:
        """The ``Authorization`` header value for HTTP Basic auth."""
        return "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()


def _host_of(key: str) -> str:
    return (urlsplit(key).netloc if "://" in key else key.split("/", 1)[0]).lower()


def _entry_credentials(entry: Any) -> Credentials | None:
    if not isinstance(entry, dict):
        return None
    encoded = entry.get("auth")
    if isinstance(encoded, str) and encoded:
        try:
            username, sep, password = base64.b64decode(encoded).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return Credentials(username, password) if sep else None
    username, password = entry.get("username"), entry.get("password")
    if isinstance(username, str) and isinstance(password, str) and username:
        return Credentials(username, password)
    return None


def credentials_in(config: Any, host: str) -> Credentials | None:
    """The credentials an ``{"auths": {...}}`` document holds for ``host``."""
    auths = config.get("auths") if isinstance(config, dict) else None
    if not isinstance(auths, dict):
        return None
    for key, entry in auths.items():
        if isinstance(key, str) and _host_of(key) == host.lower():
            found = _entry_credentials(entry)
            if found is not None:
                return found
    return None


def find_credentials(host: str, files: list[Path]) -> Credentials | None:
    """The first credentials for ``host`` in ``files``; unreadable files are skipped with a warning."""
    for path in files:
        try:
            config = json.loads(path.read_text())
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as err:
            log.warning("could not read registry credentials path=%s error=%s", path, err)
            continue
        found = credentials_in(config, host)
        if found is not None:
            return found
    return None
