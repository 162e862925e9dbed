"""The cluster's one endpoint: every request of the native, OpenAI and Anthropic APIs, routed.

A request naming a model goes through Ray Serve with the model as its multiplexed id, so it lands on a
replica holding the model; its answer is streamed back chunk by chunk. A replica that fails before it
has answered is tried again elsewhere (nothing was sent yet); one that dies in mid-stream ends the
stream with an error in the stream's format. A client that leaves cancels the request on the replica.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
from ray.exceptions import RayError
from ray.serve.handle import DeploymentHandle, DeploymentResponseGenerator
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from pollama.cluster.directory import ReplicaEntry, directory
from pollama.cluster.forwarding import ForwardRequest, ResponseHead, client_headers, response_headers, stream_error
from pollama.cluster.options import ClusterOptions
from pollama.cluster.routing import UNSUPPORTED, RouteKind, merge_openai_models, merge_ps, merge_tags, route

__all__ = ["Ingress"]

log = logging.getLogger("pollama.cluster")

_ATTEMPTS = 3
_NO_REPLICA = "no replica of the cluster could answer: {reason}"


def _reason(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[-1] if text else type(err).__name__


class Ingress:
    def __init__(self, replicas: DeploymentHandle, options: ClusterOptions, internal_key: str) -> None:
        self.replicas = replicas
        self.options = options
        self.internal_key = internal_key
        self.directory = directory(options.app_name)
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(None, connect=10))

    async def __call__(self, request: Request) -> Response:
        forward = ForwardRequest(
            request.method, request.url.path, request.url.query, tuple(request.headers.items()), await request.body()
        )
        where = route(forward.method, forward.path, forward.body)
        if where.kind is RouteKind.REFUSED:
            what = "push" if forward.path == "/api/push" else "uploading blobs"
            return JSONResponse({"error": UNSUPPORTED.format(what=what)}, status_code=501)
        if where.kind is RouteKind.GATHER:
            return await self._gather(forward)
        if where.kind is RouteKind.EVERYWHERE:
            return await self._everywhere(forward)
        return await self._one(forward, where.model)

    # --- one replica -------------------------------------------------------------------------------

    async def _one(self, forward: ForwardRequest, model: str) -> Response:
        reason = ""
        for attempt in range(_ATTEMPTS):
            handle = self.replicas.options(multiplexed_model_id=model, stream=True)
            answer = handle.forward.remote(forward)
            assert isinstance(answer, DeploymentResponseGenerator)  # stream=True
            try:
                head = await answer.__anext__()
            except RayError as err:  # the replica died or its server is gone: nothing was sent yet
                reason = _reason(err)
                log.warning("replica failed before answering %s %s: %s", forward.method, forward.path, reason)
                await asyncio.sleep(0.5 * (attempt + 1))
                continue
            assert isinstance(head, ResponseHead)
            content_type = dict((name.lower(), value) for name, value in head.headers).get("content-type", "")
            return StreamingResponse(
                self._rest(answer, forward.path, content_type), status_code=head.status, headers=dict(head.headers)
            )
        return JSONResponse({"error": _NO_REPLICA.format(reason=reason)}, status_code=503)

    async def _rest(self, answer: DeploymentResponseGenerator, path: str, content_type: str) -> AsyncIterator[bytes]:
        finished = False
        try:
            async for chunk in answer:
                yield chunk
            finished = True
        except RayError as err:
            finished = True
            log.warning("replica failed in mid-answer on %s: %s", path, _reason(err))
            yield stream_error(path, content_type, f"the replica serving this request failed: {_reason(err)}")
        finally:
            if not finished:  # the client left: stop the work on the replica
                answer.cancel()

    # --- every replica -----------------------------------------------------------------------------

    async def _entries(self) -> list[ReplicaEntry]:
        entries: list[ReplicaEntry] = await self.directory.entries.remote()
        return entries

    def _request(self, entry: ReplicaEntry, forward: ForwardRequest) -> httpx.Request:
        headers = client_headers(
            forward.headers, internal_key=self.internal_key, keep_credentials=bool(self.options.api_keys)
        )
        url = entry.url + forward.path + (f"?{forward.query}" if forward.query else "")
        return self.http.build_request(forward.method, url, headers=headers, content=forward.body)

    async def _ask(self, entry: ReplicaEntry, forward: ForwardRequest) -> httpx.Response | None:
        try:
            return await self.http.send(self._request(entry, forward))
        except httpx.TransportError:  # the replica is gone (its server with it)
            await self.directory.forget.remote(entry.replica_id)
            return None

    async def _gather(self, forward: ForwardRequest) -> Response:
        entries = await self._entries()
        responses = await asyncio.gather(*(self._ask(entry, forward) for entry in entries))
        answered = [(entry, response) for entry, response in zip(entries, responses, strict=True) if response]
        for _entry, response in answered:
            if response.status_code != 200:  # e.g. a 401: every replica checks the same keys
                return _as_response(response)
        bodies = [(entry, response.json()) for entry, response in answered]
        merged: dict[str, Any]
        if forward.path == "/api/ps":
            merged = merge_ps([(entry.where, body) for entry, body in bodies])
        elif forward.path == "/v1/models":
            merged = merge_openai_models([body for _entry, body in bodies])
        else:
            merged = merge_tags([body for _entry, body in bodies])
        return JSONResponse(merged)

    async def _everywhere(self, forward: ForwardRequest) -> Response:
        """A store write on one replica per store. Streams (pull, create) show the first store's
        progress, and end with an error line if another store failed; others answer with the first
        success, or the first failure when none succeeded."""
        stores: dict[str, ReplicaEntry] = {}
        for entry in await self._entries():
            stores.setdefault(entry.store, entry)
        targets = list(stores.values())
        if not targets:
            return JSONResponse({"error": _NO_REPLICA.format(reason="no replica is running")}, status_code=503)
        streamed = forward.path in ("/api/pull", "/api/create") and _wants_stream(forward.body)
        if not streamed:
            responses = await asyncio.gather(*(self._ask(entry, forward) for entry in targets))
            answered = [response for response in responses if response is not None]
            if not answered:
                return JSONResponse({"error": _NO_REPLICA.format(reason="every replica failed")}, status_code=503)
            ok = [response for response in answered if response.status_code == 200 and not _ends_in_error(response)]
            return _as_response(ok[0] if ok and len(ok) == len(answered) else _first_failure(answered))
        first, *others = targets
        rest = [asyncio.create_task(self._ask(entry, forward)) for entry in others]
        try:
            response = await self.http.send(self._request(first, forward), stream=True)
        except httpx.TransportError as err:
            for task in rest:
                task.cancel()
            return JSONResponse({"error": _NO_REPLICA.format(reason=str(err))}, status_code=503)

        async def body() -> AsyncIterator[bytes]:
            try:
                async for chunk in response.aiter_raw():
                    yield chunk
            finally:
                await response.aclose()
            for entry, task in zip(others, rest, strict=True):
                other = await task
                if other is None or other.status_code != 200 or _ends_in_error(other):
                    reason = "its replica is gone" if other is None else _last_error(other)
                    yield json.dumps({"error": f"node {entry.node_id}: {reason}"}).encode() + b"\n"

        return StreamingResponse(
            body(), status_code=response.status_code, headers=dict(response_headers(response.headers.multi_items()))
        )


def _wants_stream(body: bytes) -> bool:
    try:
        data = json.loads(body)
    except ValueError:
        return True
    return not (isinstance(data, dict) and data.get("stream") is False)


def _ends_in_error(response: httpx.Response) -> bool:
    return bool(_last_error(response)) and response.status_code == 200


def _last_error(response: httpx.Response) -> str:
    lines = response.text.strip().splitlines()
    try:
        last = json.loads(lines[-1]) if lines else {}
    except ValueError:
        return response.text[:200]
    return str(last.get("error", "")) if isinstance(last, dict) else ""


def _first_failure(responses: list[httpx.Response]) -> httpx.Response:
    return next((r for r in responses if r.status_code != 200 or _ends_in_error(r)), responses[0])


def _as_response(response: httpx.Response) -> Response:
    return Response(
        response.content,
        status_code=response.status_code,
        headers=dict(response_headers(response.headers.multi_items())),
    )
