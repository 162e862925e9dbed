"""The cluster's pure parts: where a request goes, how answers merge, what a replica's server gets."""

from __future__ import annotations

import json

import click
import pytest

from pollama.cli.cluster import parse_replicas, parse_settings
from pollama.cluster.forwarding import client_headers, response_headers, stream_error
from pollama.cluster.localserver import server_environment
from pollama.cluster.options import ClusterOptions
from pollama.cluster.routing import (
    Route,
    RouteKind,
    merge_openai_models,
    merge_ps,
    merge_tags,
    model_id,
    route,
)

SMOL = "registry.ollama.ai/library/smollm2:latest"


def body(**fields: object) -> bytes:
    return json.dumps(fields).encode()


@pytest.mark.parametrize("name", ["smollm2", "SmolLM2:latest", "library/smollm2", SMOL, "  smollm2  "])
def test_every_spelling_of_a_model_shares_one_id(name: str) -> None:
    assert model_id(name) == SMOL


def test_other_hosts_and_tags_are_other_models() -> None:
    assert model_id("localhost:5000/test/smol:v1") == "localhost:5000/test/smol:v1"
    assert model_id("smollm2:q8") != model_id("smollm2")


@pytest.mark.parametrize("name", ["", "bad name!", "a:b:c:d"])
def test_an_invalid_name_has_no_id(name: str) -> None:
    assert model_id(name) == ""


@pytest.mark.parametrize(
    "path",
    ["/api/generate", "/api/chat", "/api/embed", "/api/embeddings", "/api/show", "/v1/chat/completions",
     "/v1/completions", "/v1/embeddings", "/v1/responses", "/v1/messages", "/api/tokenize"],
)  # fmt: skip
def test_requests_that_name_a_model_are_routed_by_it(path: str) -> None:
    assert route("POST", path, body(model="smollm2", prompt="hi")) == Route(RouteKind.MODEL, SMOL)


def test_show_may_say_name_and_openai_names_the_model_in_the_path() -> None:
    assert route("POST", "/api/show", body(name="smollm2")) == Route(RouteKind.MODEL, SMOL)
    assert route("GET", "/v1/models/smollm2", b"") == Route(RouteKind.MODEL, SMOL)


@pytest.mark.parametrize("raw", [b"", b"not json", b"[1]", body(model=3), body(prompt="no model")])
def test_a_body_without_a_model_still_reaches_a_replica_whose_server_answers(raw: bytes) -> None:
    assert route("POST", "/api/generate", raw) == Route(RouteKind.MODEL, "")


@pytest.mark.parametrize(
    ("method", "path", "kind"),
    [
        ("GET", "/api/tags", RouteKind.GATHER), ("GET", "/api/ps", RouteKind.GATHER),
        ("GET", "/v1/models", RouteKind.GATHER), ("POST", "/api/pull", RouteKind.EVERYWHERE),
        ("POST", "/api/create", RouteKind.EVERYWHERE), ("POST", "/api/copy", RouteKind.EVERYWHERE),
        ("DELETE", "/api/delete", RouteKind.EVERYWHERE), ("POST", "/api/push", RouteKind.REFUSED),
        ("POST", "/api/blobs/sha256:00", RouteKind.REFUSED), ("HEAD", "/api/blobs/sha256:00", RouteKind.REFUSED),
        ("GET", "/", RouteKind.ANY), ("GET", "/api/version", RouteKind.ANY), ("GET", "/ui/", RouteKind.ANY),
        ("GET", "/metrics", RouteKind.ANY), ("GET", "/api/generate", RouteKind.ANY),
        ("HEAD", "/api/tags", RouteKind.ANY),
    ],
)  # fmt: skip
def test_where_each_api_goes(method: str, path: str, kind: RouteKind) -> None:
    assert route(method, path, body(model="smollm2")).kind is kind


def test_tags_merge_each_model_once_newest_copy_first() -> None:
    old = {"name": "a:latest", "modified_at": "2026-01-01T00:00:00Z", "digest": "old"}
    new = {"name": "a:latest", "modified_at": "2026-02-01T00:00:00Z", "digest": "new"}
    other = {"name": "b:latest", "modified_at": "2026-01-15T00:00:00Z"}
    merged = merge_tags([{"models": [old, other]}, {"models": [new]}, {"models": None}])
    assert merged == {"models": [new, other]}


