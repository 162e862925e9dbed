"""Which replicas are alive and where their servers listen: one small Ray actor per cluster.

Ray Serve routes a request to one replica; ``/api/tags``, ``/api/ps`` and the store writes need every
replica. Replicas register here at start and again every few seconds; an entry not renewed for
``TTL`` seconds (its replica died without a word) is dropped, and the ingress drops one whose server
does not answer.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import cast

import ray
from ray.actor import ActorHandle

__all__ = ["HEARTBEAT", "Directory", "ReplicaEntry", "directory", "remove_directory"]

HEARTBEAT = 2.0
TTL = 10.0
_NAMESPACE = "pollama"


@dataclass(frozen=True)
class ReplicaEntry:
    replica_id: str
    node_id: str
    node_address: str
    url: str
    store: str  # what tells stores apart: replicas on one node with one store share it

    @property
    def where(self) -> dict[str, str]:
        """What ``/api/ps`` adds to each model: the replica and the node that hold it."""
        return {"replica": self.replica_id, "node": self.node_id, "node_address": self.node_address}


class Directory:
    def __init__(self) -> None:
        self._entries: dict[str, tuple[ReplicaEntry, float]] = {}

    def register(self, entry: ReplicaEntry) -> None:
        self._entries[entry.replica_id] = (entry, time.monotonic())

    def forget(self, replica_id: str) -> None:
        self._entries.pop(replica_id, None)

    def entries(self) -> list[ReplicaEntry]:
        now = time.monotonic()
        self._entries = {key: value for key, value in self._entries.items() if now - value[1] < TTL}
        return [entry for entry, _seen in self._entries.values()]


def _name(app_name: str) -> str:
    return f"directory-{app_name}"


def directory(app_name: str) -> ActorHandle[Directory]:
    """The cluster's directory, created by whoever asks first; it outlives the process that made it
    (detached) and is restarted by Ray if its process dies (replicas re-register within a heartbeat)."""
    actor = ray.remote(Directory).options(
        name=_name(app_name), namespace=_NAMESPACE, get_if_exists=True, lifetime="detached",
        max_restarts=-1, num_cpus=0,
    )  # fmt: skip
    return cast("ActorHandle[Directory]", actor.remote())


def remove_directory(app_name: str) -> None:
    with contextlib.suppress(ValueError):  # never created
        ray.kill(ray.get_actor(_name(app_name), namespace=_NAMESPACE))
