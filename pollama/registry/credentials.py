"""Registry credentials from the places container tools keep them.

Beyond Ollama (ollama#9215): a registry that wants a user name and password
gets them from Docker's ``~/.docker/config.json`` (``$DOCKER_CONFIG``) or the
containers ``auth.json`` named by ``$REGISTRY_AUTH_FILE`` (podman, skopeo),
whichever has an entry for the host first. Entries are keyed by ``host[:port]``,
optionally written as a URL (``https://host/v1/``). As Docker does, a credential
helper named for the host (``credHelpers``) or for every host (``credsStore``)
is asked first: ``docker-credential-<name> get`` with the host on its stdin.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = ["Credentials", "credentials_in", "find_credentials", "from_helper"]

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
    user, secret = entry.get("username"), entry.get("password")
    if isinstance(user, str) and isinstance(secret, str) and user:
        return Credentials(user, secret)
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


HELPER_TIMEOUT = 10.0


def from_helper(name: str, host: str) -> Credentials | None:
    """Ask ``docker-credential-<name>`` for ``host``'s credentials; None if it has none or fails."""
    program = shutil.which(f"docker-credential-{name}")
    if program is None:
        log.warning("registry credential helper not found helper=docker-credential-%s", name)
        return None
    try:
        done = subprocess.run([program, "get"], input=host, capture_output=True, text=True, timeout=HELPER_TIMEOUT)
        answer = json.loads(done.stdout) if done.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, ValueError) as err:
        log.warning("registry credential helper failed helper=%s error=%s", name, err)
        return None
    if not isinstance(answer, dict):
        return None
    username, secret = answer.get("Username"), answer.get("Secret")
    # "<token>" marks an OAuth identity token, which only Docker's own token exchange can use.
    if not isinstance(username, str) or not isinstance(secret, str) or not username or username == "<token>":
        return None
    return Credentials(username, secret)


def _helper_for(config: Any, host: str) -> str | None:
    if not isinstance(config, dict):
        return None
    helpers = config.get("credHelpers")
    if isinstance(helpers, dict):
        for key, name in helpers.items():
            if isinstance(key, str) and isinstance(name, str) and _host_of(key) == host.lower():
                return name
    store = config.get("credsStore")
    return store if isinstance(store, str) and store else None


def find_credentials(host: str, files: list[Path]) -> Credentials | None:
    """The first credentials for ``host`` in ``files``; unreadable files are skipped with a warning.

    This may run a credential helper: call it off the event loop.
    """
    for path in files:
        try:
            config = json.loads(path.read_text())
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as err:
            log.warning("could not read registry credentials path=%s error=%s", path, err)
            continue
        helper = _helper_for(config, host)
        found = (from_helper(helper, host) if helper else None) or credentials_in(config, host)
        if found is not None:
            return found
    return None