def test_ps_lists_every_replicas_models_with_where_they_are() -> None:
    first = {"model": "a", "expires_at": "2026-01-01T00:00:05Z"}
    second = {"model": "a", "expires_at": "2026-01-01T00:00:09Z"}
    merged = merge_ps([({"replica": "r1", "node": "n1"}, {"models": [first]}),
                       ({"replica": "r2", "node": "n2"}, {"models": [second]})])  # fmt: skip
    assert merged["models"] == [{**second, "replica": "r2", "node": "n2"}, {**first, "replica": "r1", "node": "n1"}]


def test_openai_models_merge_by_id() -> None:
    merged = merge_openai_models([{"data": [{"id": "a"}, {"id": "b"}]}, {"data": [{"id": "a"}]}])
    assert merged == {"object": "list", "data": [{"id": "a"}, {"id": "b"}]}


HEADERS = (("Host", "x"), ("Authorization", "Bearer client"), ("X-Api-Key", "k"), ("Content-Type", "application/json"),
           ("Connection", "keep-alive"), ("Content-Length", "3"), ("Transfer-Encoding", "chunked"))  # fmt: skip


def test_an_open_cluster_replaces_client_credentials_with_its_own_key() -> None:
    sent = client_headers(HEADERS, internal_key="inside", keep_credentials=False)
    assert sent == (("Content-Type", "application/json"), ("authorization", "Bearer inside"))


def test_a_keyed_cluster_passes_client_credentials_on_for_the_replica_to_check() -> None:
    sent = client_headers(HEADERS, internal_key="inside", keep_credentials=True)
    assert sent == (("Authorization", "Bearer client"), ("X-Api-Key", "k"), ("Content-Type", "application/json"))


def test_hop_by_hop_headers_of_an_answer_are_dropped() -> None:
    assert response_headers(HEADERS) == (
        ("Authorization", "Bearer client"), ("X-Api-Key", "k"), ("Content-Type", "application/json"),
    )  # fmt: skip


def test_a_cut_stream_ends_in_its_own_format() -> None:
    assert json.loads(stream_error("/api/chat", "application/x-ndjson", "gone")) == {"error": "gone"}
    openai_tail = stream_error("/v1/chat/completions", "text/event-stream", "gone").decode()
    assert openai_tail.endswith("data: [DONE]\n\n")
    assert json.loads(openai_tail.split("\n\n")[0].removeprefix("data: "))["error"]["message"] == "gone"
    anthropic_tail = stream_error("/v1/messages", "text/event-stream; charset=utf-8", "gone").decode()
    event, data = anthropic_tail.strip().split("\n")
    assert event == "event: error" and json.loads(data.removeprefix("data: "))["error"]["message"] == "gone"


def test_a_replica_server_gets_the_cluster_keys_and_never_tls() -> None:
    base = {"PATH": "/bin", "POLLAMA_TLS_CERT": "c", "POLLAMA_TLS_KEY": "k", "POLLAMA_API_KEYS_FILE": "f",
            "POLLAMA_API_KEYS": "node", "OLLAMA_MODELS": "/node"}  # fmt: skip
    env = server_environment(base, {"OLLAMA_MODELS": "/cluster", "OLLAMA_NUM_PARALLEL": "4"}, ("inside", "user"))
    assert env == {"PATH": "/bin", "OLLAMA_MODELS": "/cluster", "OLLAMA_NUM_PARALLEL": "4",
                   "POLLAMA_API_KEYS": "inside,user"}  # fmt: skip


def test_replica_counts_and_settings_from_the_command_line() -> None:
    assert parse_replicas("2") == (2, 2)
    assert parse_replicas("1-4") == (1, 4)
    for bad in ("", "x", "3-1", "0", "-1"):
        with pytest.raises(click.BadParameter):
            parse_replicas(bad)
    assert parse_settings(("A=1", "B=x=y", "C="), "--env") == {"A": "1", "B": "x=y", "C": ""}
    with pytest.raises(click.BadParameter):
        parse_settings(("novalue",), "--env")


def test_options_become_ray_serve_settings() -> None:
    options = ClusterOptions(
        min_replicas=1, max_replicas=3, target_ongoing_requests=2, replica_resources={"gpu_box": 1}
    )
    assert options.autoscaling()["max_replicas"] == 3 and options.autoscaling()["target_ongoing_requests"] == 2
    assert options.replica_actor_options() == {"num_cpus": 1.0, "resources": {"gpu_box": 1}}
    env = options.ingress_actor_options()["runtime_env"]["env_vars"]
    assert float(env["RAY_SERVE_QUEUE_LENGTH_RESPONSE_DEADLINE_S"]) == options.probe_deadline_s
