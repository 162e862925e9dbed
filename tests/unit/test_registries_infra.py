"""Self-tests of ``tests/registries.py``, driven with plain httpx.

The registry pull/push tests trust these helpers to behave like the real services; each
behaviour they rely on is pinned here, independently of pollama's own client.
"""

from __future__ import annotations

import base64
import hashlib
import re
import ssl
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests import registries
from tests.registries import (
    MANIFEST_MEDIA_TYPE,
    MODEL_MEDIA_TYPE,
    DockerRegistry,
    FakeOllamaRegistry,
    ForwardProxy,
    ModelArtifact,
    ollama_model,
    sha256_digest,
)

REPO = "library/tiny"
LAYER = bytes(range(256)) * 512  # 128 KiB, enough for ranges, throttles and cuts
MODEL = ollama_model({MODEL_MEDIA_TYPE: LAYER, "application/vnd.ollama.image.template": b"{{ .Prompt }}"})
BLOB = MODEL.layers[0].digest
ACCEPT = {"Accept": MANIFEST_MEDIA_TYPE}


def client(**kwargs: object) -> httpx.Client:
    return httpx.Client(trust_env=False, timeout=10, **kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- ed25519 signing, written from the spec


def public_line(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


def challenge_params(header: str) -> dict[str, str]:
    assert header.startswith("Bearer ")
    return dict(re.findall(r'(\w+)="([^"]*)"', header))


def token_url(challenge: str, ts: int | None = None) -> str:
    params = challenge_params(challenge)
    query = {"service": params["service"], "scope": params["scope"], "ts": str(ts or int(time.time())), "nonce": "n0"}
    return params["realm"] + "?" + urllib.parse.urlencode(sorted(query.items()))


def sign(key: Ed25519PrivateKey, url: str) -> str:
    body_hash = base64.b64encode(hashlib.sha256(b"").hexdigest().encode()).decode()
    signature = key.sign(f"GET,{url},{body_hash}".encode())
    return f"{public_line(key).split()[1]}:{base64.b64encode(signature).decode()}"


def fetch_token(http: httpx.Client, key: Ed25519PrivateKey, challenge: str) -> httpx.Response:
    url = token_url(challenge)
    return http.get(url, headers={"Authorization": sign(key, url)})


# --------------------------------------------------------------------------- docker-registry


def test_docker_registry_push_and_pull(tmp_path: Path) -> None:
    with DockerRegistry(tmp_path / "registry") as registry, client(base_url=registry.url) as http:
        assert registry.host == f"127.0.0.1:{registry.port}"
        # The layer by hand, the way pollama pushes: POST, PATCH with a bare Content-Range, PUT ?digest.
        started = http.post(f"/v2/{REPO}/blobs/uploads/")
        assert started.status_code == 202
        patched = http.patch(
            started.headers["Location"],
            content=LAYER,
            headers={
                "Content-Range": f"0-{len(LAYER) - 1}",
                "Content-Type": "application/octet-stream",
                "X-Redirect-Uploads": "1",
            },
        )
        assert patched.status_code == 202
        final = httpx.URL(patched.headers["Location"]).copy_merge_params({"digest": BLOB, "etag": "x-1"})
        assert http.put(final, content=b"").status_code == 201
        registry.push_blob(REPO, MODEL.layers[1].data)
        registry.push_blob(REPO, MODEL.config.data)

        put = http.put(
            f"/v2/{REPO}/manifests/latest", content=MODEL.manifest, headers={"Content-Type": MANIFEST_MEDIA_TYPE}
        )
        assert put.status_code == 201
        got = http.get(f"/v2/{REPO}/manifests/latest", headers=ACCEPT)
        assert got.status_code == 200 and got.content == MODEL.manifest

        blob = http.get(f"/v2/{REPO}/blobs/{BLOB}")
        assert blob.status_code == 200 and "location" not in blob.headers and blob.content == LAYER
        ranged = http.get(f"/v2/{REPO}/blobs/{BLOB}", headers={"Range": "bytes=10-19"})
        assert ranged.status_code == 206 and ranged.content == LAYER[10:20]
        assert int(http.head(f"/v2/{REPO}/blobs/{BLOB}").headers["Content-Length"]) == len(LAYER)

        mounted = http.post("/v2/other/tiny/blobs/uploads/", params={"mount": BLOB, "from": REPO})
        assert mounted.status_code == 201

        assert registry.blob_path(BLOB).read_bytes() == LAYER
        registry.corrupt_blob(BLOB)
        corrupted = http.get(f"/v2/{REPO}/blobs/{BLOB}").content
        assert len(corrupted) == len(LAYER) and sha256_digest(corrupted) != BLOB


def test_docker_registry_htpasswd(tmp_path: Path) -> None:
    with DockerRegistry(tmp_path / "registry", users={"alice": "s3cret"}) as registry, client() as http:
        denied = http.get(registry.url + "/v2/")
        assert denied.status_code == 401 and denied.headers["WWW-Authenticate"].startswith("Basic")
        assert http.get(registry.url + "/v2/", auth=("alice", "wrong")).status_code == 401
        assert http.get(registry.url + "/v2/", auth=registry.auth).status_code == 200
        registry.push_model(REPO, "latest", MODEL)  # the helpers use the credentials too
        assert (
            http.get(f"{registry.url}/v2/{REPO}/manifests/latest", auth=registry.auth, headers=ACCEPT).content
            == MODEL.manifest
        )


def test_docker_registry_skips_when_it_cannot_be_had(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registries, "_find_docker_registry", lambda: None)
    monkeypatch.setattr(registries, "_may_install", lambda: False)
    with pytest.raises(pytest.skip.Exception):
        DockerRegistry().start()


# --------------------------------------------------------------------------- fake registry.ollama.ai


@pytest.fixture
def fake() -> Iterator[FakeOllamaRegistry]:
    with FakeOllamaRegistry() as registry:
        registry.put_model("library", "tiny", "latest", MODEL)
        yield registry
        assert registry.errors == []


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def allow(fake: FakeOllamaRegistry, key: Ed25519PrivateKey, home: Path, *, push: bool = True) -> None:
    """As a real test would: the key's public line read from ``<home>/.ollama/id_ed25519.pub``."""
    (home / ".ollama").mkdir(parents=True, exist_ok=True)
    (home / ".ollama" / "id_ed25519.pub").write_text(public_line(key) + "\n")
    fake.allow_key((home / ".ollama" / "id_ed25519.pub").read_text().strip(), push=push)


def test_fake_challenges_name_the_repository_and_action(fake: FakeOllamaRegistry) -> None:
    with client(base_url=fake.url) as http:
        pull = http.get(f"/v2/{REPO}/manifests/latest")
        push = http.post(f"/v2/{REPO}/blobs/uploads/")
    assert pull.status_code == 401 and push.status_code == 401
    assert pull.headers["WWW-Authenticate"] == (
        f'Bearer realm="http://{fake.host}/token",service="ollama.com",scope="repository:{REPO}:pull"'
    )
    assert challenge_params(push.headers["WWW-Authenticate"])["scope"] == f"repository:{REPO}:push,pull"
    fake.realm_host = "localhost:1"
    with client(base_url=fake.url) as http:
        moved = http.get(f"/v2/{REPO}/manifests/latest")
    assert challenge_params(moved.headers["WWW-Authenticate"])["realm"] == "http://localhost:1/token"


def test_fake_token_needs_an_allowed_key_and_a_good_signature(
    fake: FakeOllamaRegistry, key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    with client(base_url=fake.url) as http:
        challenge = http.get(f"/v2/{REPO}/manifests/latest").headers["WWW-Authenticate"]
        assert fetch_token(http, key, challenge).status_code == 401  # not allowed yet
        allow(fake, key, tmp_path)

        granted = fetch_token(http, key, challenge)
        assert granted.status_code == 200
        token = granted.json()["token"]
        manifest = http.get(f"/v2/{REPO}/manifests/latest", headers={"Authorization": f"Bearer {token}", **ACCEPT})
        assert manifest.status_code == 200 and manifest.content == MODEL.manifest
        assert manifest.headers["Content-Type"] == MANIFEST_MEDIA_TYPE
        assert fake.tokens[token] == {REPO: frozenset({"pull"})}

        url = token_url(challenge)
        tampered = url.replace("nonce=n0", "nonce=n1")  # signed one URL, asked for another
        assert http.get(tampered, headers={"Authorization": sign(key, url)}).status_code == 401
        stranger = Ed25519PrivateKey.generate()
        forged = sign(stranger, url).split(":")[1]
        bad = http.get(url, headers={"Authorization": f"{public_line(key).split()[1]}:{forged}"})
        assert bad.status_code == 401 and bad.json()["errors"][0]["code"] == "UNAUTHORIZED"

        assert http.get(f"/v2/{REPO}/manifests/latest", headers={"Authorization": "Bearer made-up"}).status_code == 401
        pull_token = {"Authorization": f"Bearer {token}"}
        denied = http.post(f"/v2/{REPO}/blobs/uploads/", headers=pull_token)
        assert denied.status_code == 401 and "push,pull" in denied.headers["WWW-Authenticate"]

    verdicts = [(request.verified, request.token is not None) for request in fake.token_requests]
    assert verdicts == [(True, False), (True, True), (False, False), (False, False)]
    assert fake.token_requests[1].url.startswith(f"http://{fake.host}/token?nonce=n0&scope=repository%3A")


def test_fake_pull_only_key_gets_no_push(fake: FakeOllamaRegistry, key: Ed25519PrivateKey, tmp_path: Path) -> None:
    allow(fake, key, tmp_path, push=False)
    with client(base_url=fake.url) as http:
        challenge = http.post(f"/v2/{REPO}/blobs/uploads/").headers["WWW-Authenticate"]
        token = fetch_token(http, key, challenge).json()["token"]
        assert http.post(f"/v2/{REPO}/blobs/uploads/", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert fake.tokens[token] == {REPO: frozenset({"pull"})}


def test_fake_blob_get_redirects_to_the_storage_host(fake: FakeOllamaRegistry) -> None:
    auth = {"Authorization": "Bearer " + fake.issue_token(REPO)}
    with client(base_url=fake.url) as http:
        head = http.head(f"/v2/{REPO}/blobs/{BLOB}", headers=auth)
        assert head.status_code == 200 and int(head.headers["Content-Length"]) == len(LAYER)
        assert http.head(f"/v2/{REPO}/blobs/sha256:{'0' * 64}", headers=auth).status_code == 404
        redirect = http.get(f"/v2/{REPO}/blobs/{BLOB}", headers=auth)
        assert redirect.status_code == 307
        location = httpx.URL(redirect.headers["Location"])
        assert location.netloc.decode() == fake.storage_host and location.host != "127.0.0.1"
        assert location.path == f"/blobs/{BLOB}" and "sig" in location.params

        assert http.get(location).content == LAYER
        ranged = http.get(location, headers={"Range": "bytes=100-199"})
        assert ranged.status_code == 206 and ranged.content == LAYER[100:200]
        assert ranged.headers["Content-Range"] == f"bytes 100-199/{len(LAYER)}"
        leaked = http.get(location, headers=auth)
        assert leaked.status_code == 400
        assert http.get(location.copy_set_param("sig", "forged")).status_code == 403
    assert fake.blob_gets[BLOB] == 1
    assert fake.storage_gets[BLOB] == 2
    assert fake.storage_bytes_served[BLOB] == len(LAYER) + 100


def test_fake_unknown_manifest_is_manifest_unknown(fake: FakeOllamaRegistry) -> None:
    auth = {"Authorization": "Bearer " + fake.issue_token(REPO)}
    missing = httpx.get(f"{fake.url}/v2/{REPO}/manifests/nope", headers=auth, trust_env=False)
    assert missing.status_code == 404 and missing.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"


def push_redirected(http: httpx.Client, repo: str, data: bytes, part_size: int, auth: dict[str, str]) -> httpx.Response:
    """Ollama's push: POST, then per part PATCH → 307 → storage PUT, then the final PUT."""
    started = http.post(f"/v2/{repo}/blobs/uploads/", headers=auth)
    assert started.status_code == 202
    assert started.headers["Location"] == started.headers["Docker-Upload-Location"]
    upload = started.headers["Docker-Upload-Location"]
    md5s = b""
    for offset in range(0, len(data), part_size):
        part = data[offset : offset + part_size]
        headers = {**auth, "Content-Range": f"{offset}-{offset + len(part) - 1}", "X-Redirect-Uploads": "1"}
        patched = http.patch(upload, content=part, headers=headers)
        assert patched.status_code == 307
        assert patched.headers["Docker-Upload-Location"] == upload
        storage = patched.headers["Location"]
        assert httpx.URL(storage).path.endswith(f"/{offset}")
        assert http.put(storage, content=part).status_code == 200
        md5s += hashlib.md5(part).digest()
    etag = f"{hashlib.md5(md5s).hexdigest()}-{-(-len(data) // part_size)}"
    final = httpx.URL(upload).copy_merge_params({"digest": sha256_digest(data), "etag": etag})
    return http.put(final, content=b"", headers=auth)


def test_fake_redirected_upload_assembles_parts(fake: FakeOllamaRegistry) -> None:
    repo = "someone/pushed"
    model = ollama_model({MODEL_MEDIA_TYPE: LAYER[::-1]})
    auth = {"Authorization": "Bearer " + fake.issue_token(repo)}
    with client(base_url=fake.url) as http:
        early = http.put(
            f"/v2/{repo}/manifests/v1", content=model.manifest, headers={"Content-Type": MANIFEST_MEDIA_TYPE, **auth}
        )
        assert early.status_code == 400 and early.json()["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN"
        for layer in model.blobs:
            assert push_redirected(http, repo, layer.data, 50_000, auth).status_code == 201
        started = http.post(f"/v2/{repo}/blobs/uploads/", headers=auth).headers["Location"]
        wrong = http.put(httpx.URL(started).copy_merge_params({"digest": BLOB}), content=b"not it", headers=auth)
        assert wrong.status_code == 400 and wrong.json()["errors"][0]["code"] == "DIGEST_INVALID"

        put = http.put(
            f"/v2/{repo}/manifests/v1", content=model.manifest, headers={"Content-Type": MANIFEST_MEDIA_TYPE, **auth}
        )
        assert put.status_code == 201
        assert http.get(f"/v2/{repo}/manifests/v1", headers={**auth, **ACCEPT}).content == model.manifest

        mounted = http.post(f"/v2/{repo}/blobs/uploads/", params={"mount": BLOB, "from": REPO}, headers=auth)
        assert mounted.status_code == 201
    assert fake.blobs[model.layers[0].digest] == LAYER[::-1]
    assert fake.manifests[f"{repo}:v1"] == model.manifest
    layer_upload = next(record for record in fake.uploads if record.digest == model.layers[0].digest)
    assert layer_upload.redirected_parts == 3 and layer_upload.etag == layer_upload.expected_etag
    assert fake.mounts == [(repo, BLOB, REPO)]
    assert any(method == "PUT" and path.startswith("/upload/") for method, path in fake.storage_requests)


def test_fake_plain_patch_upload() -> None:
    with FakeOllamaRegistry(require_auth=False, redirect_uploads=False) as fake, client(base_url=fake.url) as http:
        location = http.post(f"/v2/{REPO}/blobs/uploads/").headers["Location"]
        for offset in (0, 60_000):
            part = LAYER[offset : offset + 60_000]
            headers = {"Content-Range": f"{offset}-{offset + len(part) - 1}", "X-Redirect-Uploads": "1"}
            patched = http.patch(location, content=part, headers=headers)
            assert patched.status_code == 202
            location = patched.headers["Location"]
        rest = LAYER[120_000:]
        done = http.put(httpx.URL(location).copy_merge_params({"digest": BLOB}), content=rest)
        assert done.status_code == 201
        assert fake.blobs[BLOB] == LAYER and fake.uploads[0].redirected_parts == 0


def test_fake_throttles_drops_and_corrupts() -> None:
    with FakeOllamaRegistry(require_auth=False, storage_rate=400_000, drop_after_bytes=1000) as fake, client() as http:
        fake.put_model("library", "tiny", "latest", MODEL)
        location = http.get(f"{fake.url}/v2/{REPO}/blobs/{BLOB}").headers["Location"]
        with pytest.raises(httpx.RemoteProtocolError):
            http.get(location)
        assert fake.drops == 1 and fake.storage_bytes_served[BLOB] == 1000
        started = time.monotonic()
        assert http.get(location).content == LAYER  # the drop happens once
        assert time.monotonic() - started >= 0.25  # 128 KiB at 400 kB/s
        fake.corrupt_blob(BLOB)
        corrupted = http.get(location, headers={"Range": "bytes=0-15"}).content
        assert corrupted == bytes(b ^ 0xFF for b in LAYER[:16])


def test_fake_tls() -> None:
    with FakeOllamaRegistry(tls=True) as fake:
        assert fake.url.startswith("https://") and fake.ca_path is not None
        with client(verify=ssl.create_default_context(cafile=str(fake.ca_path))) as http:
            challenge = http.get(f"{fake.url}/v2/{REPO}/manifests/latest").headers["WWW-Authenticate"]
        assert challenge_params(challenge)["realm"] == f"https://{fake.host}/token"
        with pytest.raises(httpx.ConnectError), client() as http:
            http.get(f"{fake.url}/v2/")  # not trusted without the CA


# --------------------------------------------------------------------------- forward proxy


def test_proxy_relays_a_name_only_it_can_resolve() -> None:
    with FakeOllamaRegistry(require_auth=False) as fake, ForwardProxy(hosts={"registry.test": "127.0.0.1"}) as proxy:
        fake.put_model("library", "tiny", "latest", MODEL)
        base = f"http://registry.test:{fake.port}"
        with client(proxy=proxy.url, follow_redirects=True) as http:
            manifest = http.get(f"{base}/v2/{REPO}/manifests/latest", headers=ACCEPT)
            assert manifest.content == MODEL.manifest
            assert int(http.head(f"{base}/v2/{REPO}/blobs/{BLOB}").headers["Content-Length"]) == len(LAYER)
            assert http.get(f"{base}/v2/{REPO}/blobs/{BLOB}").content == LAYER  # 307 to storage, also proxied
            redirect = http.get(f"{base}/v2/{REPO}/blobs/{BLOB}", follow_redirects=False)
            ranged = http.get(redirect.headers["Location"], headers={"Range": "bytes=5-9"})
            assert ranged.status_code == 206 and ranged.content == LAYER[5:10]
            leaked = http.get(redirect.headers["Location"], headers={"Authorization": "Bearer x"})
            assert leaked.status_code == 400  # the header went through
        with client() as http, pytest.raises(httpx.ConnectError):
            http.get(f"{base}/v2/")
    assert proxy.requests[0].method == "GET" and proxy.requests[0].status == 200
    assert proxy.requests[0].url == f"{base}/v2/{REPO}/manifests/latest"
    assert proxy.bytes_by_path[f"/blobs/{BLOB}"] == len(LAYER) + 5 + len(leaked.content)
    assert proxy.bytes_by_path[f"/v2/{REPO}/manifests/latest"] == len(MODEL.manifest)
    assert ("GET", f"/v2/{REPO}/manifests/latest") in fake.requests
    assert fake.log[0].headers["Host"] == f"registry.test:{fake.port}"


def test_proxy_streams_request_bodies() -> None:
    with (
        FakeOllamaRegistry(require_auth=False) as fake,
        ForwardProxy() as proxy,
        client(proxy=proxy.url, base_url=fake.url) as http,
    ):
        data = LAYER * 4

        def pieces() -> Iterator[bytes]:  # a generator body goes out chunked
            for offset in range(0, len(data), 100_000):
                yield data[offset : offset + 100_000]

        assert push_redirected(http, "a/b", data, 200_000, {}).status_code == 201
        location = http.post("/v2/a/c/blobs/uploads/").headers["Location"]
        final = httpx.URL(location).copy_merge_params({"digest": sha256_digest(data)})
        assert http.put(final, content=pieces()).status_code == 201
    assert fake.blobs[sha256_digest(data)] == data
    assert [request.method for request in proxy.requests].count("PATCH") == 3


def test_proxy_throttles_and_cuts_once() -> None:
    with FakeOllamaRegistry(require_auth=False, redirect_blobs=False) as fake, ForwardProxy(rate=500_000) as proxy:
        fake.put_model("library", "tiny", "latest", MODEL)
        url = f"{fake.url}/v2/{REPO}/blobs/{BLOB}"
        with client(proxy=proxy.url) as http:
            started = time.monotonic()
            assert http.get(url).content == LAYER
            assert time.monotonic() - started >= 0.2  # 128 KiB at 500 kB/s
            proxy.rate = None
            proxy.arm_cut(10_000)
            with pytest.raises(httpx.RemoteProtocolError):
                http.get(url)
            assert http.get(url).content == LAYER
    assert proxy.cuts == 1
    assert proxy.bytes_by_path[f"/v2/{REPO}/blobs/{BLOB}"] == 2 * len(LAYER) + 10_000


def test_proxy_tunnels_connect_to_https() -> None:
    with FakeOllamaRegistry(tls=True, require_auth=False) as fake, ForwardProxy() as proxy:
        assert fake.ca_path is not None
        with client(proxy=proxy.url, verify=ssl.create_default_context(cafile=str(fake.ca_path))) as http:
            assert http.get(f"{fake.url}/v2/").status_code == 200
    assert proxy.connects == [fake.host]
    assert proxy.requests[0].method == "CONNECT" and proxy.requests[0].status == 200
    assert proxy.tunnel_bytes > 0


def test_model_artifact_shape() -> None:
    assert isinstance(MODEL, ModelArtifact)
    assert [layer.media_type for layer in MODEL.blobs][0] == "application/vnd.docker.container.image.v1+json"
    assert MODEL.manifest.startswith(b'{"schemaVersion":2,"mediaType":"' + MANIFEST_MEDIA_TYPE.encode())
