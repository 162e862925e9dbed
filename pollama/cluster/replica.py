"""One replica of the cluster: a ``pollama serve`` on its node, and the models Ray Serve routes to it.

Ray Serve's model multiplexing keeps, per replica, the ids of the models it holds, and routes a request
that names a model to a replica holding it (else to the least loaded one). Holding a model here means:
in this node's store (pulled from its registry on first use) and loaded by the replica's server. The
request itself is then passed to that server unchanged and its answer streamed back as it is written.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import ray
from ray import serve

from pollama.cluster.directory import HEARTBEAT, ReplicaEntry, directory
from pollama.cluster.forwarding import ForwardRequest, ResponseHead, client_headers, response_headers
from pollama.cluster.localserver import LocalServer, free_port, server_environment
from pollama.cluster.options import ClusterOptions

__all__ = ["ModelUnavailable", "Replica"]

log = logging.getLogger("pollama.cluster")


class ModelUnavailable(Exception):
    """The model could not be brought to this replica; the request still goes to the replica's server,
    which answers with Ollama's error for it (a 404 for an unknown model)."""


class HeldModel:
    """A model this replica holds for Ray Serve's multiplexing. Ray calls ``__del__`` when it evicts the
    model for another (least recently used first): the replica's server then unloads it."""

    def __init__(self, name: str, unload: httpx.Request | None) -> None:
        self.name = name
        self._unload = unload

    def __del__(self) -> None:
        request, self._unload = self._unload, None  # once: Ray calls it, the garbage collector may again
        if request is not None:
            try:
                with httpx.Client(timeout=30) as client:
                    client.send(request)
            except httpx.HTTPError:
                pass  # the server is gone, and its models with it


class Replica:
    def __init__(self, options: ClusterOptions, internal_key: str) -> None:
        context = ray.get_runtime_context()
        self.options = options
        self.internal_key = internal_key
        node_id = context.get_node_id()
        replica_id = serve.get_replica_context().replica_id.unique_id
        address = ray.util.get_node_ip_address()
        overrides = dict(options.server_env)
        if options.models_dir:
            overrides["OLLAMA_MODELS"] = options.models_dir.replace("{node}", node_id)
        keys = (internal_key, *options.api_keys)
        log_path = Path(tempfile.gettempdir()) / "pollama-cluster" / options.app_name / f"{replica_id}.log"
        self.server = LocalServer(
            address, free_port(address), internal_key, server_environment(os.environ, overrides, keys), log_path
        )
        self.server.start()
        self.http = httpx.AsyncClient(base_url=self.server.url, timeout=httpx.Timeout(None, connect=10))
        self.entry = ReplicaEntry(
            replica_id, node_id, address, self.server.url, f"{node_id}:{overrides.get('OLLAMA_MODELS', '')}"
        )
        self.directory = directory(options.app_name)
        ray.get(self.directory.register.remote(self.entry))
        self._stopping: threading.Event = threading.Event()
        self._stored: set[str] = set()  # models known to be in this node's store
        threading.Thread(target=self._heartbeat, name="pollama-heartbeat", daemon=True).start()

        async def bring(model: str) -> HeldModel:  # a function: Ray keeps its model cache on it
            return await self._bring(model)

        self.held: Callable[[str], Awaitable[HeldModel]] = serve.multiplexed(
            max_num_models_per_replica=options.models_per_replica
        )(bring)

    def _heartbeat(self) -> None:
        while not self._stopping.wait(HEARTBEAT):
            try:
                self.directory.register.remote(self.entry)
            except Exception:  # noqa: BLE001 - the directory restarts; the next beat registers again
                log.debug("heartbeat failed", exc_info=True)

    async def _store(self, model: str) -> dict[str, Any]:
        """``model``'s /api/show, pulled into this node's store first if it is not there.

        Done before Ray's multiplexing is asked for the model: that evicts the least recently used model
        to make room before it calls ``bring``, so a model that turns out not to exist must not get there.
        """
        auth = self.server.auth
        show = await self.http.post("/api/show", json={"model": model}, headers=auth)
        if show.status_code == 404:
            body = {"model": model, "insecure": self.options.insecure, "stream": False}
            pulled = await self.http.post("/api/pull", json=body, headers=auth)
            if pulled.status_code != 200:
                raise ModelUnavailable(f"pull {model}: {pulled.text}")
            show = await self.http.post("/api/show", json={"model": model}, headers=auth)
        if show.status_code != 200:
            raise ModelUnavailable(f"show {model}: {show.text}")
        shown: dict[str, Any] = show.json()
        return shown

    async def _bring(self, model: str) -> HeldModel:
        """Load ``model`` (in the store already: ``_store``) on this replica's server."""
        auth = self.server.auth
        capabilities = (await self._store(model)).get("capabilities") or []
        load: dict[str, Any]
        unload: dict[str, Any]
        if "completion" in capabilities:
            path, load, unload = "/api/generate", {"model": model}, {"model": model, "keep_alive": 0}
        elif "embedding" in capabilities:
            path, load, unload = (
                "/api/embed",
                {"model": model, "input": []},
                {"model": model, "input": [], "keep_alive": 0},
            )
        else:
            return HeldModel(model, None)
        loaded = await self.http.post(path, json=load, headers=auth)
        if loaded.status_code != 200:
            raise ModelUnavailable(f"load {model}: {loaded.text}")
        return HeldModel(model, httpx.Request("POST", self.server.url + path, json=unload, headers=auth))

    async def forward(self, request: ForwardRequest) -> AsyncIterator[ResponseHead | bytes]:
        """The replica's server's answer to ``request``: its head, then its body as it comes."""
        model = serve.get_multiplexed_model_id()
        if model:
            try:
                if model not in self._stored:
                    await self._store(model)
                    self._stored.add(model)
                await self.held(model)
            except ModelUnavailable as err:
                log.info("%s", err)
        headers = client_headers(
            request.headers, internal_key=self.internal_key, keep_credentials=bool(self.options.api_keys)
        )
        url = request.path + (f"?{request.query}" if request.query else "")
        outgoing = self.http.build_request(request.method, url, headers=headers, content=request.body)
        response = await self.http.send(outgoing, stream=True)
        try:
            yield ResponseHead(response.status_code, response_headers(response.headers.multi_items()))
            async for chunk in response.aiter_raw():
                yield chunk
        finally:
            # A cancelled request (the client left) closes the connection: the server stops generating.
            await response.aclose()

    def describe(self) -> dict[str, Any]:
        """Where this replica is and what its server is (the tests look through this)."""
        return {**self.entry.where, "url": self.server.url, "pid": self.server.pid}

    async def check_health(self) -> None:
        """Ray Serve's health check: a replica whose server died is replaced."""
        response = await self.http.get("/api/version", headers=self.server.auth, timeout=10)
        response.raise_for_status()

    def __del__(self) -> None:
        """Ray Serve's shutdown of the replica (scaled down, redeployed, deleted)."""
        if not hasattr(self, "entry"):  # __init__ failed: LocalServer.start cleaned up after itself
            return
        self._stopping.set()
        with contextlib.suppress(Exception):  # Ray may be shutting down; the entry expires anyway
            self.directory.forget.remote(self.entry.replica_id)
        self.server.stop()
