"""pollama.registry.credentials: user names and passwords from Docker/podman auth files."""

from __future__ import annotations

import base64
import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from pollama.registry.credentials import Credentials, credentials_in, find_credentials


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def auths(entries: dict[str, Any]) -> dict[str, Any]:
    return {"auths": entries}


def write(path: Path, config: Any) -> Path:
    path.write_text(json.dumps(config))
    return path


def test_basic_header() -> None:
    assert Credentials("alice", "pw").basic() == "Basic YWxpY2U6cHc="
    assert Credentials("user", "p:a:ss").basic() == "Basic " + b64("user:p:a:ss")
    assert Credentials("ünï", "çødé").basic() == "Basic " + base64.b64encode("ünï:çødé".encode()).decode()


def test_auth_entry_is_base64_user_colon_password() -> None:
    config = auths({"registry.example.com": {"auth": b64("alice:pa:ss")}})
    assert credentials_in(config, "registry.example.com") == Credentials("alice", "pa:ss")


def test_auth_entry_with_empty_password() -> None:
    config = auths({"r.io": {"auth": b64("alice:")}})
    assert credentials_in(config, "r.io") == Credentials("alice", "")


def test_username_password_entry() -> None:
    config = auths({"r.io": {"username": "bob", "password": "hunter2"}})
    assert credentials_in(config, "r.io") == Credentials("bob", "hunter2")


def test_auth_is_preferred_to_username_password() -> None:
    config = auths({"r.io": {"auth": b64("from-auth:1"), "username": "from-fields", "password": "2"}})
    assert credentials_in(config, "r.io") == Credentials("from-auth", "1")


@pytest.mark.parametrize(
    "key",
    [
        "https://registry.example.com:5000/v1/",
        "https://registry.example.com:5000",
        "http://registry.example.com:5000/",
        "registry.example.com:5000",
        "registry.example.com:5000/some/path",
        "REGISTRY.Example.COM:5000",
        "HTTPS://Registry.Example.com:5000/v2/",
    ],
)
def test_key_forms_match_host_and_port(key: str) -> None:
    config = auths({key: {"auth": b64("u:p")}})
    assert credentials_in(config, "registry.example.com:5000") == Credentials("u", "p")
    assert credentials_in(config, "Registry.Example.Com:5000") == Credentials("u", "p")


@pytest.mark.parametrize("host", ["registry.example.com", "registry.example.com:5001", "example.com:5000"])
def test_port_and_host_must_match(host: str) -> None:
    config = auths({"https://registry.example.com:5000/v1/": {"auth": b64("u:p")}})
    assert credentials_in(config, host) is None


def test_host_without_port_matches_key_without_port() -> None:
    config = auths({"https://index.docker.io/v1/": {"auth": b64("d:x")}, "ghcr.io": {"auth": b64("g:y")}})
    assert credentials_in(config, "index.docker.io") == Credentials("d", "x")
    assert credentials_in(config, "ghcr.io") == Credentials("g", "y")
    assert credentials_in(config, "quay.io") is None


@pytest.mark.parametrize(
    "entry",
    [
        {"auth": "!!!not base64!!!"},
        {"auth": b64("no-colon-here")},
        {"auth": base64.b64encode(b"\xff\xfe:\xff").decode()},
        {"auth": ""},
        {"username": "", "password": "p"},
        {"username": "u"},
        {"username": 1, "password": "p"},
        {"identitytoken": "abc"},
        "a string",
        None,
        [],
    ],
)
def test_unusable_entries_are_ignored(entry: Any) -> None:
    assert credentials_in(auths({"r.io": entry}), "r.io") is None


def test_a_bad_entry_does_not_hide_a_good_one_for_the_same_host() -> None:
    config = auths({"https://r.io/v1/": {"auth": "%%%"}, "r.io": {"auth": b64("good:pw")}})
    assert credentials_in(config, "r.io") == Credentials("good", "pw")


@pytest.mark.parametrize("config", [{}, {"auths": []}, {"auths": None}, [], "x", None, {"credsStore": "desktop"}])
def test_documents_without_auths(config: Any) -> None:
    assert credentials_in(config, "r.io") is None


def test_find_credentials_first_file_wins(tmp_path: Path) -> None:
    docker = write(tmp_path / "config.json", auths({"r.io": {"auth": b64("docker:1")}}))
    podman = write(tmp_path / "auth.json", auths({"r.io": {"auth": b64("podman:2")}}))
    assert find_credentials("r.io", [docker, podman]) == Credentials("docker", "1")
    assert find_credentials("r.io", [podman, docker]) == Credentials("podman", "2")


