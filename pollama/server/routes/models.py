"""Local model management: ``/api/tags``, ``/api/show``, ``/api/copy``, ``/api/delete``."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from pollama.api.native import CopyRequest, DeleteRequest, ListResponse, ShowRequest
from pollama.errors import Failed, InvalidRequest, NotFound
from pollama.gocompat.gostrconv import quote as go_quote
from pollama.model.info import show_response
from pollama.model.options import OptionError, coerce_options
from pollama.server.bodies import read_body
from pollama.server.responses import JSON
from pollama.server.state import state
from pollama.service.lookup import parse_name
from pollama.store import CorruptManifest, Manifest, gc
from pollama.store.models import load_model
from pollama.store.names import ModelName

router = APIRouter()


@router.api_route("/api/tags", methods=["GET", "HEAD"])
async def list_models(request: Request) -> JSON:
    models = await run_in_threadpool(state(request).lister.list)
    return JSON(ListResponse(models=models).dump())


@router.post("/api/show")
async def show(request: Request) -> JSON:
    body = await read_body(request, ShowRequest)
    requested = body.model or body.name
    if not requested:
        raise InvalidRequest("model is required")
    server = state(request)
    name = server.store.manifests.resolve(parse_name(requested))
    try:
        options, _unknown = coerce_options(body.options or {})
    except OptionError as err:
        raise InvalidRequest(str(err)) from None

    def build() -> JSON:
        try:
            model = load_model(server.store, name)
        except FileNotFoundError:
            raise NotFound(f"model '{name.display_shortest()}' not found") from None
        except CorruptManifest as err:
            raise Failed(str(err)) from None
        response = show_response(
            model,
            verbose=body.verbose,
            system=body.system,
            options=options,
            requested=requested,
            user_agent=request.headers.get("user-agent", ""),
        )
        return JSON(response.dump())

    return await run_in_threadpool(build)


@router.post("/api/copy")
async def copy(request: Request) -> Response:
    body = await read_body(request, CopyRequest)
    server = state(request)
    source = ModelName.parse(body.source)
    if not source.is_valid():
        raise InvalidRequest(f"source {go_quote(body.source)} is invalid")
    destination = ModelName.parse(body.destination)
    if not destination.is_valid():
        raise InvalidRequest(f"destination {go_quote(body.destination)} is invalid")
    source = server.store.manifests.resolve(source)
    destination = server.store.manifests.resolve(destination)

    def copy_manifest() -> None:
        try:
            stored = server.store.manifests.read(source)
        except FileNotFoundError:
            raise NotFound(f"model {go_quote(body.source)} not found") from None
        except CorruptManifest as err:
            raise Failed(str(err)) from None
        if source.parts == destination.parts:
            return
        replaced = server.store.manifests.layer_digests(destination)
        server.store.manifests.write(destination, Manifest.parse(stored.manifest.raw))
        if replaced and not server.settings.noprune:
            gc.remove_unused(server.store, replaced)

    async with server.store.lock:
        await run_in_threadpool(copy_manifest)
    return Response(status_code=200)


@router.delete("/api/delete")
async def delete(request: Request) -> Response:
    body = await read_body(request, DeleteRequest)
    requested = body.model or body.name
    server = state(request)
    name = server.store.manifests.resolve(parse_name(requested, f"name {go_quote(requested)} is invalid"))

    def remove() -> None:
        try:
            stored = server.store.manifests.read(name)
        except FileNotFoundError:
            raise NotFound(f"model '{requested}' not found") from None
        except CorruptManifest:
            stored = None  # a corrupt manifest can still be deleted; its blobs wait for pruning
        server.store.manifests.remove(name)
        if stored is not None:
            gc.remove_unused(server.store, [layer.digest for layer in stored.manifest.all_layers()])

    async with server.store.lock:
        await run_in_threadpool(remove)
    return Response(status_code=200)
