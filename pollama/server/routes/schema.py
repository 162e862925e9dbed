"""``GET /openapi.json`` — beyond Ollama: the API described for client generators and API explorers."""

from __future__ import annotations

from fastapi import APIRouter, Request

from pollama.server.openapi import openapi_document
from pollama.server.responses import JSON

router = APIRouter()


@router.get("/openapi.json")
async def openapi_json(request: Request) -> JSON:
    return JSON(openapi_document(request.app))
