"""JSON responses as Gin writes them: compact, HTML-escaped, ``application/json; charset=utf-8``."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from pollama.gocompat import gojson

__all__ = ["JSON", "error_response"]


class JSON(JSONResponse):
    media_type = "application/json; charset=utf-8"

    def render(self, content: Any) -> bytes:
        return gojson.dumps(content)


def error_response(status: int, message: str) -> JSON:
    return JSON({"error": message}, status_code=status)
