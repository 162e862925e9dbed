"""``GET /api/ps``: the models in memory, how big, where, and until when."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request

from pollama.api.native import ModelDetails, ProcessModel, ProcessResponse
from pollama.gocompat.durations import SECOND
from pollama.gocompat.timefmt import rfc3339_nano
from pollama.server.responses import JSON
from pollama.server.state import state

router = APIRouter()


@router.get("/api/ps")
async def running_models(request: Request) -> JSON:
    now = time.time()
    rows = []
    for loaded in state(request).scheduler.loaded():
        details = {key: value for key, value in loaded.model.details().items() if key != "parent_model"}
        expires = loaded.expires(now)
        rows.append(
            (
                expires,
                ProcessModel(
                    name=loaded.model.short_name,
                    model=loaded.model.short_name,
                    size=loaded.size,
                    digest=loaded.model.digest,
                    details=ModelDetails(parent_model="", **details),
                    expires_at=rfc3339_nano(int(expires * SECOND)),
                    size_vram=loaded.size_vram,
                    context_length=loaded.process.context_length,
                ),
            )
        )
    rows.sort(key=lambda row: int(row[0]), reverse=True)  # whole seconds, as Ollama compares them
    return JSON(ProcessResponse(models=[model for _, model in rows]).dump())