def test_find_credentials_falls_through_to_a_file_that_has_the_host(tmp_path: Path) -> None:
    docker = write(tmp_path / "config.json", auths({"other.io": {"auth": b64("o:1")}}))
    podman = write(tmp_path / "auth.json", auths({"r.io": {"username": "p", "password": "2"}}))
    assert find_credentials("r.io", [docker, podman]) == Credentials("p", "2")
    assert find_credentials("nowhere.io", [docker, podman]) is None


def test_missing_file_is_skipped_quietly(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    present = write(tmp_path / "auth.json", auths({"r.io": {"auth": b64("u:p")}}))
    with caplog.at_level(logging.DEBUG, logger="pollama.registry.credentials"):
        assert find_credentials("r.io", [tmp_path / "missing.json", present]) == Credentials("u", "p")
        assert find_credentials("r.io", [tmp_path / "missing.json"]) is None
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]


@pytest.mark.parametrize("content", ["{not json", "", "\x00"])
def test_unreadable_json_is_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: str
) -> None:
    broken = tmp_path / "config.json"
    broken.write_text(content)
    good = write(tmp_path / "auth.json", auths({"r.io": {"auth": b64("u:p")}}))
    with caplog.at_level(logging.WARNING, logger="pollama.registry.credentials"):
        assert find_credentials("r.io", [broken, good]) == Credentials("u", "p")
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert str(broken) in warnings[0].getMessage()


def test_a_directory_in_place_of_a_file_is_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "config.json"
    directory.mkdir()
    with caplog.at_level(logging.WARNING, logger="pollama.registry.credentials"):
        assert find_credentials("r.io", [directory]) is None
    assert any(str(directory) in record.getMessage() for record in caplog.records)


def test_json_that_is_not_an_object_is_skipped(tmp_path: Path) -> None:
    odd = write(tmp_path / "config.json", ["auths"])
    good = write(tmp_path / "auth.json", auths({"r.io": {"auth": b64("u:p")}}))
    assert find_credentials("r.io", [odd, good]) == Credentials("u", "p")


def test_no_files() -> None:
    assert find_credentials("r.io", []) is None


# --- credential helpers (docker-credential-<name> get) -------------------------------------------------


def write_helper(directory: Path, name: str, script: str) -> None:
    helper = directory / f"docker-credential-{name}"
    helper.write_text("#!/bin/sh\n" + script)
    helper.chmod(0o755)


@pytest.fixture
def helpers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "bin"
    directory.mkdir()
    monkeypatch.setenv("PATH", f"{directory}:{os.environ.get('PATH', '')}")
    # Answers for the host it is asked about (read from stdin), as docker-credential-* helpers do.
    write_helper(
        directory,
        "vault",
        'read host; [ "$1" = get ] || exit 3\n'
        'case "$host" in registry.example:5000) echo "{\\"ServerURL\\":\\"$host\\",\\"Username\\":\\"bob\\",'
        '\\"Secret\\":\\"hunter2\\"}";; *) echo "credentials not found in native keychain"; exit 1;; esac\n',
    )
    write_helper(directory, "oauth", 'read host; echo "{\\"Username\\":\\"<token>\\",\\"Secret\\":\\"refresh\\"}"\n')
    return directory


def test_a_helper_named_for_the_host_is_asked(helpers: Path, tmp_path: Path) -> None:
    config = write(tmp_path / "config.json", {"credHelpers": {"registry.example:5000": "vault"}})
    assert find_credentials("registry.example:5000", [config]) == Credentials("bob", "hunter2")


def test_the_creds_store_is_asked_for_every_host(helpers: Path, tmp_path: Path) -> None:
    config = write(tmp_path / "config.json", {"credsStore": "vault", "auths": {"registry.example:5000": {}}})
    assert find_credentials("registry.example:5000", [config]) == Credentials("bob", "hunter2")


def test_a_helper_without_an_answer_falls_back_to_inline_auths(helpers: Path, tmp_path: Path) -> None:
    inline = base64.b64encode(b"carol:pw").decode()
    config = write(tmp_path / "config.json", {"credsStore": "vault", "auths": {"other.example": {"auth": inline}}})
    assert find_credentials("other.example", [config]) == Credentials("carol", "pw")


def test_a_missing_helper_or_an_identity_token_gives_nothing(helpers: Path, tmp_path: Path) -> None:
    assert find_credentials("h", [write(tmp_path / "config.json", {"credsStore": "absent"})]) is None
    assert find_credentials("h", [write(tmp_path / "config.json", {"credsStore": "oauth"})]) is None
