"""``/ui``: the built-in web chat page (beyond Ollama), plain files shipped in ``pollama/ui/static``.

The files hold no data (everything the page shows comes from the API it calls with the user's key), so
they are served without a key (``server/auth.py``) and out of the OpenAPI document. Only a flat list of
known file names and types is served: a name is one path segment, so ``..`` cannot climb out of the
folder. Every answer carries an ETag (the content's hash) and ``Cache-Control: no-cache``: a browser
revalidates each time and gets a 304 while the file is unchanged, so an upgraded pollama is never
hidden behind a stale cache.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException

__all__ = ["STATIC", "router"]

STATIC = Path(__file__).resolve().parent.parent.parent / "ui" / "static"

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
    ".png": "image/png",
}
_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")
# The page is the only thing this origin frames, scripts or styles; the API it calls is the same origin.
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

router = APIRouter(include_in_schema=False)


def _serve(request: Request, name: str) -> Response:
    suffix = Path(name).suffix
    if not _NAME.fullmatch(name) or suffix not in CONTENT_TYPES:
        raise HTTPException(404)
    path = STATIC / name
    try:
        content = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise HTTPException(404) from None
    etag = '"' + hashlib.sha256(content).hexdigest()[:32] + '"'
    headers = {
        "ETag": etag,
        "Cache-Control": "no-cache",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": _CSP,
        "Referrer-Policy": "no-referrer",
    }
    if etag in [tag.strip() for tag in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    body = b"" if request.method == "HEAD" else content
    response = Response(body, media_type=CONTENT_TYPES[suffix], headers=headers)
    response.headers["Content-Length"] = str(len(content))
    return response


@router.api_route("/ui", methods=["GET", "HEAD"])
async def ui_redirect() -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=308)


@router.api_route("/ui/", methods=["GET", "HEAD"])
async def ui_page(request: Request) -> Response:
    return _serve(request, "index.html")


@router.api_route("/ui/static/{name}", methods=["GET", "HEAD"])
async def ui_static(request: Request, name: str) -> Response:
    return _serve(request, name)
