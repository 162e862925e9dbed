"""The FastAPI application: routes, error shapes, middleware."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from pollama.config import Settings
from pollama.errors import PollamaError
from pollama.model.info import ModelLister
from pollama.registry import Downloads, RegistryClientFactory
from pollama.runtime.scheduler import Scheduler
from pollama.server.auth import ApiKeyAuth
from pollama.server.errors import status_of
from pollama.server.limits import RequestBodyLimits
from pollama.server.metrics import PrometheusMetrics, RequestMetrics
from pollama.server.middleware import HostAndOriginMiddleware
from pollama.server.responses import error_response
from pollama.server.routes import anthropic, create, embed, generate, meta, models, openai, ps, schema, tokenize, ui
from pollama.server.routes import metrics as metrics_routes
from pollama.server.routes import registry as registry_routes
from pollama.server.shutdown import Shutdown
from pollama.server.state import ServerState
from pollama.service import AnswerService
from pollama.store import Store

__all__ = ["create_app"]

log = logging.getLogger(__name__)


def create_app(settings: Settings) -> FastAPI:
    store = Store(settings.models)
    metrics = PrometheusMetrics()  # a registry of this app's own: apps in one process do not share counters
    scheduler = Scheduler(settings, metrics=metrics)
    metrics.watch(scheduler)
    registry = RegistryClientFactory(settings)

    shutdown = Shutdown()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        shutdown.bind(asyncio.get_running_loop())
        store.startup(prune=not settings.noprune)
        await asyncio.to_thread(scheduler.start)
        yield
        await scheduler.shutdown()
        await registry.aclose()

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.pollama = ServerState(
        settings=settings,
        store=store,
        lister=ModelLister(store),
        scheduler=scheduler,
        registry=registry,
        downloads=Downloads(),
        shutdown=shutdown,
        service=AnswerService(settings, store, scheduler),
        metrics=metrics,
    )
    for module in (meta, models, create, generate, embed, tokenize, ps, registry_routes, openai, anthropic, schema, ui):
        app.include_router(module.router)
    app.include_router(metrics_routes.router)

    @app.exception_handler(PollamaError)
    async def domain_error(_request: Request, err: PollamaError) -> Response:
        return error_response(status_of(err), err.message)

    @app.exception_handler(HTTPException)
    async def router_error(_request: Request, err: HTTPException) -> Response:
        # Gin's plain-text answers for unknown paths and wrong methods.
        if err.status_code == 405:
            return PlainTextResponse("405 method not allowed", status_code=405)
        if err.status_code == 404:
            return PlainTextResponse("404 page not found", status_code=404)
        return error_response(err.status_code, str(err.detail))

    @app.exception_handler(ClientDisconnect)
    async def client_left(request: Request, _err: ClientDisconnect) -> Response:
        log.info("client disconnected before sending its whole request: %s %s", request.method, request.url.path)
        return Response(status_code=499)  # nobody reads it; nginx's and Ollama's code for a client gone

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, err: Exception) -> Response:
        log.exception("unhandled error")
        return error_response(500, str(err) or err.__class__.__name__)

    # The last added runs first: hosts and origins (CORS preflights answered, 401s readable by browsers),
    # then API keys (a refused client's body is never read), then the body limits.
    app.add_middleware(RequestBodyLimits, limits=settings.limits)
    app.add_middleware(ApiKeyAuth, keys=settings.read_api_keys_file().api_keys)
    app.add_middleware(HostAndOriginMiddleware, origins=settings.origins, check_hosts=settings.host.is_loopback())
    # Outermost: every request counted and logged, those the other middlewares refuse (403, 401, 413) too.
    app.add_middleware(RequestMetrics, metrics=metrics, log_requests=settings.log_requests)
    return app
