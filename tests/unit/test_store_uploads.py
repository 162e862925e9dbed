"""pollama.store.uploads: which uploaded blobs a failed create, or the lapse of time, may remove.

Never one a manifest uses, one another create in flight names, or one sent or asked about since.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pollama.store import Store
from pollama.store.layers import CONFIG_MEDIA_TYPE, Layer, Manifest, MediaType
from pollama.store.names import ModelName
from pollama.store.uploads import UNCLAIMED_SECONDS, Uploads


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def tick(self, seconds: float = 1) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Store:
    created = Store(tmp_path / "models")
    created.ensure()
    created.uploads = Uploads(clock)
    return created


def upload(store: Store, clock: Clock, data: bytes) -> str:
    digest, _ = store.blobs.write_bytes(data)
    store.uploads.arrived(digest)
    clock.tick()
    return digest


def use(store: Store, model: str, digest: str) -> None:
    config, _ = store.blobs.write_bytes(model.encode())
    layers = [Layer(MediaType.MODEL, digest, store.blobs.size(digest))]
    store.manifests.write(ModelName.parse(model), Manifest.build(Layer(CONFIG_MEDIA_TYPE, config, 1), layers))


def fail(store: Store, *digests: str) -> None:
    """A create that named ``digests`` and failed."""
    claim = store.uploads.claim(digests)
    store.uploads.release(claim, used=False)
    asyncio.run(store.uploads.remove_abandoned(store, claim))


def test_a_failed_create_removes_its_uploads_but_not_those_a_model_uses(store: Store, clock: Clock) -> None:
    weights = upload(store, clock, b"weights")
    shared = upload(store, clock, b"shared weights")
    use(store, "existing", shared)
    fail(store, weights, shared, "sha256:not-a-digest")
    assert not store.blobs.exists(weights)
    assert store.blobs.exists(shared)


def test_blobs_that_were_not_uploaded_are_left_alone(store: Store) -> None:
    pulled, _ = store.blobs.write_bytes(b"a pull's blob, its manifest not written yet")
    fail(store, pulled)
    assert store.blobs.exists(pulled)


def test_another_create_in_flight_keeps_the_upload(store: Store, clock: Clock) -> None:
    weights = upload(store, clock, b"weights")
    other = store.uploads.claim([weights])
    fail(store, weights)
    assert store.blobs.exists(weights)
    store.uploads.release(other, used=False)
    asyncio.run(store.uploads.remove_abandoned(store, other))
    assert not store.blobs.exists(weights)


@pytest.mark.parametrize("again", ["arrived", "asked"])
def test_an_upload_sent_or_asked_about_during_the_create_is_kept(store: Store, clock: Clock, again: str) -> None:
    weights = upload(store, clock, b"weights")
    claim = store.uploads.claim([weights])
    clock.tick()
    getattr(store.uploads, again)(weights)  # someone else, about to use it
    store.uploads.release(claim, used=False)
    asyncio.run(store.uploads.remove_abandoned(store, claim))
    assert store.blobs.exists(weights)


def test_a_corrupt_manifest_keeps_every_upload(store: Store, clock: Clock) -> None:
    weights = upload(store, clock, b"weights")
    corrupt = store.manifests.path(ModelName.parse("corrupt"))
    corrupt.parent.mkdir(parents=True)
    corrupt.write_bytes(b"{not json")  # it may be the model that uses them
    fail(store, weights)
    assert store.blobs.exists(weights)


def test_unclaimed_uploads_go_once_uploads_have_been_quiet_long_enough(store: Store, clock: Clock) -> None:
    early = upload(store, clock, b"first file of a model")
    created = upload(store, clock, b"weights of a model that was created")
    claim = store.uploads.claim([created])
    use(store, "created", created)
    store.uploads.release(claim, used=True)

    clock.tick(UNCLAIMED_SECONDS)
    with store.uploads.receiving():  # a model's next file is on its way
        asyncio.run(store.uploads.remove_stale(store))
        assert store.blobs.exists(early)
    asyncio.run(store.uploads.remove_stale(store))
    assert store.blobs.exists(early)  # quiet only since that upload ended

    clock.tick(UNCLAIMED_SECONDS)
    claim = store.uploads.claim([early])
    asyncio.run(store.uploads.remove_stale(store))
    assert store.blobs.exists(early)  # a create is using it
    store.uploads.release(claim, used=False)

    asyncio.run(store.uploads.remove_stale(store))
    assert not store.blobs.exists(early)
    assert store.blobs.exists(created)
