"""The web page's serving side (``/ui``, ``pollama/server/routes/ui.py``), without a browser: the
redirect, each static file with its type and caching headers, what is refused (missing files, paths
out of the folder), that ``/`` is unchanged, that the page opens without a key while the API still
needs one, and that another origin's requests stay refused by the host/origin guard.
"""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pollama.server.routes.ui import CONTENT_TYPES, STATIC
from tests.servers import ServerProcess

KEY = "web-ui-key-0123456789"
FILES = sorted(path.name for path in STATIC.iterdir() if path.is_file())


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("webui-keyed"), extra_env={"POLLAMA_API_KEYS": KEY}).start()
    yield process
    process.stop()


def raw_get(server: ServerProcess, path: str) -> int:
    """A GET of ``path`` exactly as written (httpx would resolve its dot segments first)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    finally:
        connection.close()


def test_the_files_ship_in_the_package() -> None:
    assert {"index.html", "style.css", "app.js", "api.js", "chat.js", "markdown.js"} <= set(FILES)
    assert all(Path(name).suffix in CONTENT_TYPES for name in FILES)
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert 'pollama = ["ui/static/*"]' in pyproject


def test_ui_redirects_to_the_page(server: ServerProcess) -> None:
    answer = httpx.get(server.url + "/ui")
    assert answer.status_code in (301, 302, 307, 308)
    assert answer.headers["location"] == "/ui/"


def test_the_page(server: ServerProcess) -> None:
    answer = httpx.get(server.url + "/ui/")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    assert answer.headers["cache-control"] == "no-cache"
    assert 'id="messages"' in answer.text and "/ui/static/app.js" in answer.text
    # Nothing leaves the machine: no absolute URL is loaded by the page.
    assert "http://" not in answer.text.split("-->", 1)[1] and "https://" not in answer.text


@pytest.mark.parametrize("name", FILES)
def test_each_static_file(server: ServerProcess, name: str) -> None:
    answer = httpx.get(f"{server.url}/ui/static/{name}")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == CONTENT_TYPES[Path(name).suffix]
    assert answer.content == (STATIC / name).read_bytes()
    assert answer.headers["x-content-type-options"] == "nosniff"
    again = httpx.get(f"{server.url}/ui/static/{name}", headers={"If-None-Match": answer.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    head = httpx.head(f"{server.url}/ui/static/{name}")
    assert head.status_code == 200 and int(head.headers["content-length"]) == len(answer.content)


def test_missing_and_unlisted_files_are_404(server: ServerProcess) -> None:
    assert httpx.get(server.url + "/ui/static/nope.js").status_code == 404
    assert httpx.get(server.url + "/ui/static/index.py").status_code == 404
    assert httpx.get(server.url + "/ui/static/").status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/ui/static/../../config.py",
        "/ui/static/../routes/ui.py",
        "/ui/static/..%2f..%2fconfig.py",
        "/ui/static/%2e%2e%2f%2e%2e%2fconfig.py",
        "/ui/static/..",
        "/ui/static/.%2e",
    ],
)
def test_paths_out_of_the_folder_are_refused(server: ServerProcess, path: str) -> None:
    assert raw_get(server, path) == 404


def test_health_check_unchanged(server: ServerProcess) -> None:
    assert httpx.get(server.url + "/").text == "Ollama is running"


def test_page_open_without_a_key_but_the_api_is_not(keyed: ServerProcess) -> None:
    assert httpx.get(keyed.url + "/ui").status_code == 308
    assert httpx.get(keyed.url + "/ui/").status_code == 200
    for name in FILES:
        assert httpx.get(f"{keyed.url}/ui/static/{name}").status_code == 200
    assert httpx.post(keyed.url + "/ui/").status_code == 401  # only GET and HEAD are open
    assert httpx.get(keyed.url + "/api/tags").status_code == 401
    assert httpx.get(keyed.url + "/api/tags", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200


def test_other_origins_stay_refused(server: ServerProcess) -> None:
    body = {"model": "nope", "messages": [{"role": "user", "content": "hi"}]}
    refused = httpx.post(server.url + "/api/chat", json=body, headers={"Origin": "http://evil.example"})
    assert refused.status_code == 403
    # The page's own origin is let through (a 404 for the unknown model, not a 403).
    same = httpx.post(server.url + "/api/chat", json=body, headers={"Origin": server.url})
    assert same.status_code == 404
