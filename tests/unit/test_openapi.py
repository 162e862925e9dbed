"""The OpenAPI document: built from the app's routes, with every request body and every reference."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from starlette.testclient import TestClient

from pollama.config import Settings
from pollama.model.options import OPTIONS
from pollama.server.app import create_app
from pollama.server.openapi import openapi_document

BODY_METHODS = ("post", "put", "patch", "delete")


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    return create_app(Settings(models=tmp_path_factory.mktemp("models")))


@pytest.fixture(scope="module")
def document(app: FastAPI) -> dict[str, Any]:
    return openapi_document(app)


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield method, path, operation


def test_every_route_that_reads_a_body_has_it_described(document: dict[str, Any]) -> None:
    undescribed = [
        f"{method.upper()} {path}"
        for method, path, operation in operations(document)
        if method in BODY_METHODS and "requestBody" not in operation
    ]
    assert undescribed == []
    bodies = {path for method, path, operation in operations(document) if "requestBody" in operation}
    assert {"/api/chat", "/api/blobs/{digest}", "/v1/chat/completions", "/v1/responses", "/v1/messages"} <= bodies


def test_every_reference_resolves(document: dict[str, Any]) -> None:
    references = set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(document)))
    assert references <= document["components"]["schemas"].keys()


def test_operation_ids_are_unique(document: dict[str, Any]) -> None:
    ids = [operation["operationId"] for _method, _path, operation in operations(document)]
    assert len(ids) == len(set(ids))


def test_schemathesis_reads_every_operation(document: dict[str, Any]) -> None:
    labels = [result.ok().label for result in schemathesis.openapi.from_dict(document).get_all_operations()]
    assert "POST /api/generate" in labels
    assert len(labels) == sum(1 for _ in operations(document))


def test_options_are_every_model_option(document: dict[str, Any]) -> None:
    assert document["components"]["schemas"]["Options"]["properties"].keys() == OPTIONS.keys()
    generate = document["components"]["schemas"]["GenerateRequest"]["properties"]
    assert generate["options"] == {"anyOf": [{"$ref": "#/components/schemas/Options"}, {"type": "null"}]}


def test_only_deliberate_server_errors_are_documented(document: dict[str, Any]) -> None:
    responses = document["paths"]["/api/generate"]["post"]["responses"]
    assert {"200", "4XX", "500", "503"} == responses.keys()
    assert "500" not in document["paths"]["/api/tags"]["get"]["responses"]


def test_served_at_openapi_json(app: FastAPI, document: dict[str, Any]) -> None:
    response = TestClient(app, base_url="http://localhost").get("/openapi.json")
    assert response.status_code == 200
    assert response.json() == document
