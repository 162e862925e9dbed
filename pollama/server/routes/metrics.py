"""``GET /metrics`` (beyond Ollama): the server's metrics in Prometheus' text format (``server/metrics.py``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import generate_latest

from pollama.server.state import state

router = APIRouter()

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # the text format generate_latest writes


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    # On the event loop (an async route): the scheduler's state is read where it changes, never mid-change.
    return Response(generate_latest(state(request).metrics.registry), media_type=CONTENT_TYPE)
