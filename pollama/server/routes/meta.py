"""``/`` and ``/api/version``: the liveness and version checks clients start with."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from pollama.api.native import VersionResponse
from pollama.server.responses import JSON
from pollama.version import OLLAMA_VERSION

router = APIRouter()


@router.api_route("/", methods=["GET", "HEAD"])
async def root() -> PlainTextResponse:
    # Clients detect an Ollama-compatible server by this exact text.
    return PlainTextResponse("Ollama is running")


@router.api_route("/api/version", methods=["GET", "HEAD"])
async def version() -> JSON:
    return JSON(VersionResponse(version=OLLAMA_VERSION).dump())
